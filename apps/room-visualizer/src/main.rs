//! `room-visualizer`: every participant of a LiveKit room in a live grid — video or avatar,
//! waveform strip and level bar, name, muted-microphone icon, speaking ring, quality and
//! screen-share badges — in a window (F fullscreen, Q/Esc quit) or headless (PNGs + JSON).

mod scene;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, FromArgMatches, Parser};
use serde::Serialize;
use tokio::sync::watch;
use wavecast_stream::receive;
use wavecast_token::Preset;
use wavecast_visualizer::headless::HEADLESS_FORMAT;
use wavecast_visualizer::window::{WindowOptions, run as run_window};
use wavecast_visualizer::{Gpu, HeadlessTarget, Scene, draw_scene};

use wavecast_app::roster::{self as room, Roster};
use wavecast_app::signal::Interrupt;
use wavecast_app::{self as cli, ConnState, ConnectArgs, Connector, Credentials};
use crate::scene::{GridScene, TileReport};

/// Every participant of a LiveKit room in a live grid, in a window or headless.
#[derive(Debug, Parser)]
#[command(name = "room-visualizer", version, about, max_term_width = 100, after_help = cli::LAYERS_HELP)]
struct Cli {
    #[command(flatten)]
    conn: ConnectArgs,
    /// Render offscreen instead of opening a window (no display needed).
    #[arg(long)]
    headless: bool,
    /// Stop after rendering this many frames (headless: counted once --wait-participants is met).
    #[arg(long, value_name = "N")]
    frames: Option<u64>,
    /// Headless: write rendered frames as PNG and stats.json into DIR.
    #[arg(long, value_name = "DIR")]
    dump: Option<PathBuf>,
    /// Headless: write every Nth rendered frame with --dump.
    #[arg(long, value_name = "N", default_value_t = 1)]
    dump_every: u64,
    /// Write the statistics JSON here [default: DIR/stats.json with --dump].
    #[arg(long, value_name = "FILE")]
    stats: Option<PathBuf>,
    /// Headless render rate, frames per second.
    #[arg(long, value_name = "N", default_value_t = 10)]
    fps: u32,
    /// Headless: start counting --frames once this many participants are present and each has
    /// sent media.
    #[arg(long, value_name = "N", default_value_t = 0)]
    wait_participants: usize,
    /// Window or image size, WxH.
    #[arg(long, value_name = "WxH", default_value = "1280x720", value_parser = parse_size)]
    size: (u32, u32),
    /// Give up when --frames are not reached within this time.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Window: write the last frame as PNG here (with --frames).
    #[arg(long, value_name = "FILE")]
    screenshot: Option<PathBuf>,
    /// More logging.
    #[arg(short, long)]
    verbose: bool,
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once('x')
        .ok_or_else(|| format!("{s:?}: expected WxH, e.g. 1280x720"))?;
    let w: u32 = w.parse().map_err(|_| format!("{s:?}: bad width"))?;
    let h: u32 = h.parse().map_err(|_| format!("{s:?}: bad height"))?;
    if !(64..=7680).contains(&w) || !(64..=4320).contains(&h) {
        return Err(format!(
            "{s:?}: width and height must be 64..7680 and 64..4320"
        ));
    }
    Ok((w, h))
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
    streams: Streams,
}

