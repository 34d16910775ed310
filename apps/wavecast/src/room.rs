//! `wavecast chat` and `wavecast rpc`: take part in a room as a participant (feature `room`,
//! which links the media engine).
//!
//! Exit codes: 0 done, 1 runtime error, 2 bad flags or configuration, 3 server unreachable (the
//! reconnect policy gave up), 4 the server refused the token or URL, 5 the RPC call failed (its
//! code, message and data printed).

use std::collections::HashMap;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use wavecast_app::chat::{self, TextMessage};
use wavecast_app::{Connector, Credentials, Followed};
use wavecast_session::{
    MAX_RPC_PAYLOAD_BYTES, PerformRpcData, Room, RoomEvents, RpcError, RpcErrorCode,
    RpcInvocationData, StreamTextOptions, TOPIC_CHAT, TextStreamReader,
};
use wavecast_token::Preset;

use crate::{Global, keys, load_config};

/// Exit code of `wavecast rpc call` when the call failed.
pub const EXIT_RPC_ERROR: u8 = 5;

/// How long `chat` waits after its last message before leaving: leaving does not wait for the
/// reliable data channel to drain (messages still in flight when the leave goes out are lost).
const SEND_GRACE: Duration = Duration::from_millis(1000);

/// A sender's reading task ends after this long without a message from them.
const SENDER_IDLE: Duration = Duration::from_secs(60);

/// Streams that may wait to be printed (a flood beyond is dropped and counted).
const PRINT_QUEUE: usize = 4096;

/// Where to join and as whom.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// Room to join (with --token: the token's room).
    pub room: String,
    /// Participant identity [default: wavecast-<command>-<random>].
    #[arg(long)]
    pub identity: Option<String>,
    /// Display name others see [default: the identity].
    #[arg(long)]
    pub name: Option<String>,
    /// Join with this access token instead of minting one from the API key and secret.
    #[arg(long, env = "LIVEKIT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// `wavecast chat`.
#[derive(Debug, Args)]
pub struct ChatArgs {
    #[command(flatten)]
    join: JoinArgs,
}

/// `wavecast rpc`.
#[derive(Debug, Subcommand)]
pub enum RpcCmd {
    /// Call a method of a participant and print its response (exit 5 with the error's code,
    /// message and data when the call fails).
    Call(CallArgs),
    /// Answer calls of methods until Ctrl-C or SIGTERM.
    Serve(ServeArgs),
}

