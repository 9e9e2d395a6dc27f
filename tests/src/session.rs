//! A client program that stays up and answers one JSON line per command line on its stdin (the Java
//! admin session, `clients/java/KelpAdmin.java`): one JVM start for a whole test instead of one per
//! step. Every answer is awaited with a time limit; the process is killed when the session is dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::json::Json;
use crate::proc::{render, tail};

pub struct Session {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
    limit: Duration,
}

impl Session {
    /// Starts `cmd` with piped stdin/stdout/stderr; each [`Session::call`] waits at most `limit`.
    pub fn start(cmd: &mut Command, limit: Duration) -> Session {
        let what = render(cmd);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {what}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut err_pipe = child.stderr.take().expect("piped stderr");
        let (tx, lines) = channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&buf[..n]);
            }
        });
        crate::progress(&format!("session started: {what}"));
        Session {
            what,
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
            limit,
        }
    }

    fn story(&self) -> String {
        let err = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        format!("`{}`\n--- stderr (tail) ---\n{}", self.what, tail(&err, 40))
    }

    /// Sends one command line and returns the JSON line that answers it (panics, with the
    /// program's stderr, when it exits, stays silent past the limit or prints something else).
    pub fn call(&mut self, command: &str) -> Json {
        let start = Instant::now();
        let sent = self
            .stdin
            .as_mut()
            .map(|s| writeln!(s, "{command}").and_then(|()| s.flush()));
        if !matches!(sent, Some(Ok(()))) {
            panic!(
                "{command}: could not write to the session: {sent:?}\n{}",
                self.story()
            );
        }
        let line = match self.lines.recv_timeout(self.limit) {
            Ok(l) => l,
            Err(RecvTimeoutError::Timeout) => panic!(
                "{command}: no answer within {:?}\n{}",
                self.limit,
                self.story()
            ),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.wait().ok();
                panic!(
                    "{command}: the session ended ({status:?})\n{}",
                    self.story()
                )
            }
        };
        let j = Json::parse(&line).unwrap_or_else(|e| {
            panic!(
                "{command}: answer is not JSON: {e}: {}\n{}",
                tail(line.as_bytes(), 1),
                self.story()
            )
        });
        crate::progress(&format!(
            "{:.1?} {command} -> {}",
            start.elapsed(),
            tail(line.as_bytes(), 1)
        ));
        j
    }

    /// Like [`Session::call`], panicking when the answer is an error.
    pub fn ok(&mut self, command: &str) -> Json {
        let j = self.call(command);
        if let Some(e) = j.get("error").as_str() {
            panic!(
                "{command}: refused with {e}: {}\n{}",
                j.get("message").as_str().unwrap_or(""),
                self.story()
            );
        }
        j
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // EOF on stdin ends the session; kill it if it does not end at once
        drop(self.stdin.take());
        let wait = if thread::panicking() { 0 } else { 10 };
        let deadline = Instant::now() + Duration::from_secs(wait);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
