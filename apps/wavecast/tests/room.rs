//! `wavecast chat` and `wavecast rpc call|serve` against a real livekit-server: chat both ways
//! with the official Python SDK (in order, none lost, the `--json` shape), transcriptions as
//! LiveKit's agents publish them, RPC calls against `rpc serve` (a response, each error code
//! a script meets), and clear errors for bad input.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wavecast_testbed::LiveKitServer;
use wavecast_testbed::apps::wait;
use wavecast_testbed::scripted::ScriptedPeer;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_wavecast"))
}

/// The CLI against `server` (dev keys as flags), in an empty directory with a clean env.
fn cli(server_url: &str, dir: &Path) -> Command {
    let mut c = Command::new(bin());
    c.args([
        "--url",
        server_url,
        "--api-key",
        "devkey",
        "--api-secret",
        "secret",
    ])
    .current_dir(dir)
    .env_remove("LIVEKIT_URL")
    .env_remove("LIVEKIT_API_KEY")
    .env_remove("LIVEKIT_API_SECRET")
    .env_remove("LIVEKIT_TOKEN");
    c
}

/// A running `wavecast` with stdin to write and its output lines to read.
struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Receiver<String>,
    err: Receiver<String>,
    stderr: Vec<String>,
}

fn lines_of(r: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Running {
    fn start(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wavecast");
        let out = lines_of(child.stdout.take().unwrap());
        let err = lines_of(child.stderr.take().unwrap());
        Self {
            stdin: child.stdin.take(),
            child,
            out,
            err,
            stderr: Vec::new(),
        }
    }

    /// Waits for a stderr line containing `what`.
    fn stderr_line(&mut self, what: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.err.recv_timeout(left) {
                Ok(line) => {
                    self.stderr.push(line.clone());
                    if line.contains(what) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no {what:?} on stderr within {timeout:?}: {:?}",
                    self.stderr
                ),
            }
        }
    }

    /// The next `n` stdout lines.
    fn stdout_lines(&mut self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.out.recv_timeout(left) {
                Ok(line) => got.push(line),
                Err(_) => panic!("{} of {n} lines within {timeout:?}: {got:?}", got.len()),
            }
        }
        got
    }

    fn write(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write stdin");
    }

    /// Closes stdin and waits for the exit code.
    fn end(mut self, timeout: Duration) -> i32 {
        drop(self.stdin.take());
        let status = wait(&mut self.child, timeout);
        while let Ok(l) = self.err.try_recv() {
            self.stderr.push(l);
        }
        let stderr = self.stderr.join("\n");
        assert!(!stderr.contains("panicked"), "{stderr}");
        status.and_then(|s| s.code()).unwrap_or(-1)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

#[test]
fn chat_both_ways_with_the_python_sdk() {
    let server = LiveKitServer::start().expect("livekit-server starts");
    let url = server.ws_url();
    let dir = tempfile::tempdir().unwrap();
    let room = "chat";
    let mut py = ScriptedPeer::join_script(&server, "stream_peer.py", room, "py");

    let mut c = cli(&url, dir.path());
    c.args([
        "--json",
        "chat",
        room,
        "--identity",
        "cli",
        "--name",
        "The CLI",
    ]);
    let mut chat = Running::start(c);
    chat.stderr_line("joined room chat as cli", Duration::from_secs(30));
    let mut c = cli(&url, dir.path());
    c.args(["chat", room, "--identity", "plain"]);
    let mut plain = Running::start(c);
    plain.stderr_line("joined room chat as plain", Duration::from_secs(30));

    // stdin → Python: every line, in order, none lost.
    let n = 300;
    let sent: Vec<String> = (0..n).map(|i| format!("cli {i} ✓")).collect();
    for line in &sent {
        chat.write(line);
    }
    chat.write("");
    py.write_line(&format!("chat-report {n}"));
    let report = py.expect_line("CHAT", Duration::from_secs(70));
    let want = format!("{:x}", Sha256::digest(sent.join("\n").as_bytes()));
    assert_eq!(report, format!("{n} cli {want}"), "the Python SDK's report");
    // … and to the other wavecast client, as `HH:MM:SS sender: text`.
    let clock_of = |line: &str| {
        let (clock, rest) = line.split_at(9);
        let b = clock.as_bytes();
        assert!(b[2] == b':' && b[5] == b':' && b[8] == b' ', "{line}");
        rest.to_owned()
    };
    let lines = plain.stdout_lines(n, Duration::from_secs(30));
    for (line, text) in lines.iter().zip(&sent) {
        assert_eq!(clock_of(line), format!("cli: {text}"));
    }

    // Python → both clients: JSON lines in order, and `HH:MM:SS sender: text`.
    py.send(&format!("send-chat {n}"));
    let lines = chat.stdout_lines(n, Duration::from_secs(30));
    for (i, line) in lines.iter().enumerate() {
        let m = json(line);
        assert_eq!(m["text"], format!("py {i}"), "{line}");
        assert_eq!(m["sender"], "py", "{line}");
        assert_eq!(m["topic"], "lk.chat", "{line}");
        let time = m["time"].as_str().expect("time");
        assert!(
            time.len() == 24 && time.ends_with('Z'),
            "RFC 3339 UTC: {line}"
        );
        assert!(
            m.get("segment_id").is_none() && m.get("final").is_none(),
            "{line}"
        );
    }
    let lines = plain.stdout_lines(n, Duration::from_secs(30));
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(clock_of(line), format!("py: py {i}"), "{line}");
    }

    // Transcriptions as an agent publishes them: the segment, its track and whether it is final.
    let mut agent = ScriptedPeer::join_script(&server, "caption_peer.py", room, "speaker");
    let track = agent.sid.clone();
    agent.send("transcribe SG_7 false hello wor");
    agent.send("transcribe SG_7 true hello world");
    let lines = chat.stdout_lines(2, Duration::from_secs(20));
    let (interim, done) = (json(&lines[0]), json(&lines[1]));
    for (m, text, fin) in [(&interim, "hello wor", false), (&done, "hello world", true)] {
        assert_eq!(m["topic"], "lk.transcription");
        assert_eq!(m["sender"], "agent");
        assert_eq!(m["text"], text);
        assert_eq!(m["segment_id"], "SG_7");
        assert_eq!(m["track_id"], track.as_str());
        assert_eq!(m["final"], fin);
    }
    let lines = plain.stdout_lines(2, Duration::from_secs(20));
    assert!(
        lines[0].ends_with(" agent (interim): hello wor"),
        "{lines:?}"
    );
    assert!(
        lines[1].ends_with(" agent (transcript): hello world"),
        "{lines:?}"
    );
    // The agents' own speech: one stream written word by word, final only in its trailer.
    agent.send("deltas SG_8 how are you");
    let m = json(&chat.stdout_lines(1, Duration::from_secs(20))[0]);
    assert_eq!(
        (m["text"].as_str(), m["final"].as_bool()),
        (Some("how are you"), Some(true)),
        "{m}"
    );
    let line = &plain.stdout_lines(1, Duration::from_secs(20))[0];
    assert!(line.ends_with(" agent (transcript): how are you"), "{line}");

    // Lines piped in, then end of input at once: all delivered before leaving.
    let piped: Vec<String> = (0..50).map(|i| format!("piped {i}")).collect();
    let mut c = cli(&url, dir.path());
    c.args(["chat", room, "--identity", "pipe"]);
    let o = run_with(c, &(piped.join("\n") + "\n"));
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    py.write_line(&format!("chat-report {}", n + piped.len()));
    let report = py.expect_line("CHAT", Duration::from_secs(70));
    let all = [sent.clone(), piped].concat().join("\n");
    let want = format!("{:x}", Sha256::digest(all.as_bytes()));
    assert_eq!(report, format!("{} cli,pipe {want}", all.lines().count()));

    // End of stdin leaves the room cleanly; so does SIGTERM.
    assert_eq!(chat.end(Duration::from_secs(15)), 0);
    wavecast_testbed::apps::send_signal(plain.child.id(), "TERM");
    assert_eq!(plain.end(Duration::from_secs(15)), 0);
}

