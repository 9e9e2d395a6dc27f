//! The real clients: the programs of `tests/clients/<eco>/` (one CLI contract, see tests/README.md),
//! kcat, and the Apache Kafka command-line tools, as installed by `tests/install.sh`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use crate::proc::{Output, run, run_ok};
use crate::records::{self, ALL_CODECS, Caps, PartitionOffsets, Record};
use crate::{Env, cache_dir, workspace_root};

/// Time bound of one client command (JVM start included).
pub const LIMIT: Duration = Duration::from_secs(150);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    /// Apache Kafka's Java client, kafka-clients 4.4 (clients/java/KelpClient.java)
    Java,
    /// librdkafka through confluent-kafka for Python (clients/librdkafka/client.py)
    Librdkafka,
    /// kafka-python 3.x (clients/kafka-python/client.py)
    KafkaPython,
    /// franz-go (clients/franz-go, built to $KELP_CACHE/bin/kelp-franz-go)
    FranzGo,
    /// kafkajs 2.x (clients/kafkajs/client.js)
    Kafkajs,
}

/// Something a test needs installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    Client(Client),
    Kcat,
    /// the Apache Kafka CLI tools (clients/kafka/kafka.sh)
    KafkaCli,
}

fn clients_dir() -> PathBuf {
    workspace_root().join("tests/clients")
}

/// PATH lookup.
pub fn which(prog: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(prog))
        .find(|p| p.is_file())
}

fn stamped(component: &str) -> Result<(), String> {
    if cache_dir().join("stamps").join(component).is_file() {
        Ok(())
    } else {
        Err(format!(
            "{component} is not installed in {} (run tests/install.sh {component})",
            cache_dir().display()
        ))
    }
}

fn need_file(p: &Path, component: &str) -> Result<(), String> {
    if p.exists() {
        Ok(())
    } else {
        Err(format!(
            "{} missing (run tests/install.sh {component})",
            p.display()
        ))
    }
}

fn need_prog(prog: &str) -> Result<(), String> {
    which(prog)
        .map(|_| ())
        .ok_or_else(|| format!("{prog} is not on PATH (run tests/install.sh)"))
}

