//! The gateway's settings: one typed struct filled from CLI flags, `KELP_*` environment variables and
//! an optional TOML file, in that order of precedence, with documented defaults.

use clap::Parser;
use kelp_core::smq::backend::SmqConfig;
use kelp_core::smq::mapping::Namespaces;
use kelp_core::smq::record::ValueFormat;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Command line and environment (every flag also reads `KELP_<NAME>`).
#[derive(Parser, Debug, Default, Deserialize)]
#[command(
    name = "kelp",
    version,
    about = "Kafka-compatible gateway (embedded durable log or SeaweedMQ)"
)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    /// TOML file with any of these settings (flags and env vars win over it).
    #[arg(long, env = "KELP_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to accept Kafka clients on [default: 127.0.0.1:9092].
    #[arg(long, env = "KELP_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// host:port clients are told to connect to [default: the listen address].
    #[arg(long, env = "KELP_ADVERTISED_LISTENER")]
    pub advertised_listener: Option<String>,
    /// Directory of the embedded log [default: ./data].
    #[arg(long, env = "KELP_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Storage backend: `local` (the embedded log) or `smq://HOST:PORT` (a SeaweedMQ broker's
    /// gRPC address) [default: local].
    #[arg(long, env = "KELP_BACKEND")]
    pub backend: Option<String>,
    /// SeaweedMQ broker gRPC address; the same as `--backend smq://HOST:PORT`.
    #[arg(long, env = "KELP_SMQ_BROKER")]
    pub smq_broker: Option<String>,
    /// SMQ namespace of user topics [default: kafka] (Kelp's own topics go to `<it>-system`).
    #[arg(long, env = "KELP_SMQ_NAMESPACE")]
    pub smq_namespace: Option<String>,
    /// How record values are written to SMQ: `enriched` (a RecordValue with the `_kafka_*` fields)
    /// or `raw` (the value only, as SeaweedFS's Go gateway writes) [default: enriched].
    #[arg(long, env = "KELP_SMQ_VALUE_FORMAT")]
    pub smq_value_format: Option<String>,
    /// Records in flight per SMQ publish stream [default: 4096].
    #[arg(long, env = "KELP_SMQ_PUBLISH_WINDOW")]
    pub smq_publish_window: Option<usize>,
    /// Seconds to wait at start-up for the SMQ broker to be ready [default: 120].
    #[arg(long, env = "KELP_SMQ_READY_TIMEOUT_S")]
    pub smq_ready_timeout_s: Option<u64>,
    /// Milliseconds to wait at start-up before publishing to SMQ, so that the broker has unloaded
    /// the partitions of a crashed predecessor [default: 1000].
    #[arg(long, env = "KELP_SMQ_STARTUP_GRACE_MS")]
    pub smq_startup_grace_ms: Option<u64>,
    /// Most client connections at once [default: 10000].
    #[arg(long, env = "KELP_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Send buffer of each client connection in bytes, as Kafka's `socket.send.buffer.bytes`
    /// (Linux doubles it); 0 leaves it to the kernel's autotuning [default: 102400].
    #[arg(long, env = "KELP_SOCKET_SEND_BUFFER_BYTES")]
    pub socket_send_buffer_bytes: Option<usize>,
    /// Largest request frame in bytes [default: 104857600].
    #[arg(long, env = "KELP_MAX_FRAME_BYTES")]
    pub max_frame_bytes: Option<usize>,
    /// Most unanswered request bytes per connection (a larger request is still read, alone)
    /// [default: 16777216].
    #[arg(long, env = "KELP_MAX_IN_FLIGHT_BYTES")]
    pub max_in_flight_bytes: Option<usize>,
    /// fsync before answering acks=all [default: true]; false leaves it to --flush-interval-ms.
    #[arg(long, env = "KELP_FSYNC_ACKS_ALL")]
    pub fsync_acks_all: Option<bool>,
    /// Also fsync every partition at this interval, in ms (0 = never) [default: 0].
    #[arg(long, env = "KELP_FLUSH_INTERVAL_MS")]
    pub flush_interval_ms: Option<u64>,
    /// Segment file size before a new one starts [default: 1073741824].
    #[arg(long, env = "KELP_SEGMENT_BYTES")]
    pub segment_bytes: Option<u64>,
    /// Threads writing the embedded logs; partitions are dealt to them in turn. Each makes a
    /// round of acks=all appends durable with one fsync, of its write-ahead file (a round of more
    /// than 512 KiB fsyncs its segments instead). One writer
    /// shares that fsync among every partition: on 2 cores, 1M × 1 KiB at acks=all, 1 writer
    /// measured 120k-128k records/s at 2.8-2.9 s of gateway CPU against 115k-119k at 4.2-4.3 s
    /// for 8 (3 partitions), and 166k-174k against 131k-134k for 8 on the build before (24
    /// partitions). More writers write and fsync in parallel, for machines with cores and disks
    /// to spare [default: 1].
    #[arg(long, env = "KELP_LOG_WRITERS")]
    pub log_writers: Option<usize>,
    /// Bytes of records after which a log writer's write-ahead file is checkpointed (its
    /// partitions fsynced, the file reused from its start); 0 = no write-ahead files: each round
    /// fsyncs every partition it wrote acks=all appends to [default: 67108864].
    #[arg(long, env = "KELP_WAL_BYTES")]
    pub wal_bytes: Option<u64>,
    /// MiB of the newest log bytes written that stay in the page cache; older ones, once written
    /// back, are dropped from it, so that new writes reuse their memory rather than take fresh
    /// pages from the kernel (see `kelp_core::storage::page_cache`; reads of older data come from
    /// the disk). Librdkafka at acks=all after 2M records measured 498k-531k records/s at 0.9-1.0 s
    /// of gateway CPU against 232k-553k at 0.9-3.4 s with 0; 0 = leave it all to the kernel
    /// [default: 1024].
    #[arg(long, env = "KELP_PAGE_CACHE_MIB")]
    pub page_cache_mib: Option<u64>,
    /// Create unknown topics on Metadata and Produce [default: true].
    #[arg(long, env = "KELP_AUTO_CREATE_TOPICS")]
    pub auto_create_topics: Option<bool>,
    /// Partitions of auto-created topics [default: 1].
    #[arg(long, env = "KELP_DEFAULT_PARTITIONS")]
    pub default_partitions: Option<i32>,
    /// How long a new consumer group's first rebalance waits for more members to join, in ms
    /// (Kafka's `group.initial.rebalance.delay.ms`; 0 answers the first JoinGroup at once)
    /// [default: 3000].
    #[arg(long, env = "KELP_GROUP_INITIAL_REBALANCE_DELAY_MS")]
    pub group_initial_rebalance_delay_ms: Option<u64>,
    /// glibc malloc arenas at most (memory freed in one arena stays with the process; fewer arenas
    /// keep the peak RSS down); 0 = glibc's default of 8 per core [default: 2].
    #[arg(long, env = "KELP_MALLOC_ARENAS")]
    pub malloc_arenas: Option<usize>,
    /// MiB of freed memory each malloc arena keeps for reuse rather than giving back to the
    /// kernel, which would fault it in again for the next fetch's buffers (see
    /// `kelp_tokio::allocator`); 0 = glibc's default [default: 32].
    #[arg(long, env = "KELP_MALLOC_KEEP_MIB")]
    pub malloc_keep_mib: Option<usize>,
    /// Threads that run the gateway's sockets, timers and loop (reads of the log and the log
    /// writers have threads of their own); 0 = one per core. The loop is one task whatever the
    /// number, so more threads only spread the sockets' system calls, and cost wake-ups across
    /// threads. On 2 cores one thread leaves the other to the log writer and the clients:
    /// ProducerPerformance at acks=all (1M × 1 KiB, 3 partitions) measured 132k-145k records/s at
    /// 2.3-2.5 s of gateway CPU against 110k-136k at 2.6-4.5 s for one per core [default: 1 on
    /// machines of up to 2 cores, else 0].
    #[arg(long, env = "KELP_RUNTIME_THREADS")]
    pub runtime_threads: Option<usize>,
    /// HTTP address for /metrics (Prometheus) and /stats (JSON); unset: no HTTP endpoint.
    #[arg(long, env = "KELP_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