/// Runs the CLI to the end (stdin from `input`).
fn run_with(mut c: Command, input: &str) -> Output {
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run wavecast");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().expect("wavecast output")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn rpc_call_against_rpc_serve() {
    let server = LiveKitServer::start().expect("livekit-server starts");
    let url = server.ws_url();
    let dir = tempfile::tempdir().unwrap();
    let room = "rpc";
    let script = r#"case "$WAVECAST_RPC_METHOD" in
        shout) tr a-z A-Z; printf ' from %s' "$WAVECAST_RPC_CALLER" ;;
        fail) echo "no good" >&2; exit 3 ;;
        slow) sleep 30 ;;
    esac"#;
    let mut c = cli(&url, dir.path());
    c.args(["rpc", "serve", room, "--identity", "srv"])
        .args(["--method", "shout", "--method", "fail", "--method", "slow"])
        .args(["--exec", script]);
    let mut serve = Running::start(c);
    serve.stderr_line("serving shout, fail, slow as srv", Duration::from_secs(30));
    let mut c = cli(&url, dir.path());
    c.args([
        "rpc",
        "serve",
        room,
        "--identity",
        "echo",
        "--method",
        "echo",
        "--echo",
    ]);
    let mut echo = Running::start(c);
    echo.stderr_line("serving echo as echo", Duration::from_secs(30));

    let call = |args: &[&str], input: &str| {
        let mut c = cli(&url, dir.path());
        c.args(["rpc", "call", room, "--identity", "caller"])
            .args(args);
        let o = run_with(c, input);
        let (out, err) = text(&o);
        (o.status.code().unwrap_or(-1), out, err)
    };

    // A response: stdout, exit 0 (the payload reached the command's stdin).
    let (code, out, err) = call(
        &["--to", "srv", "--method", "shout", "--payload", "hi there"],
        "",
    );
    assert_eq!((code, out.as_str()), (0, "HI THERE from caller\n"), "{err}");
    // The payload from stdin, answered by --echo.
    let (code, out, err) = call(
        &["--to", "echo", "--method", "echo", "--payload", "-"],
        "from\nstdin",
    );
    assert_eq!((code, out.as_str()), (0, "from\nstdin\n"), "{err}");

    // A failing command: application error 1500 with its stderr as the message; exit 5.
    let (code, out, err) = call(&["--to", "srv", "--method", "fail", "--json"], "");
    assert_eq!(code, 5, "{out}{err}");
    let e = json(out.trim());
    assert_eq!(
        (e["code"].as_u64(), e["message"].as_str()),
        (Some(1500), Some("no good")),
        "{out}"
    );
    assert!(err.contains("RPC error 1500: no good"), "{err}");
    // A method nobody serves: 1400.
    let (code, out, err) = call(&["--to", "srv", "--method", "nope"], "");
    assert_eq!(code, 5, "{out}{err}");
    assert!(err.contains("RPC error 1400"), "{err}");
    // No response in time: 1502.
    let (code, out, err) = call(&["--to", "srv", "--method", "slow", "--timeout", "1s"], "");
    assert_eq!(code, 5, "{out}{err}");
    assert!(err.contains("RPC error 1502"), "{err}");

    // The servers logged each call and leave on SIGINT with exit 0.
    serve.stderr_line(
        "caller called fail: failed: RPC error 1500: no good",
        Duration::from_secs(5),
    );
    for s in [serve, echo] {
        wavecast_testbed::apps::send_signal(s.child.id(), "INT");
        assert_eq!(s.end(Duration::from_secs(15)), 0);
    }
}

