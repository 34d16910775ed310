//! `room-visualizer`: every participant of a LiveKit room in a live grid — video or avatar,
//! waveform strip and level bar, name, muted-microphone icon, speaking ring, quality and
//! screen-share badges, chat and transcriptions as captions under the speaker's tile — in a
//! window (F fullscreen, Q/Esc quit) or headless (PNGs + JSON).

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde::Serialize;
use tokio::sync::watch;
use wavecast_stream::receive;
use wavecast_token::Preset;
use wavecast_visualizer::Gpu;
use wavecast_visualizer::headless::HEADLESS_FORMAT;
use wavecast_visualizer::headless::{Turn, run_loop};
use wavecast_visualizer::scenes::{RoomGridScene, RoomStatus, StatusFn, TileReport, TileSizes};
use wavecast_visualizer::window::run as run_window;

use wavecast_app::captions::Captions;
use wavecast_app::feeds;
use wavecast_app::render::{WatchArgs, parse_size};
use wavecast_app::roster::{self as room, Roster};
use wavecast_app::signal::{self, Interrupt};
use wavecast_app::{self as cli, Connector, Credentials};

/// Every participant of a LiveKit room in a live grid, in a window or headless.
#[derive(Debug, Parser)]
#[command(name = "room-visualizer", version, about, max_term_width = 100, after_help = cli::LAYERS_HELP)]
struct Cli {
    #[command(flatten)]
    watch: WatchArgs,
    /// Stop after rendering this many frames (headless: counted once --wait-participants is met).
    #[arg(long, value_name = "N")]
    frames: Option<u64>,
    /// Headless render rate, frames per second.
    #[arg(long, value_name = "N", default_value_t = 10)]
    fps: u32,
    /// Headless: start counting --frames once this many participants have shown decoded media
    /// (participants whose tracks the --max-tracks limit refused never count).
    #[arg(long, value_name = "N", default_value_t = 0)]
    wait_participants: usize,
    /// Window or image size, WxH.
    #[arg(long, value_name = "WxH", default_value = "1280x720", value_parser = parse_size)]
    size: (u32, u32),
    /// More logging.
    #[arg(short, long)]
    verbose: bool,
}

#[derive(Debug, Serialize)]
struct StatsFile {
    url: String,
    room: String,
    elapsed_s: f64,
    rendered_frames: u64,
    pngs: u64,
    size: (u32, u32),
    adapter: String,
    /// The tiles of the last rendered frame.
    tiles: Vec<TileReport>,
    reconnects: u64,
    /// Tracks not decoded because --max-tracks decoders were running.
    refused_tracks: u64,
    streams: Streams,
}

#[derive(Debug, Serialize)]
struct Streams {
    video: Vec<receive::VideoStreamStats>,
    audio: Vec<receive::AudioStreamStats>,
}

fn main() -> ExitCode {
    let (cli, matches) = cli::parse::<Cli>();
    cli::init_logging(cli.verbose);
    let prepared = (|| -> Result<_> {
        let config = cli
            .watch
            .load(cli::loader(&cli.watch.conn, &matches), cli.frames)?;
        if !(1..=120).contains(&cli.fps) {
            bail!("--fps between 1 and 120 frames per second");
        }
        let creds =
            Credentials::from_config(&config, &cli.watch.conn, "room-visualizer", Preset::Viewer)?;
        Ok((config, (creds, cli.watch.conn.e2ee()?)))
    })();
    let (config, credentials) = match prepared {
        Ok(v) => v,
        Err(e) => return cli::fail(&e, cli::EXIT_USAGE),
    };
    match run(&cli, config, credentials) {
        Ok(code) => code,
        Err(e) => cli::fail(&e, 1),
    }
}