fn mtime(p: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Rebuilds the franz-go program when its sources are newer than the binary (once per test process).
fn franz_go_fresh() -> Result<(), String> {
    static BUILT: Mutex<Option<Result<(), String>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = built.as_ref() {
        return r.clone();
    }
    let bin = Client::FranzGo.franz_bin();
    let src = clients_dir().join("franz-go");
    let newest = ["main.go", "go.mod", "go.sum"]
        .iter()
        .filter_map(|f| mtime(&src.join(f)))
        .max();
    let r = if mtime(&bin) >= newest {
        Ok(())
    } else {
        crate::progress("franz-go sources are newer than the binary: go build");
        let out = run(
            Command::new("go")
                .args(["build", "-o"])
                .arg(&bin)
                .arg(".")
                .current_dir(&src),
            None,
            LIMIT,
        );
        if out.success() {
            Ok(())
        } else {
            Err(format!("go build failed: {}", out.describe()))
        }
    };
    *built = Some(r.clone());
    r
}

impl Tool {
    /// Ok when installed; Err says what to run.
    pub fn check(self) -> Result<(), String> {
        let c = cache_dir();
        match self {
            Tool::Kcat => need_prog("kcat"),
            Tool::KafkaCli => {
                need_prog("java")?;
                stamped("kafka")?;
                need_file(&c.join("kafka/libs"), "kafka")
            }
            Tool::Client(Client::Java) => {
                need_prog("java")?;
                stamped("java")?;
                need_file(&c.join("java/libs"), "java")
            }
            Tool::Client(Client::Librdkafka | Client::KafkaPython) => {
                stamped("python")?;
                need_file(&c.join("venv/bin/python"), "python")
            }
            Tool::Client(Client::FranzGo) => {
                stamped("franz-go")?;
                need_file(&Client::FranzGo.franz_bin(), "franz-go")?;
                franz_go_fresh()
            }
            Tool::Client(Client::Kafkajs) => {
                need_prog("node")?;
                stamped("kafkajs")?;
                need_file(&c.join("kafkajs/node_modules/kafkajs"), "kafkajs")
            }
        }
    }
}

/// `java ... tests/clients/java/<file>` with kafka-clients on the class path (source-file mode).
fn java(file: &str) -> Command {
    let mut cmd = Command::new("java");
    cmd.args([
        "-Xms64m",
        "-Xmx1g",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
    ])
    .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
    .arg("-cp")
    .arg(cache_dir().join("java/libs/*"))
    .arg(clients_dir().join("java").join(file));
    cmd
}

/// The Java admin session (`clients/java/KelpAdmin.java`, needs `Tool::Client(Client::Java)`): one
/// command per line, one JSON line back (see the file for the commands).
pub fn java_admin(bootstrap: &str) -> crate::session::Session {
    crate::session::Session::start(
        java("KelpAdmin.java").args(["--bootstrap", bootstrap]),
        LIMIT,
    )
}

/// The Java group program (`clients/java/KelpGroup.java`, needs `Tool::Client(Client::Java)`):
/// `member` (a consumer-group member until stdin closes) or `produce` (keyed records, default
/// producer settings); see the file for the options and the JSON lines it prints.
pub fn java_group(bootstrap: &str, topic: &str, args: &[&str]) -> Command {
    let mut cmd = java("KelpGroup.java");
    cmd.args(["--bootstrap", bootstrap, "--topic", topic])
        .args(args);
    cmd
}

impl Client {
    pub const ALL: [Client; 5] = [
        Client::Java,
        Client::Librdkafka,
        Client::KafkaPython,
        Client::FranzGo,
        Client::Kafkajs,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Client::Java => "java",
            Client::Librdkafka => "librdkafka",
            Client::KafkaPython => "kafka-python",
            Client::FranzGo => "franz-go",
            Client::Kafkajs => "kafkajs",
        }
    }

    pub fn caps(self) -> Caps {
        match self {
            Client::Java | Client::Librdkafka | Client::FranzGo => Caps {
                codecs: ALL_CODECS,
                null_header_values: true,
                time_miss_is_end: false,
            },
            Client::KafkaPython => Caps {
                codecs: ALL_CODECS,
                null_header_values: false,
                time_miss_is_end: false,
            },
            Client::Kafkajs => Caps {
                codecs: ALL_CODECS,
                null_header_values: false,
                time_miss_is_end: true,
            },
        }
    }

    fn franz_bin(self) -> PathBuf {
        cache_dir().join("bin/kelp-franz-go")
    }

    /// `<program> --bootstrap B --topic T <args...>`
    pub fn command(self, bootstrap: &str, topic: &str, args: &[&str]) -> Command {
        let c = cache_dir();
        let mut cmd = match self {
            Client::Java => java("KelpClient.java"),
            Client::Librdkafka | Client::KafkaPython => {
                let mut cmd = Command::new(c.join("venv/bin/python"));
                cmd.arg("-u")
                    .arg(clients_dir().join(self.name()).join("client.py"));
                cmd
            }
            Client::FranzGo => Command::new(self.franz_bin()),
            Client::Kafkajs => {
                let mut cmd = Command::new("node");
                cmd.arg(clients_dir().join("kafkajs/client.js"))
                    .env("NODE_PATH", c.join("kafkajs/node_modules"))
                    .env("KAFKAJS_NO_PARTITIONER_WARNING", "1");
                cmd
            }
        };
        cmd.args(["--bootstrap", bootstrap, "--topic", topic])
            .args(args);
        cmd
    }

    pub fn run(self, env: &Env, topic: &str, args: &[&str]) -> Output {
        run_ok(&mut self.command(env.bootstrap(), topic, args), None, LIMIT)
    }

    /// `group --group G [--assignor A]`: a consumer-group member that runs until its stdin closes
    /// (start it with [`crate::live::Live::start`]).
    pub fn group_member(
        self,
        bootstrap: &str,
        topic: &str,
        group: &str,
        assignor: Option<&str>,
    ) -> Command {
        let mut args = vec!["group", "--group", group];
        if let Some(a) = assignor {
            args.extend(["--assignor", a]);
        }
        self.command(bootstrap, topic, &args)
    }

    /// `create`: a 3-partition topic; returns the partition count the client then saw.
    pub fn create(self, env: &Env, topic: &str) -> i64 {
        let out = self.run(env, topic, &["create", "--partitions", "3"]);
        let lines = records::json_lines(&out);
        lines
            .last()
            .and_then(|j| j.get("partitions").as_i64())
            .unwrap_or_else(|| panic!("create printed {lines:?}"))
    }

    /// `produce --input FILE`: the acked records.
    pub fn produce(self, env: &Env, topic: &str, file: &Path) -> Vec<Record> {
        let f = file.to_string_lossy();
        records::parse_records(&self.run(env, topic, &["produce", "--input", &f]))
    }

    /// `consume`: every partition from the earliest offset to the high watermark.
    pub fn consume(self, env: &Env, topic: &str) -> Vec<Record> {
        records::parse_records(&self.run(env, topic, &["consume"]))
    }

    /// `offsets --times ...`
    pub fn offsets(self, env: &Env, topic: &str, times: &[i64]) -> Vec<PartitionOffsets> {
        let t = times
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(",");
        records::parse_offsets(&self.run(env, topic, &["offsets", "--times", &t]))
    }
}