#[test]
fn bad_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut c = cli("ws://127.0.0.1:9", dir.path());
        c.args(args);
        let o = run_with(c, "");
        let (out, err) = text(&o);
        (o.status.code().unwrap_or(-1), out, err)
    };
    let (code, _, err) = run(&["chat"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("<ROOM>"), "{err}");
    let (code, _, err) = run(&["chat", "r", "--bogus"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--bogus"), "{err}");
    let (code, _, err) = run(&["rpc", "call", "r", "--method", "m"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--to"), "{err}");
    let (code, _, err) = run(&["rpc", "serve", "r", "--method", "m"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--exec") && err.contains("--echo"), "{err}");
    let (code, _, err) = run(&[
        "rpc",
        "call",
        "r",
        "--to",
        "x",
        "--method",
        "m",
        "--timeout",
        "soon",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--timeout"), "{err}");
    let big = "x".repeat(16 * 1024);
    let (code, _, err) = run(&[
        "rpc",
        "call",
        "r",
        "--to",
        "x",
        "--method",
        "m",
        "--payload",
        &big,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("over 15360 bytes"), "{err}");

    // Help shows the defaults.
    let (code, out, _) = run(&["rpc", "call", "--help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("[default: 15s]") && out.contains("--payload <PAYLOAD|->"),
        "{out}"
    );
    let (_, out, _) = run(&["chat", "--help"]);
    assert!(
        out.contains("<ROOM>") && out.contains("--identity"),
        "{out}"
    );

    // Nobody listening: the retries are told, then exit 3.
    let mut c = cli("ws://127.0.0.1:9", dir.path());
    c.args(["chat", "r"])
        .env("WAVECAST_RECONNECT__MAX_ATTEMPTS", "1")
        .env("WAVECAST_RECONNECT__INITIAL_DELAY", "100ms");
    let o = run_with(c, "");
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("gave up after 1 retries"), "{err}");
}