fn run(
    cli: &Cli,
    config: wavecast_config::Config,
    (credentials, e2ee): (Credentials, Option<wavecast_session::E2eeOptions>),
) -> Result<ExitCode> {
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let url = config.connection.url.clone();
    let connector = Arc::new(
        Connector::new(
            url.clone(),
            credentials,
            config.reconnect.clone(),
            config.connection.connect_timeout,
        )
        .with_transport(config.connection.transport)
        .with_e2ee(e2ee),
    );
    let conn_rx = connector.subscribe();
    let (roster_tx, roster_rx) = watch::channel::<Roster>(Arc::new(Vec::new()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let captions = Captions::default();
    let tiles = TileSizes::default();
    let task = runtime.spawn(room::run(
        connector.clone(),
        roster_tx,
        cli.watch.limits.limits(),
        captions.clone(),
        tiles.clone(),
        stop_rx,
    ));
    // SIGINT / SIGTERM end the run on the normal path (room left, stats written).
    let interrupted = Interrupt::install(runtime.handle());
    let mut report = Report::default();
    let mut reached = true;
    if cli.watch.render.headless {
        let status = feeds::room_status(
            roster_rx.clone(),
            conn_rx,
            url.clone(),
            interrupted.flag(),
            captions,
        );
        let status = (status, tiles.clone());
        reached = headless(cli, status, roster_rx, &mut report, &interrupted, || {
            task.is_finished()
        })?;
    } else {
        // The window closes on Q/Esc, on SIGINT/SIGTERM, or a moment after the room task gave
        // up (so its message shows); the normal path below then reports.
        signal::close_after_giving_up(runtime.handle(), connector.subscribe(), interrupted.clone());
        let options =
            cli.watch
                .render
                .window(format!("wavecast room — {url}"), cli.size, cli.frames);
        let status = feeds::room_status(
            roster_rx,
            conn_rx,
            url.clone(),
            interrupted.flag(),
            captions,
        );
        let r = run_window(options, move |gpu, format| {
            Ok(RoomGridScene::new(gpu, format, status)
                .with_frame_cap(30)
                .with_tile_sizes(tiles))
        })
        .context("the window failed")?;
        report.rendered = r.frames_rendered;
        report.adapter = r.adapter;
    }
    let _ = stop_tx.send(true);
    let outcome = runtime.block_on(task).unwrap_or_default();
    runtime.shutdown_timeout(Duration::from_secs(1));
    let stats = StatsFile {
        url,
        room: outcome.room.clone(),
        elapsed_s: started.elapsed().as_secs_f64(),
        rendered_frames: report.rendered,
        pngs: report.pngs,
        size: cli.size,
        adapter: report.adapter,
        tiles: report.tiles,
        reconnects: outcome.reconnects,
        refused_tracks: outcome.refused_tracks,
        streams: Streams {
            video: outcome.video,
            audio: outcome.audio,
        },
    };
    let path = cli.watch.render.stats_path();
    if let Some(path) = &path {
        wavecast_app::write_stats(path, &stats)?;
    }
    let names: Vec<&str> = stats.tiles.iter().map(|t| t.name.as_str()).collect();
    tracing::info!(
        "rendered {} frames; last frame showed {} tiles: {}",
        stats.rendered_frames,
        names.len(),
        names.join(", ")
    );
    let shortfall = (!reached).then(|| {
        let (n, timeout) = (cli.wait_participants, cli.watch.render.timeout);
        let within = humantime::format_duration(timeout);
        format!(
            "{} of {n} participants with media within {within}",
            report.with_media.get()
        )
    });
    Ok(wavecast_app::end_of_run(outcome.failure, shortfall))
}

/// How many members have shown decoded media (a frame or an audio packet).
fn with_media(roster: &Roster) -> usize {
    roster
        .iter()
        .filter(|m| {
            m.video.frames.load(Ordering::Relaxed) > 0
                || m.audio.packets.load(Ordering::Relaxed) > 0
        })
        .count()
}

#[derive(Debug, Default)]
struct Report {
    /// Most participants seen with media at once (for the error when --frames is not reached).
    with_media: std::cell::Cell<usize>,
    rendered: u64,
    pngs: u64,
    adapter: String,
    tiles: Vec<TileReport>,
}

/// Renders at `--fps`; counts `--frames` once `--wait-participants` have media. Returns whether
/// the frames were reached (true without `--frames`).
fn headless(
    cli: &Cli,
    (status, tiles): (StatusFn<RoomStatus>, TileSizes),
    roster: watch::Receiver<Roster>,
    report: &mut Report,
    interrupted: &Interrupt,
    media_done: impl Fn() -> bool,
) -> Result<bool> {
    let gpu = Gpu::headless().context("no GPU adapter for headless rendering")?;
    let mut scene = RoomGridScene::new(&gpu, HEADLESS_FORMAT, status).with_tile_sizes(tiles);
    let options = cli.watch.render.loop_options(
        cli.size,
        cli.frames,
        Duration::from_secs_f64(1.0 / f64::from(cli.fps)),
    );
    let counted = std::cell::Cell::new(0u64);
    let turn = |_: &RoomGridScene| {
        if cli.frames.is_some_and(|n| counted.get() >= n) {
            Turn::Stop { reached: true }
        } else if interrupted.is_set() || media_done() {
            Turn::Stop {
                reached: cli.frames.is_none(),
            }
        } else {
            Turn::Render
        }
    };
    let mut tiles = Vec::new();
    let count = |s: &RoomGridScene, n: u64| {
        let showing = with_media(&roster.borrow());
        report.with_media.set(report.with_media.get().max(showing));
        (showing >= cli.wait_participants).then(|| {
            counted.set(n + 1);
            tiles = s.reports().to_vec();
            format!("frame-{:06}.png", n + 1)
        })
    };
    let r = run_loop(&gpu, &mut scene, &options, turn, count)?;
    report.adapter = r.adapter;
    report.rendered = r.drawn;
    report.pngs = r.pngs;
    report.tiles = if tiles.is_empty() {
        scene.reports().to_vec()
    } else {
        tiles
    };
    Ok(r.reached)
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
