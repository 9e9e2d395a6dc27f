//! End-to-end tests of Kelp with real Kafka clients (`tests/tests/`), and the harness they share.
//!
//! - [`gateway::Gateway`]: the server under test, the `kelp` binary (`KELP_BIN`, else the newest of
//!   `target/{release,debug}/kelp`) on a free 127.0.0.1 port with a temporary data dir, or a running
//!   broker named by `KELP_E2E_BOOTSTRAP=host:port`.
//! - [`clients`]: the client programs of `tests/clients/` (Java, librdkafka, kafka-python, franz-go,
//!   kafkajs), kcat and the Apache Kafka CLI tools, installed by `tests/install.sh` under `KELP_CACHE`.
//! - [`records`]: the record set every producer sends and the byte-for-byte comparisons.
//! - [`wire`]: raw frames for the readiness probe and the bad-input test.
//!
//! With no gateway binary and no `KELP_E2E_BOOTSTRAP`, or with a client not installed, a test prints
//! `SKIPPED: <test>: <why>` and returns; `KELP_E2E_REQUIRE=1` turns every such skip into a failure.
//! See tests/README.md.

pub mod b64;
pub mod clients;
pub mod gateway;
pub mod json;
pub mod live;
pub mod proc;
pub mod proxy;
pub mod records;
pub mod session;
pub mod weed;
pub mod wire;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub use clients::{Client, Tool};
pub use gateway::Gateway;

/// The repository root (this crate lives in `<root>/tests`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `$KELP_CACHE`, else `~/.cache/kelp-tests`: where tests/install.sh puts the clients.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("KELP_CACHE") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
            .join(".cache/kelp-tests"),
    }
}

/// A line on the real stderr, past the test harness's output capture: seen even when the test passes.
pub fn note(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// A progress line, captured by the test harness (shown when the test fails, or with --nocapture).
pub fn progress(msg: &str) {
    println!("[e2e] {msg}");
}

/// Prints `SKIPPED: test: why`, or fails the test when `KELP_E2E_REQUIRE=1`.
pub fn skip(test: &str, why: &str) {
    if std::env::var("KELP_E2E_REQUIRE").is_ok_and(|v| v == "1") {
        panic!("{test}: cannot run and KELP_E2E_REQUIRE=1: {why}");
    }
    note(&format!("SKIPPED: {test}: {why}"));
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .as_millis() as i64
}

/// A fresh directory under the system temp dir, removed on drop (kept with `KELP_E2E_KEEP=1`).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "kelp-e2e-{label}-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            now_ms() % 1_000_000
        ));
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var("KELP_E2E_KEEP").is_ok_and(|v| v == "1") {
            note(&format!("kept {}", self.0.display()));
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// One test's world: the server under test and a scratch directory.
pub struct Env {
    pub gw: Gateway,
    pub dir: TempDir,
    test: String,
}

/// Checks that `tools` are installed, then starts the gateway; `None` (after "SKIPPED: ...") when
/// either is missing.
pub fn setup(test: &str, tools: &[Tool]) -> Option<Env> {
    for t in tools {
        if let Err(e) = t.check() {
            skip(test, &e);
            return None;
        }
    }
    let gw = Gateway::start(test)?;
    Some(Env {
        gw,
        dir: TempDir::new(test),
        test: test.to_string(),
    })
}

impl Env {
    /// An environment around a gateway started otherwise than [`setup`] does.
    pub fn new(test: &str, gw: Gateway) -> Env {
        Env {
            gw,
            dir: TempDir::new(test),
            test: test.to_string(),
        }
    }

    pub fn bootstrap(&self) -> &str {
        self.gw.bootstrap()
    }

    /// A topic name no other test or earlier run uses (an external broker keeps old topics).
    pub fn topic(&self, label: &str) -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        format!(
            "e2e-{}-{label}-{}-{}-{}",
            self.test,
            std::process::id(),
            now_ms() % 100_000_000,
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// Whether the server under test advertises `api_key` in ApiVersions.
    pub fn serves(&self, api_key: i16) -> bool {
        let wait = std::time::Duration::from_secs(10);
        wire::connect(self.bootstrap(), wait)
            .map_err(|e| e.to_string())
            .and_then(|mut s| wire::api_versions_v0(&mut s, 1, wait))
            .is_ok_and(|keys| keys.iter().any(|k| k.0 == api_key))
    }

    /// Consumer groups need FindCoordinator (key 10). A server that does not advertise it has not
    /// got group support yet (Kelp's consumer-group issue): the test says so and stops. This is
    /// not a skip that `KELP_E2E_REQUIRE` turns into a failure: the server itself says it lacks it.
    pub fn serves_groups(&self, test: &str) -> bool {
        let ok = self.serves(10);
        if !ok {
            note(&format!(
                "NOT APPLICABLE: {test}: the server does not advertise FindCoordinator (consumer groups)"
            ));
        }
        ok
    }
}
