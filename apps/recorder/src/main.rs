//! `recorder`: join a LiveKit room hidden and record every participant's audio and video, as
//! sent (VP8 + Opus, no transcoding), into one WebM file per participant plus a JSON manifest.
//!
//! Stops after `--duration`, on Ctrl-C (SIGINT) or SIGTERM — finalizing every file — or when
//! the server ends the session. A killed recorder leaves files that play up to their last
//! second; `--recover MANIFEST` completes them. See docs/apps/recorder.md.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::{ArgMatches, Parser};
use wavecast_app::{
    ConnectArgs, Credentials, EXIT_UNREACHABLE, EXIT_USAGE, fail, init_logging, load_config,
};
use wavecast_session::RoomOptions;
use wavecast_stream::record::{Manifest, Recorder, RecorderOptions, TrackFilter, recover_dir};
use wavecast_token::Preset;

/// Record a LiveKit room: one WebM file (VP8 + Opus, as sent) per participant and a manifest.
#[derive(Debug, Parser)]
#[command(name = "recorder", version, about, max_term_width = 100)]
struct Cli {
    /// Where to connect and how to authenticate (the recorder joins hidden with the recorder
    /// grants when it mints its token).
    #[command(flatten)]
    connect: ConnectArgs,
    /// Directory for the WebM files and the manifest (created if missing; nothing in it is
    /// ever overwritten).
    #[arg(short, long, value_name = "DIR", default_value = "recordings")]
    out: PathBuf,
    /// Record only this participant (identity, or a prefix followed by `*`); repeatable.
    #[arg(long = "participant", value_name = "IDENTITY")]
    participants: Vec<String>,
    /// Record only tracks with this name (or a prefix followed by `*`); repeatable.
    #[arg(long = "track", value_name = "NAME")]
    tracks: Vec<String>,
    /// Stop after this long (e.g. `15s`, `1h`) [default: until Ctrl-C or SIGTERM].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Longest stretch a crash can lose (cluster length), between 100ms and 10s.
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = humantime::parse_duration)]
    max_cluster: Duration,
    /// Repair the files of a recording whose recorder was killed, then exit.
    #[arg(long, value_name = "MANIFEST", conflicts_with = "duration")]
    recover: Option<PathBuf>,
    /// More logging.
    #[arg(short, long)]
    verbose: bool,
}

/// Everything validated before anything is started.
struct Plan {
    options: RecorderOptions,
    duration: Option<Duration>,
}

fn prepare(cli: &Cli, m: &ArgMatches) -> Result<Plan> {
    if !(Duration::from_millis(100)..=Duration::from_secs(10)).contains(&cli.max_cluster) {
        bail!(
            "--max-cluster {}: must be between 100ms and 10s",
            humantime::format_duration(cli.max_cluster)
        );
    }
    if cli.duration == Some(Duration::ZERO) {
        bail!("--duration 0: give a positive duration, or none to record until Ctrl-C");
    }
    let filter = TrackFilter::new(cli.participants.clone(), cli.tracks.clone())?;
    let config = load_config(&cli.connect, m)?;
    let credentials =
        Credentials::from_config(&config, &cli.connect, "recorder", Preset::Recorder)?
            .session_credentials();
    let c = &config.connection;
    let mut room = RoomOptions::default()
        .reconnect(config.reconnect.clone())
        .connect_timeout(c.connect_timeout)
        .ice_transport(wavecast_app::ice_transport(c.transport))
        .transport_timeout(c.connect_timeout.max(Duration::from_secs(5)));
    // Without a key an end-to-end encrypted track is stored as received (encrypted); with the
    // room's passphrase, decrypted.
    if let Some(e2ee) = cli.connect.e2ee()? {
        room = room.e2ee(e2ee);
    }
    let mut options = RecorderOptions::new(c.url.clone(), credentials, &cli.out)
        .filter(filter)
        .room_options(room);
    options.max_cluster = cli.max_cluster;
    Ok(Plan {
        options,
        duration: cli.duration,
    })
}

fn main() -> ExitCode {
    let (cli, matches) = wavecast_app::parse::<Cli>();
    init_logging(cli.verbose);
    if let Some(manifest) = &cli.recover {
        return match recover_dir(manifest) {
            Ok(m) => report(&m, manifest),
            Err(e) => fail(&anyhow!(e), 1),
        };
    }
    let plan = match prepare(&cli, &matches) {
        Ok(p) => p,
        Err(e) => return fail(&e, EXIT_USAGE),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&anyhow!(e).context("tokio runtime"), 1),
    };
    let code = runtime.block_on(run(plan));
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}

async fn run(plan: Plan) -> ExitCode {
    let url = plan.options.url.clone();
    tracing::info!("recorder: joining {url}");
    let recorder = match Recorder::start(plan.options).await {
        Ok(r) => r,
        Err(e) => {
            return fail(
                &anyhow!(e).context(format!("joining {url}")),
                EXIT_UNREACHABLE,
            );
        }
    };
    let manifest_path = recorder.manifest_path().to_path_buf();
    // Machine-readable start line (tests and scripts wait for it).
    println!(
        "{}",
        serde_json::json!({"event": "recording", "manifest": manifest_path})
    );
    let until = async {
        match plan.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = until => tracing::info!("recorder: duration reached"),
        _ = shutdown_signal() => tracing::info!("recorder: interrupted, finalizing"),
        reason = recorder.ended() => tracing::warn!("recorder: the room ended: {reason}"),
    }
    match recorder.stop().await.context("finalizing") {
        Ok(m) => report(&m, &manifest_path),
        Err(e) => fail(&e, 1),
    }
}

/// The summary on stdout: manifest path and per file its duration, frames and loss counts.
fn report(m: &Manifest, path: &std::path::Path) -> ExitCode {
    let files: Vec<_> = m
        .files()
        .map(|(p, f)| {
            serde_json::json!({
                "participant": p.identity,
                "file": f.path,
                "state": f.state,
                "duration_ms": f.duration_ms,
                "frames": f.tracks.iter().map(|t| (t.kind.clone(), t.frames)).collect::<Vec<_>>(),
                // What loss cost: audio frames that never arrived, video frames skipped up
                // to a keyframe, keyframe requests sent, frames our own queue dropped, and
                // stretches without frames.
                "lost_frames": f.tracks.iter().map(|t| t.lost_frames).sum::<u64>(),
                "skipped_frames": f.tracks.iter().map(|t| t.skipped_frames).sum::<u64>(),
                "keyframe_requests": f.tracks.iter().map(|t| t.keyframe_requests).sum::<u64>(),
                "queue_drops": f.tracks.iter().map(|t| t.queue_drops).sum::<u64>(),
                "gaps": f.tracks.iter().map(|t| t.gaps.len()).sum::<usize>(),
            })
        })
        .collect();
    println!(
        "{}",
        serde_json::json!({"event": "summary", "manifest": path, "state": m.state, "files": files, "errors": m.errors})
    );
    ExitCode::SUCCESS
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