#[derive(Debug, Serialize)]
struct Streams {
    video: Vec<receive::VideoStreamStats>,
    audio: Vec<receive::AudioStreamStats>,
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    cli::init_logging(cli.verbose);
    let prepared = (|| -> Result<_> {
        let config = cli::loader(&cli.conn, &matches)
            .load()
            .map_err(|e| anyhow::anyhow!(cli::config_error_message(&e)))?;
        if cli.dump.is_some() && !cli.headless {
            bail!("--dump needs --headless (in a window use --frames N --screenshot FILE)");
        }
        if cli.screenshot.is_some() && (cli.headless || cli.frames.is_none()) {
            bail!("--screenshot is for windowed runs with --frames N");
        }
        if cli.dump_every == 0 || !(1..=120).contains(&cli.fps) {
            bail!("--dump-every must be at least 1 and --fps between 1 and 120");
        }
        let creds =
            Credentials::from_config(&config, &cli.conn, "room-visualizer", Preset::Viewer)?;
        Ok((config, creds))
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

fn run(cli: &Cli, config: wavecast_config::Config, credentials: Credentials) -> Result<ExitCode> {
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let url = config.connection.url.clone();
    let connector = Arc::new(Connector::new(
        url.clone(),
        credentials,
        config.reconnect.clone(),
        config.connection.connect_timeout,
    ));
    let conn_rx = connector.subscribe();
    let (roster_tx, roster_rx) = watch::channel::<Roster>(Arc::new(Vec::new()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let task = runtime.spawn(room::run(connector.clone(), roster_tx, stop_rx));
    // SIGINT / SIGTERM end the run on the normal path (room left, stats written).
    let interrupted = Interrupt::install(runtime.handle());
    let mut report = Report::default();
    let mut reached = true;
    if cli.headless {
        reached = headless(
            cli,
            roster_rx,
            conn_rx,
            &url,
            &mut report,
            &interrupted,
            || task.is_finished(),
        )?;
    } else {
        // The window closes on Q/Esc, on SIGINT/SIGTERM, or a moment after the room task gave
        // up (so its message shows); the normal path below then reports.
        let mut rx = connector.subscribe();
        let close = interrupted.clone();
        runtime.spawn(async move {
            while rx.changed().await.is_ok() {
                let gave_up = matches!(
                    &*rx.borrow(),
                    ConnState::Disconnected { exit_code, .. } if *exit_code != 0
                );
                if gave_up {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    close.set();
                    return;
                }
            }
        });
        let options = WindowOptions {
            title: format!("wavecast room — {url}"),
            size: cli.size,
            frames: cli.frames,
            screenshot: cli.screenshot.clone(),
            vsync: true,
            resize_script: false,
            timeout: if cli.frames.is_some() {
                cli.timeout
            } else {
                Duration::from_secs(u64::MAX / 4)
            },
        };
        let u = url.clone();
        let close_flag = interrupted.flag();
        let r = run_window(options, move |gpu, format| {
            Ok(GridScene::new(gpu, format, roster_rx, conn_rx, u)
                .with_frame_cap(30)
                .with_close_flag(close_flag))
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
        streams: Streams {
            video: outcome.video,
            audio: outcome.audio,
        },
    };
    let path = cli
        .stats
        .clone()
        .or_else(|| cli.dump.as_ref().map(|d| d.join("stats.json")));
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
    if let Some((code, msg)) = outcome.failure {
        eprintln!("error: {msg}");
        return Ok(ExitCode::from(code));
    }
    if !reached {
        eprintln!(
            "error: {} of {} participants with media within {}",
            stats.tiles.len(),
            cli.wait_participants,
            humantime::format_duration(cli.timeout)
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Default)]
struct Report {
    rendered: u64,
    pngs: u64,
    adapter: String,
    tiles: Vec<TileReport>,
}

/// Renders at `--fps`; counts `--frames` once `--wait-participants` have media. Returns whether
/// the frames were reached (true without `--frames`).
fn headless(
    cli: &Cli,
    roster: watch::Receiver<Roster>,
    conn: watch::Receiver<ConnState>,
    url: &str,
    report: &mut Report,
    interrupted: &Interrupt,
    media_done: impl Fn() -> bool,
) -> Result<bool> {
    let gpu = Gpu::headless().context("no GPU adapter for headless rendering")?;
    report.adapter = gpu.info().name;
    tracing::info!("rendering headless on {}", report.adapter);
    let (w, h) = cli.size;
    let mut scene = GridScene::new(&gpu, HEADLESS_FORMAT, roster.clone(), conn, url.to_owned());
    let mut target = HeadlessTarget::new(&gpu.device, w, h)?;
    scene.resize(&gpu, w, h);
    if let Some(dir) = &cli.dump {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let interval = Duration::from_secs_f64(1.0 / f64::from(cli.fps));
    // checked: `Instant + --timeout 500000000000y` overflows the clock and panicked; a timeout
    // beyond its range never expires.
    let deadline = Instant::now().checked_add(cli.timeout);
    let mut counted = 0u64;
    let mut frame_no = 0u64;
    let reached = loop {
        let tick = Instant::now();
        if interrupted.is_set() || media_done() {
            break cli.frames.is_none();
        }
        if cli.frames.is_some() && deadline.is_some_and(|d| Instant::now() > d) {
            break false;
        }
        let ready = {
            let r = roster.borrow();
            r.len() >= cli.wait_participants
                && r.iter().all(|m| {
                    m.video.frames.load(Ordering::Relaxed) > 0
                        || m.audio.packets.load(Ordering::Relaxed) > 0
                })
        };
        scene.update(&gpu, frame_no)?;
        draw_scene(&gpu, &scene, target.view(), target.format())?;
        frame_no += 1;
        report.rendered += 1;
        if ready {
            counted += 1;
            if let Some(dir) = &cli.dump
                && (counted - 1).is_multiple_of(cli.dump_every)
            {
                let img = target.read_rgba(&gpu.device, &gpu.queue)?;
                let path = dir.join(format!("frame-{counted:06}.png"));
                img.save_png(&path)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                report.pngs += 1;
            } else {
                gpu.wait_idle("frame")?;
            }
            report.tiles = scene.reports().to_vec();
            if cli.frames.is_some_and(|n| counted >= n) {
                break true;
            }
        } else {
            gpu.wait_idle("frame")?;
        }
        let spent = tick.elapsed();
        if spent < interval {
            std::thread::sleep(interval - spent);
        }
    };
    if report.tiles.is_empty() {
        report.tiles = scene.reports().to_vec();
    }
    Ok(reached)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1280x720"), Ok((1280, 720)));
        assert!(parse_size("big").is_err());
    }
}
