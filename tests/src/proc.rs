//! Running client processes with a time bound: every process a test starts is killed at its deadline
//! (or when the test panics), and its output is kept for the failure message.

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// What a finished (or killed) process left behind.
pub struct Output {
    pub what: String,
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub elapsed: Duration,
    pub timed_out: bool,
}

impl Output {
    pub fn success(&self) -> bool {
        !self.timed_out && self.status.is_some_and(|s| s.success())
    }

    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// One paragraph for a failure message: the command, how it ended, the tail of its stderr and stdout.
    pub fn describe(&self) -> String {
        let how = if self.timed_out {
            format!("killed after {:?} (time limit)", self.elapsed)
        } else {
            format!(
                "{} after {:.1?}",
                self.status.map_or("no status".into(), |s| s.to_string()),
                self.elapsed
            )
        };
        format!(
            "`{}` {how}\n--- stderr (tail) ---\n{}\n--- stdout (tail) ---\n{}",
            self.what,
            tail(&self.stderr, 40),
            tail(&self.stdout, 10)
        )
    }
}

/// The last `lines` lines of `b`, each cut at 300 characters (a 1 MiB value stays readable).
pub fn tail(b: &[u8], lines: usize) -> String {
    let s = String::from_utf8_lossy(b);
    let all: Vec<&str> = s.lines().collect();
    let from = all.len().saturating_sub(lines);
    all[from..]
        .iter()
        .map(|l| {
            if l.chars().count() > 300 {
                format!("{}...", l.chars().take(300).collect::<String>())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A shell-like rendering of a command, for messages.
pub fn render(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.contains(' ') || a.is_empty() {
            s.push_str(&format!(" '{a}'"));
        } else {
            s.push(' ');
            s.push_str(&a);
        }
    }
    s
}

/// Kills the child when dropped (a panicking test leaves nothing running).
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `cmd` with `stdin` as its input, killing it after `limit`.
pub fn run(cmd: &mut Command, stdin: Option<&[u8]>, limit: Duration) -> Output {
    let what = render(cmd);
    let start = Instant::now();
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Output {
                what: what.clone(),
                status: None,
                stdout: Vec::new(),
                stderr: format!("could not start {what}: {e}").into_bytes(),
                elapsed: start.elapsed(),
                timed_out: false,
            };
        }
    };
    let mut guard = Guard(Some(child));
    let child = guard.0.as_mut().unwrap();
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_t = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_t = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let in_t = stdin.map(|data| {
        let mut pipe = child.stdin.take().unwrap();
        let data = data.to_vec();
        thread::spawn(move || {
            let _ = pipe.write_all(&data);
        })
    });
    let deadline = start + limit;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(_) => break None,
        }
    };
    guard.0 = None;
    if let Some(t) = in_t {
        let _ = t.join();
    }
    Output {
        what,
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
        elapsed: start.elapsed(),
        timed_out,
    }
}

/// Like [`run`], panicking with the process's story unless it exited 0.
pub fn run_ok(cmd: &mut Command, stdin: Option<&[u8]>, limit: Duration) -> Output {
    let out = run(cmd, stdin, limit);
    crate::progress(&format!("{:.1?} {}", out.elapsed, out.what));
    if !out.success() {
        panic!("command failed: {}", out.describe());
    }
    out
}