/// `wavecast rpc call`.
#[derive(Debug, Args)]
pub struct CallArgs {
    #[command(flatten)]
    join: JoinArgs,
    /// The participant to call (identity).
    #[arg(long, value_name = "IDENTITY")]
    to: String,
    /// The method.
    #[arg(long, value_name = "METHOD")]
    method: String,
    /// The request payload; `-` reads it from stdin (at most 15 KiB) [default: empty].
    #[arg(long, value_name = "PAYLOAD|-")]
    payload: Option<String>,
    /// How long to wait for the response once the call is acknowledged.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// `wavecast rpc serve`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("answer").required(true).args(["exec", "echo"])))]
pub struct ServeArgs {
    #[command(flatten)]
    join: JoinArgs,
    /// A method to answer (repeatable).
    #[arg(long, value_name = "METHOD", required = true)]
    method: Vec<String>,
    /// Answer with the output of `sh -c CMD`: the payload on its stdin, its stdout the response;
    /// a non-zero exit answers application error 1500 with its stderr as the message. Its
    /// environment has WAVECAST_RPC_METHOD, WAVECAST_RPC_CALLER and WAVECAST_RPC_REQUEST_ID.
    #[arg(long, value_name = "CMD")]
    exec: Option<String>,
    /// Answer with the request's payload.
    #[arg(long)]
    echo: bool,
}

/// A joined room with the connector that follows its connection.
struct Joined {
    connector: Connector,
    room: Room,
    events: RoomEvents,
}

/// The connector that joins `a.room` as `a.identity` (default `wavecast-<what>-<random>`) with
/// the token given, else one minted from the configured key and secret (broadcaster grants:
/// data may be published), retrying per the configured policy.
fn connector(g: &Global, a: &JoinArgs, what: &str) -> Result<Connector> {
    let config = load_config(g)?;
    let credentials = match &a.token {
        Some(t) => Credentials::Token(t.clone()),
        None => {
            let identity = a.identity.clone().unwrap_or_else(|| {
                format!(
                    "wavecast-{what}-{:04x}",
                    wavecast_app::random_u64() & 0xffff
                )
            });
            Credentials::Mint {
                keys: keys(&config)?,
                name: a.name.clone().unwrap_or_else(|| identity.clone()),
                identity,
                room: a.room.clone(),
                preset: Preset::Broadcaster,
            }
        }
    };
    Ok(Connector::new(
        config.connection.url.clone(),
        credentials,
        config.reconnect.clone(),
        config.connection.connect_timeout,
    ))
}

/// Joins through `connector`; on failure, the exit code to end with (its message printed).
async fn join(connector: Connector) -> Result<Joined, ExitCode> {
    match connector.connect().await {
        Ok((room, events)) => Ok(Joined {
            connector,
            room,
            events,
        }),
        Err(e) => {
            eprintln!("error: {e}");
            Err(ExitCode::from(e.exit_code()))
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the async runtime")
}

/// Ctrl-C or SIGTERM.
async fn interrupted() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// Leaves (bounded) and tells the connector it was a normal leave.
async fn leave(j: &Joined) {
    if tokio::time::timeout(Duration::from_secs(5), j.room.close())
        .await
        .is_err()
    {
        tracing::warn!("the room did not close within 5 s");
    }
    j.connector.left();
}

/// `wavecast chat ROOM`: stdin lines → `lk.chat`; chat and transcriptions → stdout.
pub fn chat(g: &Global, a: ChatArgs) -> Result<ExitCode> {
    let connector = connector(g, &a.join, "chat")?;
    let json = g.json;
    runtime()?.block_on(async move {
        let mut j = match join(connector).await {
            Ok(j) => j,
            Err(code) => return Ok(code),
        };
        let incoming = chat::listen_with(&j.room, PRINT_QUEUE)?;
        let printer = tokio::spawn(print_streams(incoming, json));
        eprintln!(
            "joined room {} as {}: lines on stdin are sent as chat (Ctrl-D or Ctrl-C leaves)",
            j.room.name().unwrap_or_default(),
            j.room.local_participant().identity()
        );
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        let me = j.room.local_participant().clone();
        let mut last_sent = None;
        // Listening from now on: a signal that arrives while a message is sent is not lost.
        let stop = interrupted();
        tokio::pin!(stop);
        let failure = loop {
            tokio::select! {
                line = lines.next_line() => match line.context("read stdin")? {
                    Some(line) if line.trim().is_empty() => {}
                    Some(line) => {
                        me.send_text(&line, StreamTextOptions::topic(TOPIC_CHAT))
                            .await
                            .context("send a chat message")?;
                        last_sent = Some(tokio::time::Instant::now());
                    }
                    None => {
                        // The engine leaves without draining the data channel: give the last
                        // messages time to go out first (see SEND_GRACE).
                        if let Some(at) = last_sent {
                            tokio::time::sleep_until(at + SEND_GRACE).await;
                        }
                        break None;
                    }
                },
                ev = j.events.recv() => match ev {
                    Some(ev) => if let Followed::Ended { failure } = j.connector.follow(&ev) {
                        break failure;
                    },
                    None => break None,
                },
                _ = &mut stop => break None,
            }
        };
        leave(&j).await;
        printer.abort();
        Ok(wavecast_app::end_of_run(failure, None))
    })
}

/// Prints each chat message once read whole, each sender's in the order they were sent (one
/// reading task per sender: a sender whose message never ends holds up only their own);
/// transcriptions are read on tasks of their own (a segment written for a long time holds
/// nobody up) and printed as each stream ends.
async fn print_streams(mut incoming: chat::Incoming, json: bool) {
    let mut senders: HashMap<String, mpsc::Sender<TextStreamReader>> = HashMap::new();
    while let Some((reader, sender)) = incoming.recv().await {
        if chat::is_transcription(&reader.info().topic) {
            tokio::spawn(async move {
                if let Some(m) = read_message(reader, sender.as_str()).await {
                    print_message(&m, json);
                }
            });
            continue;
        }
        senders.retain(|_, queue| !queue.is_closed());
        let key = sender.to_string();
        let reader = match senders.get(&key) {
            None => reader,
            Some(queue) => match queue.try_send(reader) {
                Ok(()) => continue,
                // The sender's task just ended (idle): start another.
                Err(mpsc::error::TrySendError::Closed(reader)) => reader,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!("chat from {key} arrives faster than it prints: one dropped");
                    continue;
                }
            },
        };
        let (tx, mut rx) = mpsc::channel::<TextStreamReader>(PRINT_QUEUE);
        let _ = tx.try_send(reader);
        let name = key.clone();
        tokio::spawn(async move {
            // Ends after a minute without messages from this sender.
            while let Ok(Some(reader)) = tokio::time::timeout(SENDER_IDLE, rx.recv()).await {
                if let Some(m) = read_message(reader, &name).await {
                    print_message(&m, json);
                }
            }
            // What was queued while the wait ran out is still printed.
            rx.close();
            while let Ok(reader) = rx.try_recv() {
                if let Some(m) = read_message(reader, &name).await {
                    print_message(&m, json);
                }
            }
        });
        senders.insert(key, tx);
    }
}

/// One message on stdout: a line, or a JSON object with `json`.
fn print_message(m: &TextMessage, json: bool) {
    if json {
        match serde_json::to_string(&m.json()) {
            Ok(s) => println!("{s}"),
            Err(e) => tracing::warn!("cannot print a message as JSON: {e}"),
        }
    } else {
        println!("{}", m.line());
    }
}

/// The whole text of a stream as a message, with the attributes of its header and trailer
/// (`None`, logged, when the stream failed).
async fn read_message(mut reader: TextStreamReader, sender: &str) -> Option<TextMessage> {
    let mut text = String::new();
    while let Some(piece) = reader.next().await {
        match piece {
            Ok(piece) => text.push_str(&piece),
            Err(e) => {
                tracing::warn!(
                    "a {} message from {sender} was lost: {e}",
                    reader.info().topic
                );
                return None;
            }
        }
    }
    Some(TextMessage::new(
        reader.info(),
        sender,
        text,
        SystemTime::now(),
    ))
}

/// `wavecast rpc call|serve`.
pub fn rpc(g: &Global, cmd: RpcCmd) -> Result<ExitCode> {
    match cmd {
        RpcCmd::Call(a) => call(g, a),
        RpcCmd::Serve(a) => serve(g, a),
    }
}

/// What `rpc call --json` prints on failure.
#[derive(Debug, Serialize)]
struct JsonRpcError<'a> {
    code: u32,
    message: &'a str,
    data: Option<&'a str>,
}

fn call(g: &Global, a: CallArgs) -> Result<ExitCode> {
    let payload = if a.payload.as_deref() == Some("-") {
        let mut s = String::new();
        let stdin = std::io::stdin();
        std::io::Read::read_to_string(
            &mut std::io::Read::take(stdin, MAX_RPC_PAYLOAD_BYTES as u64 + 1),
            &mut s,
        )
        .context("--payload -: read the payload from stdin")?;
        s
    } else {
        a.payload.clone().unwrap_or_default()
    };
    if payload.len() > MAX_RPC_PAYLOAD_BYTES {
        bail!("the payload is over {MAX_RPC_PAYLOAD_BYTES} bytes (the RPC limit)");
    }
    let connector = connector(g, &a.join, "rpc")?;
    let json = g.json;
    runtime()?.block_on(async move {
        let j = match join(connector).await {
            Ok(j) => j,
            Err(code) => return Ok(code),
        };
        let result = j
            .room
            .local_participant()
            .perform_rpc_with(PerformRpcData {
                destination_identity: a.to.clone(),
                method: a.method.clone(),
                payload,
                response_timeout: a.timeout,
                ..PerformRpcData::default()
            })
            .await;
        leave(&j).await;
        Ok(match result {
            Ok(response) => {
                if json {
                    println!("{}", serde_json::json!({ "response": response }));
                } else {
                    println!("{response}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                if json {
                    let out = JsonRpcError {
                        code: e.code,
                        message: &e.message,
                        data: e.data.as_deref(),
                    };
                    println!("{}", serde_json::to_string(&out)?);
                }
                eprintln!("error: {} {}: {e}", a.to, a.method);
                if let Some(data) = &e.data {
                    eprintln!("  data: {data}");
                }
                ExitCode::from(EXIT_RPC_ERROR)
            }
        })
    })
}

/// How `rpc serve` answers.
#[derive(Debug, Clone)]
enum Answer {
    Echo,
    Exec(Arc<str>),
}

fn serve(g: &Global, a: ServeArgs) -> Result<ExitCode> {
    let answer = match (&a.exec, a.echo) {
        (Some(cmd), _) => Answer::Exec(cmd.as_str().into()),
        (None, _) => Answer::Echo,
    };
    let connector = connector(g, &a.join, "rpc")?;
    runtime()?.block_on(async move {
        let mut j = match join(connector).await {
            Ok(j) => j,
            Err(code) => return Ok(code),
        };
        let me = j.room.local_participant().clone();
        for method in &a.method {
            let answer = answer.clone();
            let name: Arc<str> = method.as_str().into();
            me.register_rpc_method(method, move |call| {
                let (answer, name) = (answer.clone(), name.clone());
                async move {
                    let result = match &answer {
                        Answer::Echo => Ok(call.payload.clone()),
                        Answer::Exec(cmd) => exec(cmd, &name, &call).await,
                    };
                    let outcome = match &result {
                        Ok(r) => format!("answered ({} bytes)", r.len()),
                        Err(e) => format!("failed: {e}"),
                    };
                    eprintln!(
                        "{} {} called {name}: {outcome}",
                        chat::clock(SystemTime::now()),
                        chat::printable(call.caller_identity.as_str()),
                    );
                    result
                }
            });
        }
        eprintln!(
            "serving {} as {} in room {} (Ctrl-C stops)",
            a.method.join(", "),
            me.identity(),
            j.room.name().unwrap_or_default()
        );
        // Listening from now on: a signal that arrives while a message is sent is not lost.
        let stop = interrupted();
        tokio::pin!(stop);
        let failure = loop {
            tokio::select! {
                ev = j.events.recv() => match ev {
                    Some(ev) => if let Followed::Ended { failure } = j.connector.follow(&ev) {
                        break failure;
                    },
                    None => break None,
                },
                _ = &mut stop => break None,
            }
        };
        leave(&j).await;
        Ok(wavecast_app::end_of_run(failure, None))
    })
}

/// A command's process group, killed (SIGKILL) when dropped unless the command ended by itself.
struct ProcessGroup(Option<u32>);

impl ProcessGroup {
    fn kill(&mut self) {
        if let Some(id) = self.0.take().and_then(|id| i32::try_from(id).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(id),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How much longer than the caller waits a command may run: the caller times out first (and
/// reads 1502, response timeout) rather than racing the late answer.
const EXEC_SLACK: Duration = Duration::from_secs(2);

/// Most bytes of the command's stderr kept for the error message.
const MAX_STDERR: u64 = 4096;

/// Runs `sh -c cmd` for one call: the payload on its stdin, its stdout (at most
/// [`MAX_RPC_PAYLOAD_BYTES`]) the response; killed with everything it started
/// [`EXEC_SLACK`] after the caller stops waiting.
async fn exec(cmd: &str, method: &str, call: &RpcInvocationData) -> Result<String, RpcError> {
    let app_error =
        |message: String| RpcError::new(RpcErrorCode::ApplicationError as u32, message, None);
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("WAVECAST_RPC_METHOD", method)
        .env("WAVECAST_RPC_CALLER", call.caller_identity.as_str())
        .env("WAVECAST_RPC_REQUEST_ID", &call.request_id)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: what it starts is killed with it, and the terminal's Ctrl-C
        // goes to `rpc serve` alone.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| app_error(format!("cannot run the command: {e}")))?;
    let mut group = ProcessGroup(child.id());
    let mut stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let payload = call.payload.clone();
    let feed = async move {
        // A command that does not read its input is fine: a closed pipe is no error here.
        let _ = stdin.write_all(payload.as_bytes()).await;
        drop(stdin);
    };
    let run = async {
        let (_, out, err) = tokio::join!(
            feed,
            async {
                // One byte past the limit tells a response too large; then the command goes.
                let mut out = Vec::new();
                let _ = stdout
                    .take(MAX_RPC_PAYLOAD_BYTES as u64 + 1)
                    .read_to_end(&mut out)
                    .await;
                if out.len() > MAX_RPC_PAYLOAD_BYTES {
                    group.kill();
                }
                out
            },
            async {
                // Keep the start of stderr, drain the rest (a full pipe would stall the command).
                let mut err = Vec::new();
                let mut stderr = stderr;
                let _ = (&mut stderr).take(MAX_STDERR).read_to_end(&mut err).await;
                let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
                err
            }
        );
        let status = child.wait().await;
        // The command ended by itself: nothing of its group is ours to kill any more.
        group.0 = None;
        (status, out, err)
    };
    let (status, out, err) = tokio::time::timeout(call.response_timeout + EXEC_SLACK, run)
        .await
        .map_err(|_| app_error("the command did not finish in time".into()))?;
    if out.len() > MAX_RPC_PAYLOAD_BYTES {
        return Err(RpcError::built_in(
            RpcErrorCode::ResponsePayloadTooLarge,
            None,
        ));
    }
    let status = status.map_err(|e| app_error(format!("the command failed: {e}")))?;
    if !status.success() {
        let stderr = String::from_utf8_lossy(&err).trim().to_owned();
        return Err(app_error(if stderr.is_empty() {
            format!("the command failed ({status})")
        } else {
            stderr
        }));
    }
    String::from_utf8(out).map_err(|_| app_error("the command's output is not UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(payload: &str, timeout: Duration) -> RpcInvocationData {
        RpcInvocationData {
            request_id: "req-1".into(),
            caller_identity: "ada".into(),
            payload: payload.into(),
            response_timeout: timeout,
        }
    }

    #[tokio::test]
    async fn exec_answers_with_stdout_and_fails_with_stderr() {
        let c = call("hello", Duration::from_secs(10));
        let env = r#"cat; printf ' %s %s %s' "$WAVECAST_RPC_METHOD" "$WAVECAST_RPC_CALLER" "$WAVECAST_RPC_REQUEST_ID""#;
        assert_eq!(exec(env, "m", &c).await.unwrap(), "hello m ada req-1");
        let e = exec("echo nope >&2; exit 4", "m", &c).await.unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (1500, "nope"));
        let e = exec("exit 4", "m", &c).await.unwrap_err();
        assert!(e.message.contains("exit status: 4"), "{e}");
        // A command that ignores its input is fine.
        assert_eq!(exec("printf ok", "m", &c).await.unwrap(), "ok");
    }

    #[tokio::test]
    async fn exec_output_is_bounded() {
        let c = call("", Duration::from_secs(10));
        // Endless output: cut at the limit, the command killed, 1504.
        let e = exec("yes", "m", &c).await.unwrap_err();
        assert_eq!(e.code, RpcErrorCode::ResponsePayloadTooLarge as u32);
        let e = exec(r"printf '\377\376'", "m", &c).await.unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (1500, "the command's output is not UTF-8")
        );
        // Endless stderr does not stall a command that fails.
        let e = exec("yes err >&2 & sleep 0.2; kill $!; exit 1", "m", &c)
            .await
            .unwrap_err();
        assert_eq!(e.code, 1500);
        assert!(
            e.message.len() <= RpcError::MAX_MESSAGE_BYTES,
            "{}",
            e.message.len()
        );
    }

    #[tokio::test]
    async fn a_command_past_the_callers_wait_is_killed_with_what_it_started() {
        let c = call("", Duration::from_millis(100));
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        // A shell that stays (two commands) with a child of its own.
        let cmd = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
        let started = std::time::Instant::now();
        let e = exec(&cmd, "m", &c).await.unwrap_err();
        assert_eq!(e.message, "the command did not finish in time");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Gone (or a zombie on its way out): signal 0 fails, or /proc says Z.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
            if !alive || state.contains(") Z") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "sleep {pid} outlived the kill"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
