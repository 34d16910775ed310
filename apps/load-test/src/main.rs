//! `load-test`: P publishers (synthetic stamped video + tone) and S subscribers in R rooms from
//! one process; reports joins, delivery, loss, bitrate and glass-to-glass latency per subscriber
//! and in total (tables, or `--json`). Thin wiring around `wavecast-loadtest`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;
use wavecast_config::Loader;
use wavecast_loadtest::{LoadTest, LoadTestConfig, LoadTestError, Phase, ProgressHandle, Report};
use wavecast_token::Keys;

/// Exit code for bad flags or configuration (clap uses 2 for usage errors too).
const EXIT_USAGE: u8 = 2;
/// Exit code when the server does not answer.
const EXIT_UNREACHABLE: u8 = 3;
/// Exit code after Ctrl-C (the report is still printed).
const EXIT_INTERRUPTED: u8 = 130;

/// Load-test a LiveKit server or cluster: P publishers send stamped synthetic video (and a tone),
/// S subscribers in R rooms decode every frame; reports join success, join → first frame,
/// tracks, packets, loss, bitrate, frames delivered and glass-to-glass latency p50/p95/p99.
#[derive(Debug, Parser)]
#[command(name = "load-test", version, max_term_width = 100, after_help = AFTER_HELP)]
struct Cli {
    /// Config file [default: config/livekit.toml when present].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// LiveKit server URL; repeat for the nodes of a cluster (joins go round-robin) [default:
    /// connection.url from the config, LIVEKIT_URL, else ws://127.0.0.1:7880].
    #[arg(long, value_name = "URL")]
    url: Vec<String>,
    /// API key that mints the tokens [default: connection.api_key or LIVEKIT_API_KEY].
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,
    /// API secret [default: connection.api_secret or LIVEKIT_API_SECRET].
    #[arg(long, value_name = "SECRET", hide_default_value = true)]
    api_secret: Option<String>,
    /// Publishers (spread round-robin over the rooms).
    #[arg(short, long, value_name = "P", default_value_t = 1)]
    publishers: usize,
    /// Subscribers (spread round-robin over the rooms).
    #[arg(short, long, value_name = "S", default_value_t = 10)]
    subscribers: usize,
    /// Rooms.
    #[arg(short, long, value_name = "R", default_value_t = 1)]
    rooms: usize,
    /// Measurement time once everybody has joined.
    #[arg(short, long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration, allow_hyphen_values = true)]
    duration: Duration,
    /// Joins per second (publishers first, then subscribers) [default: everybody at once].
    #[arg(long, value_name = "JOINS_PER_S")]
    ramp: Option<f64>,
    /// Video size.
    #[arg(long, value_name = "WxH", default_value = "640x360", value_parser = parse_size)]
    size: (u32, u32),
    /// Video frames per second.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// VP8 bitrate, kbit/s.
    #[arg(long, value_name = "KBPS", default_value_t = 600)]
    bitrate: u32,
    /// Publish video only (no tone).
    #[arg(long)]
    no_audio: bool,
    /// Rooms are named PREFIX-0, PREFIX-1, …
    #[arg(long, value_name = "PREFIX", default_value = "load")]
    room_prefix: String,
    /// Time one join may take before it counts as failed.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration, allow_hyphen_values = true)]
    join_timeout: Duration,
    /// Latency samples of each track's first WARMUP after its first frame are left out.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration, allow_hyphen_values = true)]
    warmup: Duration,
    /// Decoder threads [default: one per core].
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Print the report as JSON (stdout) instead of tables.
    #[arg(long)]
    json: bool,
    /// No progress bar (it is also off when stderr is not a terminal).
    #[arg(long)]
    no_progress: bool,
    /// Log more (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

const AFTER_HELP: &str = "\
Every subscriber decodes every video frame (VP8 frames depend on the ones before them) and every
audio packet, and reads the capture-time stamp of every picture: latency is capture → decoded,
on this machine's clock.

Exit codes: 0 done, 1 runtime error, 2 bad flags or configuration, 3 server unreachable,
130 interrupted by Ctrl-C (every room is left and the report is still printed).";

fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.trim_start().starts_with('-') {
        return Err("a duration cannot be negative".into());
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 10s, 2m, 1m30s)"))
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("{s:?} is not WIDTHxHEIGHT (e.g. 640x360)"))?;
    let n = |v: &str| {
        v.trim()
            .parse::<u32>()
            .map_err(|_| format!("{s:?} is not WIDTHxHEIGHT (e.g. 640x360)"))
    };
    Ok((n(w)?, n(h)?))
}

