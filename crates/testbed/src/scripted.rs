//! Peers of the official SDKs driven one command line at a time: the Python SDK running a
//! script of `tests/python/` ([`ScriptedPeer`]) or Chromium running livekit-client
//! ([`crate::browser::BrowserPeer::data`]). Both speak one line protocol: `READY …` once
//! joined, then each command answered `OK <command>` (or `ERR <command> <why>`), with the
//! command's own lines before. [`LinePeer`] lets one scenario drive either.
//!
//! These are test helpers: a failure panics with what the peer printed.

use std::time::{Duration, Instant};

use crate::LiveKitServer;

/// An official-SDK participant driven line by line (`tests/python/room_peer.py`): each command
/// is acknowledged with `OK <command>` before `send` returns.
pub struct ScriptedPeer {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
    /// The peer's participant sid.
    pub sid: String,
}

impl ScriptedPeer {
    /// `tests/python/room_peer.py` joining `room` as `identity` (publishes, mutes, renames on
    /// command).
    pub fn join(server: &LiveKitServer, room: &str, identity: &str) -> Self {
        Self::join_script(server, "room_peer.py", room, identity)
    }

    /// Like [`ScriptedPeer::join`] with another script of `tests/python/` (same protocol:
    /// `READY <sid>`, then commands answered `OK <command>`).
    pub fn join_script(server: &LiveKitServer, script: &str, room: &str, identity: &str) -> Self {
        let mut child = crate::python_command(server, script)
            .expect("python venv")
            .args([room, identity])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {script}: {e}"));
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut peer = Self {
            child,
            stdin,
            lines,
            sid: String::new(),
        };
        peer.sid = peer.expect_line("READY", Duration::from_secs(20));
        peer
    }

    /// Wait for a line starting with `prefix` and return the rest (panics on `ERR` lines).
    pub fn expect_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.trim().to_owned();
                    }
                    if line.starts_with("ERR") {
                        panic!("python peer: {line}");
                    }
                }
                Err(_) => panic!("python peer did not print {prefix:?} within {timeout:?}"),
            }
        }
    }

    /// Run one command and wait for its acknowledgement.
    pub fn send(&mut self, command: &str) {
        self.send_within(command, Duration::from_secs(20));
    }

    /// Run one command and wait up to `timeout` for its acknowledgement.
    pub fn send_within(&mut self, command: &str, timeout: Duration) {
        self.write_line(command);
        self.expect_line(&format!("OK {command}"), timeout);
    }

    /// Write one command without waiting.
    pub fn write_line(&mut self, command: &str) {
        use std::io::Write;
        writeln!(self.stdin, "{command}").expect("write to python peer");
        self.stdin.flush().expect("flush");
    }
}

/// A peer of another SDK driven by command lines, each acknowledged `OK <command>`: the Python
/// SDK ([`ScriptedPeer`]) or Chromium with livekit-client (`BrowserPeer::data`). Blocking: call
/// from `block_in_place` in a multi-threaded runtime.
pub trait LinePeer {
    /// Write one command without waiting.
    fn write_line(&mut self, command: &str);
    /// Wait for a line starting with `prefix`; the rest (panics on a failed command).
    fn expect_line(&mut self, prefix: &str, timeout: Duration) -> String;

    /// Run `command`, return the rest of its `prefix` line, and wait for its `OK`.
    fn run(&mut self, command: &str, prefix: &str, timeout: Duration) -> String {
        self.write_line(command);
        let rest = self.expect_line(prefix, timeout);
        self.expect_line(&format!("OK {command}"), Duration::from_secs(10));
        rest
    }

    /// Run `command` and wait up to `timeout` for its `OK`.
    fn run_quiet(&mut self, command: &str, timeout: Duration) {
        self.write_line(command);
        self.expect_line(&format!("OK {command}"), timeout);
    }
}

impl LinePeer for ScriptedPeer {
    fn write_line(&mut self, command: &str) {
        ScriptedPeer::write_line(self, command);
    }

    fn expect_line(&mut self, prefix: &str, timeout: Duration) -> String {
        ScriptedPeer::expect_line(self, prefix, timeout)
    }
}

impl LinePeer for crate::browser::BrowserPeer {
    fn write_line(&mut self, command: &str) {
        self.command(command).unwrap_or_else(|e| panic!("{e}"));
    }

    fn expect_line(&mut self, prefix: &str, timeout: Duration) -> String {
        self.wait_line(prefix, timeout)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for ScriptedPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
