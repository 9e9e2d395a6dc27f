//! The server under test: the `kelp` binary started on a free loopback port with a fresh data
//! directory (killed when dropped), or an already running broker named by `KELP_E2E_BOOTSTRAP`.
//!
//! With `KELP_E2E_SMQ=host:port` the spawned gateway stores its records in that SeaweedMQ broker
//! (`--backend smq://host:port`), each gateway in SMQ namespaces of its own, so tests sharing one
//! `weed` never see each other's topics.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::{TempDir, skip, wire};

pub struct Gateway {
    bootstrap: String,
    child: Option<Child>,
    log: Option<PathBuf>,
    /// binary and data dir of a spawned gateway, for [`Gateway::kill9_restart`]
    bin: Option<PathBuf>,
    data: Option<PathBuf>,
    /// `--backend smq://… --smq-namespace …` when testing the SMQ backend
    backend: Vec<String>,
    /// data dir and log; removed on drop unless KELP_E2E_KEEP=1
    _dir: Option<TempDir>,
}

/// Where the workspace's build output is: `CARGO_TARGET_DIR`, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d),
        None => crate::workspace_root().join("target"),
    }
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn newest_source(dir: &Path) -> Option<SystemTime> {
    let mut newest = mtime(dir);
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        let t = if p.is_dir() {
            newest_source(&p)
        } else {
            mtime(&p)
        };
        newest = newest.max(t);
    }
    newest
}

/// `KELP_BIN`, else the newer of `target/release/kelp` and `target/debug/kelp`.
pub fn find_binary() -> Result<PathBuf, String> {
    if let Some(b) = std::env::var_os("KELP_BIN") {
        let b = PathBuf::from(b);
        return if b.is_file() {
            Ok(b)
        } else {
            Err(format!("KELP_BIN={} is not a file", b.display()))
        };
    }
    let t = target_dir();
    let found = ["release", "debug"]
        .iter()
        .map(|p| t.join(p).join("kelp"))
        .filter(|p| p.is_file())
        .max_by_key(|p| mtime(p));
    found.ok_or_else(|| {
        format!(
            "no kelp binary in {0}/release or {0}/debug (build it: cargo build -p kelp-tokio), \
             no KELP_BIN, and no KELP_E2E_BOOTSTRAP=host:port of a running broker",
            t.display()
        )
    })
}

/// A number no other call in this process returns.
fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// `kelp` arguments for the SMQ broker at `broker`, in namespaces of this gateway's own (one weed
/// serves many tests).
fn smq_args(broker: &str) -> Vec<String> {
    vec![
        "--backend".to_string(),
        format!("smq://{broker}"),
        "--smq-namespace".to_string(),
        format!(
            "e2e-{}-{}-{}",
            std::process::id(),
            unique(),
            crate::now_ms() % 1_000_000
        ),
    ]
}

/// Whether spawned gateways store their records in SMQ (`KELP_E2E_SMQ`).
pub fn smq_backend() -> bool {
    std::env::var("KELP_E2E_SMQ").is_ok_and(|b| !b.is_empty())
}

/// A port free now and never handed out before in this process (parallel tests restart their
/// gateways on the same port: the kernel must not give it to another test meanwhile).
fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("no free port on 127.0.0.1");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

impl Gateway {
    /// Starts (or, with `KELP_E2E_BOOTSTRAP`, reaches) the server under test; `None` after printing
    /// "SKIPPED: ..." when there is nothing to test.
    pub fn start(test: &str) -> Option<Gateway> {
        if let Ok(b) = std::env::var("KELP_E2E_BOOTSTRAP") {
            if let Err(e) = wire::probe(&b, Duration::from_secs(10)) {
                panic!("KELP_E2E_BOOTSTRAP={b} does not answer ApiVersions: {e}");
            }
            crate::progress(&format!("using the broker at {b} (KELP_E2E_BOOTSTRAP)"));
            return Some(Gateway {
                bootstrap: b,
                child: None,
                log: None,
                bin: None,
                data: None,
                backend: Vec::new(),
                _dir: None,
            });
        }
        let bin = match find_binary() {
            Ok(b) => b,
            Err(e) => {
                skip(test, &e);
                return None;
            }
        };
        let backend = match std::env::var("KELP_E2E_SMQ") {
            Ok(broker) if !broker.is_empty() => smq_args(&broker),
            _ => Vec::new(),
        };
        Some(Gateway::spawn(&bin, backend))
    }

