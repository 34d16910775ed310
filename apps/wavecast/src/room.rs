//! `wavecast chat` and `wavecast rpc`: take part in a room as a participant (feature `room`,
//! which links the media engine).
//!
//! Exit codes: 0 done, 1 runtime error, 2 bad flags or configuration, 3 server unreachable (the
//! reconnect policy gave up), 4 the server refused the token or URL, 5 the RPC call failed (its
//! code, message and data printed).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use wavecast_app::chat::{self, TextMessage};
use wavecast_app::{Connector, Credentials, Followed};
use wavecast_session::{
    MAX_RPC_PAYLOAD_BYTES, PerformRpcData, Room, RoomEvents, StreamTextOptions, TOPIC_CHAT,
};
use wavecast_token::Preset;

use crate::{Global, keys, load_config};

/// Exit code of `wavecast rpc call` when the call failed.
pub const EXIT_RPC_ERROR: u8 = 5;

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
        let printer = tokio::spawn(chat::read_in_order(incoming, move |m| {
            print_message(m, json)
        }));
        eprintln!(
            "joined room {} as {}: lines on stdin are sent as chat (Ctrl-D or Ctrl-C leaves)",
            j.room.name().unwrap_or_default(),
            j.room.local_participant().identity()
        );
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        let me = j.room.local_participant().clone();
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
                    }
                    // Leaving waits for the data channel to drain (the engine's close).
                    None => break None,
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
                        Answer::Exec(cmd) => wavecast_app::rpc_exec::exec(cmd, &name, &call).await,
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
