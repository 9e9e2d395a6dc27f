//! The gateway's settings: one typed struct filled from CLI flags, `KELP_*` environment variables and
//! an optional TOML file, in that order of precedence, with documented defaults.

use clap::Parser;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Command line and environment (every flag also reads `KELP_<NAME>`).
#[derive(Parser, Debug, Default, Deserialize)]
#[command(
    name = "kelp",
    version,
    about = "Kafka-compatible gateway (embedded durable log)"
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
    /// Storage backend: `local` (the embedded log) [default: local].
    #[arg(long, env = "KELP_BACKEND")]
    pub backend: Option<String>,
    /// Most client connections at once [default: 10000].
    #[arg(long, env = "KELP_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Largest request frame in bytes [default: 104857600].
    #[arg(long, env = "KELP_MAX_FRAME_BYTES")]
    pub max_frame_bytes: Option<usize>,
    /// Most unanswered request bytes per connection [default: 268435456].
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
    /// Create unknown topics on Metadata and Produce [default: true].
    #[arg(long, env = "KELP_AUTO_CREATE_TOPICS")]
    pub auto_create_topics: Option<bool>,
    /// Partitions of auto-created topics [default: 1].
    #[arg(long, env = "KELP_DEFAULT_PARTITIONS")]
    pub default_partitions: Option<i32>,
    /// HTTP address for /metrics (Prometheus) and /stats (JSON); unset: no HTTP endpoint.
    #[arg(long, env = "KELP_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

/// Settings with every default applied.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub listen: SocketAddr,
    pub advertised_host: String,
    pub advertised_port: i32,
    pub data_dir: PathBuf,
    pub max_connections: usize,
    pub max_frame_bytes: usize,
    pub max_in_flight_bytes: usize,
    pub fsync_acks_all: bool,
    pub flush_interval_ms: u64,
    pub segment_bytes: u64,
    pub auto_create_topics: bool,
    pub default_partitions: i32,
    pub metrics_listen: Option<SocketAddr>,
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
        let backend = self
            .backend
            .clone()
            .or(file.backend.clone())
            .unwrap_or_else(|| "local".into());
        if backend != "local" {
            return Err(ConfigError::Invalid(format!(
                "backend `{backend}` is not available yet (only `local`)"
            )));
        }
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
            listen,
            advertised_host: host,
            advertised_port: port,
            data_dir: pick!(data_dir, PathBuf::from("data")),
            max_connections: pick!(max_connections, 10_000),
            max_frame_bytes: pick!(max_frame_bytes, 100 * 1024 * 1024),
            max_in_flight_bytes: pick!(max_in_flight_bytes, 256 * 1024 * 1024),
            fsync_acks_all: pick!(fsync_acks_all, true),
            flush_interval_ms: pick!(flush_interval_ms, 0),
            segment_bytes: pick!(segment_bytes, 1024 * 1024 * 1024),
            auto_create_topics: pick!(auto_create_topics, true),
            default_partitions,
            metrics_listen: self.metrics_listen.or(file.metrics_listen),
        })
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
            "listen = \"127.0.0.1:19092\"\ndefault-partitions = 3\nsegment-bytes = 1000\n",
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
        assert!(r.fsync_acks_all);
    }

    #[test]
    fn bad_values_are_reported() {
        let s = Settings {
            backend: Some("smq://x".into()),
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