    /// Starts the example program `name` of kelp-core (`target/debug/examples/<name>`, built by
    /// `cargo build -p kelp-core --example <name>`), which takes the gateway's flags.
    pub fn start_example(test: &str, name: &str) -> Option<Gateway> {
        let bin = target_dir().join("debug/examples").join(name);
        if !bin.is_file() {
            skip(
                test,
                &format!(
                    "no {} (cargo build -p kelp-core --example {name})",
                    bin.display()
                ),
            );
            return None;
        }
        Some(Gateway::spawn(&bin, Vec::new()))
    }

    /// Starts the `kelp` binary with its records in the SMQ broker at `broker` (`host:port`).
    pub fn start_on_smq(test: &str, broker: &str) -> Option<Gateway> {
        match find_binary() {
            Ok(bin) => Some(Gateway::spawn(&bin, smq_args(broker))),
            Err(e) => {
                skip(test, &e);
                None
            }
        }
    }

    fn spawn(bin: &Path, backend: Vec<String>) -> Gateway {
        let root = crate::workspace_root();
        let bin_time = mtime(bin);
        let src = ["core", "runtime-tokio", "runtime-smol", "proto"]
            .iter()
            .filter_map(|d| newest_source(&root.join(d).join("src")))
            .max();
        if src > bin_time && std::env::var_os("KELP_BIN").is_none() {
            crate::note(&format!(
                "WARNING: {} is older than the sources; rebuild it (cargo build -p kelp-tokio) to test the current code",
                bin.display()
            ));
        }
        let dir = TempDir::new("gateway");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("create data dir");
        let log = dir.path().join("kelp.log");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut gw = Gateway {
            bootstrap: addr,
            child: None,
            log: Some(log),
            bin: Some(bin.to_path_buf()),
            data: Some(data),
            backend,
            _dir: Some(dir),
        };
        gw.launch();
        gw
    }

    /// Starts the spawned gateway's binary on its address, data dir and log (appended to), and
    /// waits until it answers ApiVersions (at most 30 s).
    fn launch(&mut self) {
        let (Some(bin), Some(data), Some(log)) = (&self.bin, &self.data, &self.log) else {
            panic!("launch: not a spawned gateway");
        };
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open gateway log");
        let addr = self.bootstrap.clone();
        let mut cmd = Command::new(bin);
        cmd.env("NO_COLOR", "1"); // plain log lines in failure messages
        cmd.args([
            "--listen",
            &addr,
            "--advertised-listener",
            &addr,
            "--data-dir",
        ])
        .arg(data)
        .args(&self.backend)
        .stdin(Stdio::null())
        .stdout(f.try_clone().expect("dup log"))
        .stderr(f);
        crate::progress(&format!("starting {}", crate::proc::render(&cmd)));
        let bin = bin.clone();
        self.child = Some(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display())),
        );
        let start = Instant::now();
        loop {
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "{} exited at start ({st}); its log:\n{}",
                    bin.display(),
                    self.log_tail(60)
                );
            }
            match wire::probe(&addr, Duration::from_secs(2)) {
                Ok(()) => break,
                Err(e) if start.elapsed() > Duration::from_secs(30) => {
                    panic!(
                        "{} not ready on {addr} after 30 s ({e}); its log:\n{}",
                        bin.display(),
                        self.log_tail(60)
                    )
                }
                Err(_) => thread::sleep(Duration::from_millis(100)),
            }
        }
        crate::progress(&format!(
            "gateway ready on {addr} after {:.1?}",
            start.elapsed()
        ));
    }

    /// `kill -9` of a spawned gateway, then a restart of the same binary on the same address and
    /// data directory. `false` (nothing done) for an external broker.
    pub fn kill9_restart(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let _ = c.kill(); // SIGKILL
        let _ = c.wait();
        crate::progress(&format!("gateway on {} killed (SIGKILL)", self.bootstrap));
        self.launch();
        true
    }

    /// host:port for clients
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Whether a spawned gateway is still running (an external broker is assumed to be).
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// Resident memory of the spawned server in KiB (`None` for an external broker).
    pub fn rss_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    pub fn is_external(&self) -> bool {
        self.bin.is_none()
    }

    /// The last lines of a spawned gateway's log.
    pub fn log_tail(&self, lines: usize) -> String {
        match &self.log {
            Some(l) => crate::proc::tail(&std::fs::read(l).unwrap_or_default(), lines),
            None => "(external broker: no log)".into(),
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            if thread::panicking() {
                crate::note(&format!(
                    "--- gateway log (tail) ---\n{}",
                    self.log_tail(80)
                ));
            }
        }
    }
}