/// Settings with every default applied.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub backend: Backend,
    pub listen: SocketAddr,
    pub advertised_host: String,
    pub advertised_port: i32,
    pub data_dir: PathBuf,
    pub max_connections: usize,
    pub socket_send_buffer_bytes: usize,
    pub max_frame_bytes: usize,
    pub max_in_flight_bytes: usize,
    pub fsync_acks_all: bool,
    pub flush_interval_ms: u64,
    pub segment_bytes: u64,
    pub log_writers: usize,
    pub wal_bytes: u64,
    pub page_cache_mib: u64,
    pub auto_create_topics: bool,
    pub default_partitions: i32,
    pub group_initial_rebalance_delay_ms: u64,
    pub metrics_listen: Option<SocketAddr>,
    pub malloc_arenas: usize,
    pub malloc_keep_mib: usize,
    /// 0: one per core.
    pub runtime_threads: usize,
}

/// Where records are stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The embedded log in the data directory.
    Local,
    /// A SeaweedMQ broker.
    Smq(SmqSettings),
}

/// The SMQ backend's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmqSettings {
    /// The broker's gRPC address (`host:port`).
    pub broker: String,
    /// What the core's backend needs.
    pub config: SmqConfig,
}

/// Why the settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The TOML file is not valid.
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    /// A value is out of range or malformed.
    #[error("{0}")]
    Invalid(String),
}

