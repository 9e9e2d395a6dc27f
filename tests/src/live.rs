//! A client process that runs alongside the test (a consumer-group member): its stdout and stderr
//! lines are collected as they come, the test waits for conditions on them with a time bound, writes
//! command lines to its stdin, and can kill it with SIGKILL. Dropping it kills it.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::json::Json;
use crate::proc::{render, tail};

#[derive(Default)]
struct Lines {
    out: Vec<String>,
    err: Vec<String>,
}

pub struct Live {
    pub name: String,
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Lines>>,
    started: Instant,
}

fn pump(
    pipe: impl std::io::Read + Send + 'static,
    lines: Arc<Mutex<Lines>>,
    err: bool,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(pipe).split(b'\n') {
            let Ok(line) = line else { break };
            let s = String::from_utf8_lossy(&line).into_owned();
            let mut l = lines.lock().unwrap_or_else(|e| e.into_inner());
            if err { &mut l.err } else { &mut l.out }.push(s);
        }
    })
}

impl Live {
    /// Starts `cmd` with piped stdin, stdout and stderr.
    pub fn start(name: &str, cmd: &mut Command) -> Live {
        let what = render(cmd);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {what}: {e}"));
        let lines = Arc::new(Mutex::new(Lines::default()));
        pump(child.stdout.take().expect("stdout"), lines.clone(), false);
        pump(child.stderr.take().expect("stderr"), lines.clone(), true);
        crate::progress(&format!("{name} started: {what}"));
        Live {
            name: name.to_string(),
            what,
            stdin: child.stdin.take(),
            child,
            lines,
            started: Instant::now(),
        }
    }

    /// The stdout lines so far.
    pub fn out(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .out
            .clone()
    }

    /// The stderr lines so far.
    pub fn err(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .err
            .clone()
    }

    /// The stdout lines that are JSON objects (others, such as log lines, are skipped).
    pub fn json(&self) -> Vec<Json> {
        self.out()
            .iter()
            .filter(|l| l.trim_start().starts_with('{'))
            .filter_map(|l| Json::parse(l).ok())
            .collect()
    }

    /// JSON lines whose "event" is `event`.
    pub fn events(&self, event: &str) -> Vec<Json> {
        self.json()
            .into_iter()
            .filter(|j| j.get("event").as_str() == Some(event))
            .collect()
    }

    /// How many records a `KelpGroup.java produce` has had acknowledged so far: the `sent` count of
    /// its last `flushed` event (0 before the first).
    pub fn flushed(&self) -> usize {
        self.events("flushed")
            .last()
            .and_then(|j| j.get("sent").as_i64())
            .unwrap_or(0) as usize
    }

    /// Writes one line to its stdin (ignored when it has exited).
    pub fn send(&mut self, line: &str) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = writeln!(s, "{line}").and_then(|()| s.flush());
        }
    }

    /// Closes its stdin (the members treat EOF as `close`).
    pub fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    /// Its exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits at most `limit` for it to exit; kills it past that. Returns the status when it exited by itself.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(s) = self.exited() {
                crate::progress(&format!(
                    "{} exited ({s}) after {:.1?}",
                    self.name,
                    self.started.elapsed()
                ));
                return Some(s);
            }
            thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
        None
    }

    /// SIGKILL (`kill -9`), then reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stdin = None;
        crate::progress(&format!("{} killed (SIGKILL)", self.name));
    }

    /// SIGTERM (kcat closes its consumer on it).
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// One paragraph for failure messages: the command, the tail of its stderr and stdout.
    pub fn story(&self) -> String {
        let l = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        format!(
            "--- {} `{}`\n--- stderr (tail) ---\n{}\n--- stdout (tail) ---\n{}",
            self.name,
            self.what,
            tail(l.err.join("\n").as_bytes(), 30),
            tail(l.out.join("\n").as_bytes(), 15)
        )
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` every 100 ms until it returns `Some`, at most `limit`; panics with `what` and the
/// story of each of `procs` when it does not.
pub fn wait_for<T>(
    limit: Duration,
    what: &str,
    procs: &[&Live],
    mut cond: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = cond() {
            crate::progress(&format!("{what}: after {:.1?}", start.elapsed()));
            return v;
        }
        if start.elapsed() > limit {
            let stories: Vec<String> = procs.iter().map(|p| p.story()).collect();
            panic!(
                "timed out after {limit:?} waiting for: {what}\n{}",
                stories.join("\n")
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
}