/// Layered connection settings → a validated load-test configuration (no side effects).
fn config_of(cli: &Cli) -> Result<LoadTestConfig> {
    let mut loader = match &cli.config {
        Some(path) => Loader::new().file(path),
        None => Loader::new(),
    };
    if let Some(url) = cli.url.first() {
        loader = loader.flag("connection.url", "--url", url);
    }
    if let Some(k) = &cli.api_key {
        loader = loader.flag("connection.api_key", "--api-key", k);
    }
    if let Some(s) = &cli.api_secret {
        loader = loader.flag("connection.api_secret", "--api-secret", s);
    }
    let loaded = loader
        .load()
        .map_err(|e| anyhow!("invalid configuration: {e}"))?;
    let conn = loaded.connection;
    let (Some(key), Some(secret)) = (conn.api_key, conn.api_secret) else {
        return Err(anyhow!(
            "no API key and secret: give --api-key and --api-secret, set LIVEKIT_API_KEY and \
             LIVEKIT_API_SECRET, or put connection.api_key/api_secret in the config file"
        ));
    };
    let mut c = LoadTestConfig::new(conn.url, Keys::new(key, secret.expose()));
    c.extra_urls = cli.url.iter().skip(1).cloned().collect();
    c.publishers = cli.publishers;
    c.subscribers = cli.subscribers;
    c.rooms = cli.rooms;
    c.duration = cli.duration;
    c.ramp = cli.ramp;
    c.video.width = cli.size.0;
    c.video.height = cli.size.1;
    c.video.fps = cli.fps;
    c.video.bitrate = cli.bitrate.saturating_mul(1000);
    c.audio = !cli.no_audio;
    c.room_prefix = cli.room_prefix.clone();
    c.join_timeout = cli.join_timeout;
    c.warmup = cli.warmup;
    c.validate().map_err(|e| match e {
        LoadTestError::InvalidConfig {
            setting,
            value,
            allowed,
        } => anyhow!("--{}: {value} (allowed: {allowed})", flag_of(setting)),
        other => anyhow!(other),
    })?;
    Ok(c)
}

/// The flag that sets a library setting.
fn flag_of(setting: &str) -> &str {
    match setting {
        "video width" | "video height" | "video size" => "size",
        "video bitrate" => "bitrate",
        "join_timeout" => "join-timeout",
        "room_prefix" => "room-prefix",
        "api_key" => "api-key",
        other => other,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match config_of(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("load-test: {e:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match run(&cli, config) {
        Ok(report) => {
            if let Err(e) = print(&report, cli.json) {
                eprintln!("load-test: {e:#}");
                return ExitCode::FAILURE;
            }
            if report.interrupted {
                ExitCode::from(EXIT_INTERRUPTED)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("load-test: {e:#}");
            match e.downcast_ref::<LoadTestError>() {
                Some(LoadTestError::Unreachable { .. }) => ExitCode::from(EXIT_UNREACHABLE),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

fn run(cli: &Cli, config: LoadTestConfig) -> Result<Report> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let net = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .thread_name("net")
        .enable_all()
        .build()
        .context("cannot start the network runtime")?;
    let decode = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.unwrap_or(cores).max(1))
        .thread_name("decode")
        .enable_all()
        .build()
        .context("cannot start the decoder runtime")?;
    let test = LoadTest::new(config)?.decode_on(decode.handle().clone());
    let progress = test.progress();
    let show = !cli.no_progress && std::io::stderr().is_terminal();
    let report = net.block_on(async move {
        let cancel = CancellationToken::new();
        let on_signal = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!(
                    "\nload-test: interrupted; leaving every room (Ctrl-C again to quit now)"
                );
                on_signal.cancel();
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(i32::from(EXIT_INTERRUPTED));
                }
            }
        });
        let bar = show.then(|| spawn_progress(progress));
        let report = test.run(cancel).await;
        if let Some((bar, task)) = bar {
            task.abort();
            bar.finish_and_clear();
        }
        report
    })?;
    decode.shutdown_timeout(Duration::from_secs(1));
    Ok(report)
}

/// A progress bar on stderr, updated four times a second.
fn spawn_progress(progress: ProgressHandle) -> (ProgressBar, tokio::task::JoinHandle<()>) {
    let snap = progress.snapshot();
    let bar = ProgressBar::new(snap.duration.as_millis() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let b = bar.clone();
    let task = tokio::spawn(async move {
        let mut last = (std::time::Instant::now(), 0u64);
        loop {
            let p = progress.snapshot();
            let now = std::time::Instant::now();
            let dt = now.duration_since(last.0).as_secs_f64().max(1e-3);
            let kbps = (p.bytes.saturating_sub(last.1)) as f64 * 8.0 / 1000.0 / dt;
            last = (now, p.bytes);
            let msg = match p.phase {
                Phase::Checking => "checking the server".to_owned(),
                Phase::Joining => format!(
                    "joining: publishers {}/{}, subscribers {}/{} ({} failed)",
                    p.publishers_joined,
                    p.publishers,
                    p.subscribers_joined,
                    p.subscribers,
                    p.subscribers_failed
                ),
                Phase::Measuring => format!(
                    "{:.0}/{:.0} s · {}/{} subscribers in · {} frames decoded · {:.0} kbit/s · {} decode errors",
                    p.measured.as_secs_f64(),
                    p.duration.as_secs_f64(),
                    p.subscribers_joined,
                    p.subscribers,
                    p.frames_decoded,
                    kbps,
                    p.decode_errors
                ),
                _ => "leaving the rooms".to_owned(),
            };
            b.set_position(p.measured.as_millis() as u64);
            b.set_message(msg);
            b.tick();
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    (bar, task)
}

fn print(report: &Report, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        println!("{}", report.subscriber_table());
        println!("{}", report.total_table());
    }
    Ok(())
}