/// kcat (librdkafka's command-line client), driven directly.
pub mod kcat {
    use super::*;

    pub fn command(bootstrap: &str) -> Command {
        let mut cmd = Command::new("kcat");
        cmd.args(["-b", bootstrap, "-X", "broker.address.family=v4"]);
        cmd
    }

    /// Reads every partition from the beginning to the end (`-e`), keys and values as raw bytes.
    /// The fetch limit per partition is 4 MiB (librdkafka's default is 1 MiB, less than the batch
    /// of the record set's 1 MiB value).
    pub fn consume_all(bootstrap: &str, topic: &str) -> Vec<Record> {
        let out = run_ok(
            command(bootstrap).args([
                "-X",
                "fetch.message.max.bytes=4194304",
                "-C",
                "-t",
                topic,
                "-o",
                "beginning",
                "-e",
                "-q",
                "-f",
                "%p %o %T %K %S %h\n%k%s\n",
            ]),
            None,
            LIMIT,
        );
        parse_consume(&out.stdout).unwrap_or_else(|e| panic!("kcat output: {e}"))
    }

    /// Parses the `-f '%p %o %T %K %S %h\n%k%s\n'` output: a text line, then exactly %K key bytes and
    /// %S value bytes (-1 = null). `%h` is `name=value,...` with NULL for a null value.
    pub fn parse_consume(mut b: &[u8]) -> Result<Vec<Record>, String> {
        let mut v = Vec::new();
        while !b.is_empty() {
            let nl = b
                .iter()
                .position(|&c| c == b'\n')
                .ok_or("no newline after a record line")?;
            let line = std::str::from_utf8(&b[..nl]).map_err(|_| "record line is not UTF-8")?;
            b = &b[nl + 1..];
            let f: Vec<&str> = line.splitn(6, ' ').collect();
            if f.len() < 5 {
                return Err(format!("bad record line {line:?}"));
            }
            let num = |s: &str| {
                s.parse::<i64>()
                    .map_err(|_| format!("bad number {s:?} in {line:?}"))
            };
            let mut take = |len: i64| -> Result<Option<Vec<u8>>, String> {
                if len < 0 {
                    return Ok(None);
                }
                let len = len as usize;
                if b.len() < len {
                    return Err("output ends inside a record".into());
                }
                let (x, rest) = b.split_at(len);
                b = rest;
                Ok(Some(x.to_vec()))
            };
            let key = take(num(f[3])?)?;
            let value = take(num(f[4])?)?;
            if b.first() != Some(&b'\n') {
                return Err(format!("no newline after the record of {line:?}"));
            }
            b = &b[1..];
            let headers = match f.get(5) {
                None | Some(&"") => Vec::new(),
                Some(h) => h
                    .split(',')
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                        (
                            k.to_string(),
                            if v == "NULL" {
                                None
                            } else {
                                Some(v.as_bytes().to_vec())
                            },
                        )
                    })
                    .collect(),
            };
            v.push(Record {
                partition: num(f[0])? as i32,
                offset: num(f[1])?,
                timestamp: num(f[2])?,
                key,
                value,
                headers,
            });
        }
        Ok(v)
    }

    /// (partition, offset found) pairs
    pub type Found = Vec<(i32, Option<i64>)>;

    /// `kcat -Q` for one time (-1 = latest, -2 = earliest) on each of `partitions`: partition -> offset
    /// (None = not found). kcat keeps one ask per partition, hence one run per time.
    pub fn query(
        bootstrap: &str,
        topic: &str,
        partitions: &[i32],
        time: i64,
    ) -> Vec<(i32, Option<i64>)> {
        let mut cmd = command(bootstrap);
        cmd.arg("-Q");
        for p in partitions {
            cmd.args(["-t", &format!("{topic}:{p}:{time}")]);
        }
        let out = run_ok(&mut cmd, None, LIMIT);
        // lines: "<topic> [<partition>] offset <n>"
        let mut got: Vec<(i32, Option<i64>)> = out
            .stdout_str()
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix(topic)?.trim_start();
                let (p, rest) = rest.strip_prefix('[')?.split_once(']')?;
                let o: i64 = rest.trim().strip_prefix("offset")?.trim().parse().ok()?;
                Some((p.parse().ok()?, (o >= 0).then_some(o)))
            })
            .collect();
        got.sort_by_key(|g| g.0);
        let asked: Vec<i32> = got.iter().map(|g| g.0).collect();
        let mut want = partitions.to_vec();
        want.sort();
        assert_eq!(
            asked,
            want,
            "kcat -Q answered {got:?} for partitions {partitions:?}:\n{}",
            out.describe()
        );
        got
    }

    /// What `query` finds for earliest, latest and the times of `want` (the same shape).
    pub fn offsets(
        bootstrap: &str,
        topic: &str,
        want: &[PartitionOffsets],
    ) -> Vec<PartitionOffsets> {
        let parts: Vec<i32> = want.iter().map(|w| w.partition).collect();
        let at = |time: i64| query(bootstrap, topic, &parts, time);
        let (earliest, latest) = (at(-2), at(-1));
        let times: Vec<(i64, Found)> = want
            .first()
            .map_or(&[][..], |w| &w.times[..])
            .iter()
            .map(|(t, _)| (*t, at(*t)))
            .collect();
        want.iter()
            .enumerate()
            .map(|(i, w)| PartitionOffsets {
                partition: w.partition,
                earliest: earliest[i].1.unwrap_or(-1),
                latest: latest[i].1.unwrap_or(-1),
                times: times.iter().map(|(t, g)| (*t, g[i].1)).collect(),
            })
            .collect()
    }
}