impl Settings {
    /// Fills unset values from the TOML file named by `--config`, then applies defaults.
    pub fn resolve(self) -> Result<Resolved, ConfigError> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str::<Settings>(&text).map_err(|source| ConfigError::Parse {
                    path: path.clone(),
                    source,
                })?
            }
            None => Settings::default(),
        };
        macro_rules! pick {
            ($field:ident, $default:expr) => {
                self.$field.or(file.$field).unwrap_or($default)
            };
        }
        let smq = self.smq_broker.clone().or(file.smq_broker.clone()).or(self
            .backend
            .clone()
            .or(file.backend.clone())
            .filter(|b| b != "local"));
        let backend = match smq {
            Some(addr) => {
                let addr = addr.strip_prefix("smq://").unwrap_or(&addr).to_string();
                if addr.is_empty() || addr.contains('/') || !addr.contains(':') {
                    return Err(ConfigError::Invalid(format!(
                        "backend `{addr}`: expected `local` or `smq://HOST:PORT`"
                    )));
                }
                let format = match self
                    .smq_value_format
                    .clone()
                    .or(file.smq_value_format.clone())
                    .as_deref()
                {
                    None | Some("enriched") => ValueFormat::Enriched,
                    Some("raw") => ValueFormat::Raw,
                    Some(other) => {
                        return Err(ConfigError::Invalid(format!(
                            "smq-value-format `{other}`: expected `enriched` or `raw`"
                        )));
                    }
                };
                let user = pick!(smq_namespace, "kafka".to_string());
                Backend::Smq(SmqSettings {
                    broker: addr,
                    config: SmqConfig {
                        namespaces: Namespaces {
                            system: format!("{user}-system"),
                            user,
                        },
                        format,
                        window: pick!(smq_publish_window, 4096).max(1),
                        ready_timeout: Duration::from_secs(pick!(smq_ready_timeout_s, 120)),
                        startup_grace: Duration::from_millis(pick!(smq_startup_grace_ms, 1000)),
                        name: format!("kelp-{}", std::process::id()),
                        ..SmqConfig::default()
                    },
                })
            }
            None => Backend::Local,
        };
        let listen = pick!(listen, SocketAddr::from(([127, 0, 0, 1], 9092)));
        let advertised = self
            .advertised_listener
            .or(file.advertised_listener)
            .unwrap_or_else(|| listen.to_string());
        let (host, port) = advertised
            .rsplit_once(':')
            .and_then(|(h, p)| {
                Some((
                    h.trim_matches(['[', ']']).to_string(),
                    p.parse::<i32>().ok()?,
                ))
            })
            .ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "advertised listener `{advertised}` is not host:port"
                ))
            })?;
        let default_partitions = pick!(default_partitions, 1);
        if default_partitions < 1 {
            return Err(ConfigError::Invalid(
                "default-partitions must be at least 1".into(),
            ));
        }
        Ok(Resolved {
            backend,
            listen,
            advertised_host: host,
            advertised_port: port,
            data_dir: pick!(data_dir, PathBuf::from("data")),
            max_connections: pick!(max_connections, 10_000),
            socket_send_buffer_bytes: pick!(socket_send_buffer_bytes, 100 * 1024),
            max_frame_bytes: pick!(max_frame_bytes, 100 * 1024 * 1024),
            max_in_flight_bytes: pick!(max_in_flight_bytes, 16 * 1024 * 1024),
            fsync_acks_all: pick!(fsync_acks_all, true),
            flush_interval_ms: pick!(flush_interval_ms, 0),
            segment_bytes: pick!(segment_bytes, 1024 * 1024 * 1024),
            log_writers: pick!(log_writers, 1).max(1),
            wal_bytes: pick!(wal_bytes, 64 * 1024 * 1024),
            page_cache_mib: pick!(page_cache_mib, 1024).min(1 << 40),
            auto_create_topics: pick!(auto_create_topics, true),
            default_partitions,
            group_initial_rebalance_delay_ms: pick!(group_initial_rebalance_delay_ms, 3_000),
            metrics_listen: self.metrics_listen.or(file.metrics_listen),
            malloc_arenas: pick!(malloc_arenas, 2),
            malloc_keep_mib: pick!(malloc_keep_mib, 32).min(1 << 20),
            runtime_threads: pick!(runtime_threads, default_runtime_threads()),
        })
    }
}

