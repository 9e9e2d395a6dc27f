//! A SeaweedFS `weed` (master, volume, filer and MQ broker in one process) of a test's own, for tests
//! that stop and restart the broker. Started through `scripts/smq/run-weed.sh` (which finds or
//! builds the pinned binary, turns telemetry off and waits until the broker serves control-plane
//! calls) on free loopback ports, in a temporary directory that survives restarts.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::TempDir;

/// A running (or stopped) weed.
pub struct Weed {
    dir: TempDir,
    ports: Vec<u16>,
    extra: Vec<String>,
    runner: Option<Child>,
    /// The broker's gRPC address.
    pub broker: String,
}

/// Whether a weed binary is at hand (`KELP_WEED_BIN`, or the one `scripts/smq/build-weed.sh` cached),
/// so that starting one does not mean a 10-minute build.
pub fn available() -> Result<(), String> {
    if let Some(b) = std::env::var_os("KELP_WEED_BIN") {
        return if std::path::Path::new(&b).is_file() {
            Ok(())
        } else {
            Err(format!(
                "KELP_WEED_BIN={} is not a file",
                b.to_string_lossy()
            ))
        };
    }
    let cache = std::env::var_os("KELP_CACHE")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cache/kelp-tests"))
        })
        .unwrap_or_default();
    let found = std::fs::read_dir(cache.join("weed"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.path().join("weed").is_file());
    if found {
        Ok(())
    } else {
        Err("no weed binary: run scripts/smq/build-weed.sh (or set KELP_WEED_BIN)".into())
    }
}

fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect()
}

impl Weed {
    /// Starts a weed with `extra` server flags (e.g. `-mq.broker.logFlushInterval=1`).
    pub fn start(extra: &[&str]) -> Weed {
        let ports = free_ports(7);
        let mut w = Weed {
            dir: TempDir::new("weed"),
            broker: format!("127.0.0.1:{}", ports[6]),
            ports,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            runner: None,
        };
        w.launch();
        w
    }

    fn launch(&mut self) {
        let p = &self.ports;
        let script = crate::workspace_root().join("scripts/smq/run-weed.sh");
        let mut cmd = Command::new("bash");
        cmd.arg(script)
            .arg(self.dir.path())
            .args([
                format!("-master.port={}", p[0]),
                format!("-master.port.grpc={}", p[1]),
                format!("-volume.port={}", p[2]),
                format!("-volume.port.grpc={}", p[3]),
                format!("-filer.port={}", p[4]),
                format!("-filer.port.grpc={}", p[5]),
                format!("-mq.broker.port={}", p[6]),
            ])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        crate::progress(&format!("starting weed: {}", crate::proc::render(&cmd)));
        let started = Instant::now();
        let mut child = cmd.spawn().expect("start run-weed.sh");
        let stdout = child.stdout.take().expect("stdout");
        // run-weed.sh prints the broker's address once it is ready (or exits)
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        assert!(
            !line.trim().is_empty(),
            "weed did not become ready; see its log in {}",
            self.dir.path().display()
        );
        crate::progress(&format!(
            "weed ready at {} after {:.1?}",
            line.trim(),
            started.elapsed()
        ));
        self.runner = Some(child);
    }

    /// Kills weed (SIGKILL: a crash; up to one flush interval of acknowledged records is lost) and
    /// waits until it is gone.
    ///
    /// (Not SIGTERM: weed 4.53 takes 10-15 s to stop on it and keeps acknowledging publishes
    /// meanwhile without flushing them, so everything acknowledged in those seconds is lost.)
    pub fn crash(&mut self) {
        self.signal("-KILL");
    }

    /// Stops weed as run-weed.sh does on SIGTERM (weed gets SIGTERM, SIGKILL after 15 s).
    pub fn stop(&mut self) {
        self.signal("-TERM");
    }

    fn signal(&mut self, signal: &str) {
        if let Some(mut c) = self.runner.take() {
            if signal == "-KILL" {
                // the weed process itself, then its runner (which removes weed's sockets)
                let _ = Command::new("pkill")
                    .args(["-KILL", "-P", &c.id().to_string(), "weed"])
                    .status();
            }
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
            crate::progress(&format!("weed stopped ({signal})"));
        }
    }

    /// Crashes weed and starts it again on the same directory and ports.
    pub fn crash_restart(&mut self) {
        self.crash();
        self.launch();
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        self.stop();
    }
}
