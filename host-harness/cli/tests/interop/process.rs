//! Child processes that cannot hang a test: their pipes are drained by threads, every wait has a
//! deadline, and a process still running when its handle is dropped is killed.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A running child process.
pub struct Spawned {
    name: String,
    child: Child,
    lines: Receiver<String>,
    stdout: Vec<String>,
    stderr: Arc<Mutex<String>>,
    stderr_done: Receiver<()>,
}

/// What a finished process printed, and how it ended.
#[derive(Debug)]
pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// Both streams, for assertions about everything a user saw.
    pub fn printed(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    pub fn assert_success(&self, what: &str) {
        assert!(
            self.status.success(),
            "{what} failed ({}):\n{}",
            self.status,
            self.printed()
        );
    }

    pub fn assert_failure(&self, what: &str) {
        assert!(
            !self.status.success(),
            "{what} should have failed:\n{}",
            self.printed()
        );
    }
}

impl Spawned {
    /// Starts `command` with all three streams piped. With `input`, stdin gets it and is closed;
    /// without, stdin stays open until the handle is dropped, so that a server watching its stdin
    /// exits even if this test process is killed before it can kill the server.
    pub fn start(command: &mut Command, input: Option<&str>) -> Self {
        let name = format!("{command:?}");
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        if let Some(text) = input {
            let mut stdin = child.stdin.take().expect("stdin is piped");
            stdin.write_all(text.as_bytes()).expect("writing stdin");
        }

        let (line_tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let (done_tx, stderr_done) = mpsc::channel();
        let sink = Arc::clone(&stderr);
        let pipe = child.stderr.take().expect("stderr is piped");
        thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut line = String::new();
            while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
            let _ = done_tx.send(());
        });
        Self {
            name,
            child,
            lines,
            stdout: Vec::new(),
            stderr,
            stderr_done,
        }
    }

    /// The next line on stdout; fails the test if none comes within `limit`.
    pub fn next_line(&mut self, limit: Duration) -> String {
        match self.lines.recv_timeout(limit) {
            Ok(line) => {
                self.stdout.push(line.clone());
                line
            }
            Err(RecvTimeoutError::Timeout) => panic!(
                "{}: no line on stdout within {limit:?}; stderr so far:\n{}",
                self.name,
                self.stderr()
            ),
            Err(RecvTimeoutError::Disconnected) => panic!(
                "{}: stdout closed before a line came ({:?}); stderr:\n{}",
                self.name,
                self.child.try_wait(),
                self.stderr()
            ),
        }
    }

    /// What the process has written to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for the process to exit; kills it and fails the test if it takes longer than `limit`.
    pub fn finish(mut self, limit: Duration) -> Outcome {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("polling the child") {
                break status;
            }
            if Instant::now() >= deadline {
                // Dropping `self` kills it.
                panic!(
                    "{} did not exit within {limit:?}; stdout:\n{}\nstderr:\n{}",
                    self.name,
                    self.stdout.join("\n"),
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(20));
        };
        // The pipes reach end-of-file at exit, unless a grandchild still holds them: wait briefly.
        let grace = Instant::now() + Duration::from_secs(5);
        while let Ok(line) = self
            .lines
            .recv_timeout(grace.saturating_duration_since(Instant::now()))
        {
            self.stdout.push(line);
        }
        let _ = self
            .stderr_done
            .recv_timeout(grace.saturating_duration_since(Instant::now()));
        Outcome {
            status,
            stdout: self.stdout.join("\n"),
            stderr: self.stderr(),
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // Already exited is the common case; the errors say nothing useful then.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