/// One runtime thread on machines of up to 2 cores (where it was measured to pay), else one per
/// core.
fn default_runtime_threads() -> usize {
    match std::thread::available_parallelism() {
        Ok(n) if n.get() > 2 => 0,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_defaults_fill_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kelp.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:19092\"\ndefault-partitions = 3\nsegment-bytes = 1000\n\
             group-initial-rebalance-delay-ms = 0\nruntime-threads = 3\nmalloc-keep-mib = 7\npage-cache-mib = 9\n",
        )
        .unwrap();
        let s = Settings {
            config: Some(path),
            segment_bytes: Some(2000),
            ..Default::default()
        };
        let r = s.resolve().unwrap();
        assert_eq!(r.listen.port(), 19092);
        assert_eq!(r.advertised_port, 19092);
        assert_eq!(r.default_partitions, 3);
        assert_eq!(r.segment_bytes, 2000);
        assert_eq!(r.group_initial_rebalance_delay_ms, 0);
        assert_eq!(r.runtime_threads, 3);
        assert_eq!(r.malloc_keep_mib, 7);
        assert_eq!(r.page_cache_mib, 9);
        assert_eq!(r.malloc_arenas, 2);
        assert!(r.fsync_acks_all);
        assert_eq!(r.backend, Backend::Local);
    }

    #[test]
    fn the_smq_backend_is_chosen_by_either_flag() {
        for s in [
            Settings {
                backend: Some("smq://127.0.0.1:17777".into()),
                ..Default::default()
            },
            Settings {
                smq_broker: Some("127.0.0.1:17777".into()),
                smq_value_format: Some("raw".into()),
                smq_namespace: Some("k".into()),
                ..Default::default()
            },
        ] {
            let Backend::Smq(smq) = s.resolve().unwrap().backend else {
                panic!("not smq")
            };
            assert_eq!(smq.broker, "127.0.0.1:17777");
            let namespaces = &smq.config.namespaces;
            assert_eq!(namespaces.system, format!("{}-system", namespaces.user));
        }
    }

    #[test]
    fn bad_values_are_reported() {
        let s = Settings {
            backend: Some("smq://x".into()),
            ..Default::default()
        };
        assert!(s.resolve().is_err(), "no port");
        let s = Settings {
            backend: Some("smq://127.0.0.1:17777".into()),
            smq_value_format: Some("json".into()),
            ..Default::default()
        };
        assert!(s.resolve().is_err());
        let s = Settings {
            advertised_listener: Some("nohost".into()),
            ..Default::default()
        };
        assert!(s.resolve().is_err());
    }
}