/// The Apache Kafka command-line tools (clients/kafka/kafka.sh TOOL ARGS...).
pub fn kafka_cli(tool: &str, bootstrap: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(clients_dir().join("kafka/kafka.sh"))
        .arg(tool)
        .args(["--bootstrap-server", bootstrap])
        .args(args);
    cmd
}

#[cfg(test)]
mod tests {
    #[test]
    fn kcat_output_parses() {
        let out = b"0 0 1000 3 5 codec=none,empty=,n=NULL\nkeyvalue\n1 7 1001 -1 0 \n\n2 1 5 2 -1 a=b\nk\n\n";
        let r = super::kcat::parse_consume(out).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].key.as_deref(), Some(&b"key"[..]));
        assert_eq!(r[0].value.as_deref(), Some(&b"value"[..]));
        assert_eq!(r[0].headers[1], ("empty".to_string(), Some(vec![])));
        assert_eq!(r[0].headers[2], ("n".to_string(), None));
        assert_eq!(
            (r[1].key.clone(), r[1].value.clone(), r[1].headers.len()),
            (None, Some(vec![]), 0)
        );
        assert_eq!(
            (r[2].partition, r[2].offset, r[2].value.clone()),
            (2, 1, None)
        );
        assert!(super::kcat::parse_consume(b"0 0 1 9 9 \nshort\n").is_err());
    }
}
