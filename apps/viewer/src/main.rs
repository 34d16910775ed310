//! `viewer`: watch one participant of a LiveKit room — video, waveform, meter and a stats overlay
//! — in a window (F fullscreen, Q/Esc quit) or headless, writing PNGs and a JSON stats file.
//!
//! It joins with a viewer grant and watches `--participant`, or the first participant that
//! publishes, following the next one when that participant leaves. `--record DIR` keeps the
//! received VP8 untouched in an IVF file and the decoded audio in a WAV file. `--source loopback`
//! runs the broadcaster's synthetic capture and encoders into the decoders in this one process,
//! without any server.

mod scene;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};
use serde::Serialize;
use tokio::sync::watch;
use wavecast_config::Config;
use wavecast_media::OutputSpec;
use wavecast_token::Preset;
use wavecast_visualizer::headless::HEADLESS_FORMAT;
use wavecast_visualizer::window::{WindowOptions, run as run_window};
use wavecast_visualizer::{Gpu, HeadlessTarget, Scene, draw_scene};

use wavecast_app::follow::{self as room, Outcome, Watching};
use wavecast_app::signal::Interrupt;
use wavecast_app::{self as cli, ConnState, ConnectArgs, Connector, Credentials, defaults, given};
use wavecast_stream::decoders::{Decoders, Outputs};
use wavecast_stream::latency::Percentiles;
use wavecast_stream::publish::{AudioInput, VideoSettings};
use wavecast_stream::receive::{self, AudioOut, VideoOut};
use wavecast_stream::record::{Recording, RecordingStats};
use wavecast_stream::loopback;
use crate::scene::{Shared, ViewerScene};

#[cfg(feature = "cpal")]
const DEFAULT_AUDIO_OUT: &str = "default";
#[cfg(not(feature = "cpal"))]
const DEFAULT_AUDIO_OUT: &str = "none";

/// Watch one participant of a LiveKit room: video, waveform, meter and stats, in a window or
/// headless.
#[derive(Debug, Parser)]
#[command(name = "viewer", version, about, max_term_width = 100, after_help = cli::LAYERS_HELP)]
struct Cli {
    #[command(flatten)]
    conn: ConnectArgs,
    /// Identity of the participant to watch [default: the first one publishing].
    #[arg(long, value_name = "IDENTITY")]
    participant: Option<String>,
    /// Where media comes from: a LiveKit room, or the broadcaster's synthetic source in this
    /// process (no server).
    #[arg(long, value_enum, default_value_t = ViewSource::Room)]
    source: ViewSource,
    /// Render offscreen instead of opening a window (no display needed).
    #[arg(long)]
    headless: bool,
    /// Stop after this many decoded video frames (headless) or rendered frames (window).
    #[arg(long, value_name = "N")]
    frames: Option<u64>,
    /// Headless: write rendered frames as PNG (named by frame number) and stats.json into DIR.
    #[arg(long, value_name = "DIR")]
    dump: Option<PathBuf>,
    /// Headless: write every Nth rendered frame with --dump.
    #[arg(long, value_name = "N", default_value_t = 1)]
    dump_every: u64,
    /// Write the statistics JSON here [default: DIR/stats.json with --dump].
    #[arg(long, value_name = "FILE")]
    stats: Option<PathBuf>,
    /// Record into DIR: received video as VP8 in IVF (no re-encoding), audio as WAV.
    #[arg(long, value_name = "DIR")]
    record: Option<PathBuf>,
    /// Audio output: `none`, `wav:PATH`, or `default` / `device:NAME` (sound card, feature cpal).
    #[arg(long, value_name = "OUT", default_value = DEFAULT_AUDIO_OUT)]
    audio_out: String,
    /// Window or image size, WxH.
    #[arg(long, value_name = "WxH", default_value = "960x540", value_parser = parse_size)]
    size: (u32, u32),
    /// Give up when --frames are not reached within this time.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Window: write the last frame as PNG here (with --frames).
    #[arg(long, value_name = "FILE")]
    screenshot: Option<PathBuf>,
    /// Loopback source: video width (video.width).
    #[arg(long, default_value_t = defaults().video.width)]
    width: u32,
    /// Loopback source: video height (video.height).
    #[arg(long, default_value_t = defaults().video.height)]
    height: u32,
    /// Loopback source: frames per second (video.fps).
    #[arg(long, default_value_t = defaults().video.fps)]
    fps: u32,
    /// Loopback source: video bitrate in kbit/s (video.bitrate).
    #[arg(long, value_name = "KBPS", default_value_t = defaults().video.bitrate)]
    bitrate: u32,
    /// More logging.
    #[arg(short, long)]
    verbose: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum ViewSource {
    /// A LiveKit room.
    Room,
    /// Synthetic capture → VP8/Opus → decoders, in this process.
    Loopback,
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once('x')
        .ok_or_else(|| format!("{s:?}: expected WxH, e.g. 960x540"))?;
    let w: u32 = w.parse().map_err(|_| format!("{s:?}: bad width"))?;
    let h: u32 = h.parse().map_err(|_| format!("{s:?}: bad height"))?;
    if !(64..=7680).contains(&w) || !(64..=4320).contains(&h) {
        return Err(format!(
            "{s:?}: width and height must be 64..7680 and 64..4320"
        ));
    }
    Ok((w, h))
}

fn parse_audio_out(s: &str) -> Result<OutputSpec> {
    if s == "none" {
        return Ok(OutputSpec::Null);
    }
    s.parse::<OutputSpec>()
        .map_err(|e| anyhow::anyhow!("--audio-out {s:?}: {e}; use none, wav:PATH or default"))
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    cli::init_logging(cli.verbose);
    let prepared = match prepare(&cli, &matches) {
        Ok(v) => v,
        Err(e) => return cli::fail(&e, cli::EXIT_USAGE),
    };
    match run(&cli, prepared) {
        Ok(code) => code,
        Err(e) => cli::fail(&e, 1),
    }
}

struct Prepared {
    config: Config,
    credentials: Option<Credentials>,
    audio_out: OutputSpec,
}

fn prepare(cli: &Cli, m: &clap::ArgMatches) -> Result<Prepared> {
    let mut l = cli::loader(&cli.conn, m);
    for (id, key, flag, v) in [
        ("width", "video.width", "--width", cli.width),
        ("height", "video.height", "--height", cli.height),
        ("fps", "video.fps", "--fps", cli.fps),
        ("bitrate", "video.bitrate", "--bitrate", cli.bitrate),
    ] {
        if given(m, id) {
            l = l.flag(key, flag, v);
        }
    }
    let config = l
        .load()
        .map_err(|e| anyhow::anyhow!(cli::config_error_message(&e)))?;
    if cli.dump.is_some() && !cli.headless {
        bail!("--dump needs --headless (in a window use --frames N --screenshot FILE)");
    }
    if cli.screenshot.is_some() && (cli.headless || cli.frames.is_none()) {
        bail!("--screenshot is for windowed runs with --frames N");
    }
    if cli.dump_every == 0 {
        bail!("--dump-every must be at least 1");
    }
    if cli.source == ViewSource::Loopback && cli.participant.is_some() {
        bail!("--participant needs --source room");
    }
    if config.audio.channels > 2 {
        bail!("audio.channels = {}: 1 or 2", config.audio.channels);
    }
    let audio_out = parse_audio_out(&cli.audio_out)?;
    #[cfg(not(feature = "cpal"))]
    if matches!(audio_out, OutputSpec::Device(_)) {
        bail!(
            "--audio-out {}: this build has no sound card support; rebuild with \
             `--features cpal`, or use none or wav:PATH",
            cli.audio_out
        );
    }
    let credentials = match cli.source {
        ViewSource::Room => Some(Credentials::from_config(
            &config,
            &cli.conn,
            "viewer",
            Preset::Viewer,
        )?),
        ViewSource::Loopback => None,
    };
    Ok(Prepared {
        config,
        credentials,
        audio_out,
    })
}

/// Statistics written at the end (`--stats` / `--dump`).
#[derive(Debug, Serialize)]
struct StatsFile {
    source: ViewSource,
    url: Option<String>,
    room: Option<String>,
    elapsed_s: f64,
    frames_requested: Option<u64>,
    video: VideoSummary,
    audio: AudioSummary,
    render: RenderSummary,
    recording: Option<RecordingFile>,
    reconnects: u64,
    streams: StreamsFile,
}

#[derive(Debug, Serialize)]
struct VideoSummary {
    /// Pictures decoded, all streams.
    frames_received: u64,
    /// Distinct stamped frame numbers / their span, all streams, percent.
    received_pct: Option<f64>,
    /// Capture-to-decode age of stamped frames (first stream with stamps).
    latency_ms: Option<Percentiles>,
    width: u32,
    height: u32,
    fps: Option<f64>,
}

#[derive(Debug, Serialize)]
struct AudioSummary {
    packets: u64,
    seconds: f64,
    decode_errors: u64,
}

#[derive(Debug, Serialize, Default)]
struct RenderSummary {
    rendered_frames: u64,
    pngs: u64,
    size: (u32, u32),
    /// Where the picture lands in the PNGs (x, y, w, h).
    picture_rect: Option<(f32, f32, f32, f32)>,
    /// Capture-to-render age of shown stamped frames.
    latency_ms: Option<Percentiles>,
    adapter: String,
}

#[derive(Debug, Serialize)]
struct RecordingFile {
    dir: PathBuf,
    video_file: PathBuf,
    audio_file: PathBuf,
    #[serde(flatten)]
    stats: RecordingStats,
    audio_seconds: Option<f64>,
}

#[derive(Debug, Serialize)]
struct StreamsFile {
    video: Vec<receive::VideoStreamStats>,
    audio: Vec<receive::AudioStreamStats>,
}

fn run(cli: &Cli, p: Prepared) -> Result<ExitCode> {
    let started = Instant::now();
    let channels = p.config.audio.channels;
    let playback = !matches!(p.audio_out, OutputSpec::Null);
    let out = Outputs {
        video: Arc::new(VideoOut::default()),
        audio: Arc::new(AudioOut::new(playback)),
        channels,
    };
    let stop_playback = Arc::new(AtomicBool::new(false));
    let playback_thread = match &out.audio.playback {
        Some(q) => Some(receive::spawn_playback(
            p.audio_out.clone(),
            q.clone(),
            channels,
            stop_playback.clone(),
        )?),
        None => None,
    };
    let (ivf, wav) = match &cli.record {
        Some(dir) => {
            let r = Recording::create(dir, channels)?;
            (Some(r.video), Some(r.audio))
        }
        None => (None, None),
    };
    let decoders = Decoders::new(ivf, wav);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    // SIGINT / SIGTERM end the run on the normal path (recordings finalised, room left).
    let interrupted = Interrupt::install(runtime.handle());
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let (watch_tx, watch_rx) = watch::channel(Watching::default());
    let url = p.config.connection.url.clone();

    // The media side: a room task, or the in-process loopback.
    enum Media {
        Room(tokio::task::JoinHandle<Outcome>, Arc<Connector>),
        Loopback(Box<loopback::Loopback>, watch::Sender<ConnState>),
    }
    let (media, conn_rx) = match cli.source {
        ViewSource::Room => {
            let connector = Arc::new(Connector::new(
                url.clone(),
                p.credentials.clone().expect("room mode has credentials"),
                p.config.reconnect.clone(),
                p.config.connection.connect_timeout,
            ));
            let rx = connector.subscribe();
            let task = runtime.spawn(room::run(
                connector.clone(),
                out.clone(),
                decoders,
                watch_tx,
                cli.participant.clone(),
                stop_rx,
            ));
            (Media::Room(task, connector), rx)
        }
        ViewSource::Loopback => {
            let v = &p.config.video;
            let settings = VideoSettings {
                file: None,
                width: v.width,
                height: v.height,
                fps: Some(v.fps),
                bitrate: v.bitrate * 1000,
                stamp_files: false,
                snapshot: None,
            };
            let lb = loopback::Loopback::start(
                &settings,
                &AudioInput::Tone {
                    frequency: 440.0,
                    channels,
                },
                32_000,
                &out,
                decoders,
            )?;
            let (tx, rx) = watch::channel(ConnState::Connected {
                room: "loopback".into(),
            });
            drop(stop_rx);
            drop(watch_tx);
            (Media::Loopback(Box::new(lb), tx), rx)
        }
    };
    let shared = Arc::new(Shared {
        video: out.video.clone(),
        audio: out.audio.clone(),
        conn: conn_rx,
        watching: watch_rx,
        url: url.clone(),
        close: interrupted.flag(),
    });

    let media_done = || match &media {
        Media::Room(t, _) => t.is_finished(),
        Media::Loopback(..) => false,
    };
    let mut render = RenderSummary {
        size: cli.size,
        ..Default::default()
    };
    let mut reached = true;
    if cli.headless {
        reached = headless(cli, &shared, &mut render, &interrupted, media_done)?;
    } else {
        // The window closes on Q/Esc, on SIGINT/SIGTERM, or a moment after the room task gave
        // up (so its message shows); the normal path below then finalises and reports.
        if let Media::Room(_, connector) = &media {
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
        }
        let options = WindowOptions {
            title: format!("wavecast viewer — {url}"),
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
        let sh = shared.clone();
        let report = run_window(options, move |gpu, format| {
            Ok(ViewerScene::new(gpu, format, sh).with_frame_cap(60))
        })
        .context("the window failed")?;
        render.rendered_frames = report.frames_rendered;
        render.adapter = report.adapter;
    }

    // Stop the media side and collect its statistics.
    let _ = stop_tx.send(true);
    let (outcome, failure) = match media {
        Media::Room(task, _) => {
            let o = runtime.block_on(task).unwrap_or_default();
            let f = o.failure.clone();
            (o, f)
        }
        Media::Loopback(lb, state) => {
            state.send_replace(ConnState::Disconnected {
                reason: "left the room".into(),
                exit_code: 0,
            });
            let finished = lb.stop();
            (
                Outcome {
                    finished,
                    room: "loopback".into(),
                    ..Default::default()
                },
                None,
            )
        }
    };
    stop_playback.store(true, Ordering::Relaxed);
    if let Some(t) = playback_thread {
        match t.join() {
            Ok(Ok(samples)) => tracing::debug!("audio output took {samples} samples"),
            Ok(Err(e)) => tracing::error!("audio output: {e:#}"),
            Err(_) => tracing::error!("the playback thread panicked"),
        }
    }
    runtime.shutdown_timeout(Duration::from_secs(1));

    let stats = stats_file(cli, &p, started, render, &outcome);
    let path = cli
        .stats
        .clone()
        .or_else(|| cli.dump.as_ref().map(|d| d.join("stats.json")));
    if let Some(path) = &path {
        wavecast_app::write_stats(path, &stats)?;
    }
    let v = &stats.video;
    tracing::info!(
        "received {} video frames ({}), latency p50 {} ms p95 {} ms; {:.1} s of audio",
        v.frames_received,
        v.received_pct
            .map_or("no stamps".into(), |p| format!("{p:.1}% of sent")),
        v.latency_ms
            .map_or("-".into(), |l| format!("{:.0}", l.p50_ms)),
        v.latency_ms
            .map_or("-".into(), |l| format!("{:.0}", l.p95_ms)),
        stats.audio.seconds
    );
    if let Some((code, msg)) = failure {
        eprintln!("error: {msg}");
        return Ok(ExitCode::from(code));
    }
    if !reached {
        eprintln!(
            "error: only {} of {} video frames arrived within {}",
            v.frames_received,
            cli.frames.unwrap_or(0),
            humantime::format_duration(cli.timeout)
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn stats_file(
    cli: &Cli,
    p: &Prepared,
    started: Instant,
    render: RenderSummary,
    outcome: &Outcome,
) -> StatsFile {
    let f = &outcome.finished;
    let frames_received = f.video.iter().map(|s| s.frames_decoded).sum();
    let (seen, span) = f.video.iter().fold((0u64, 0u64), |(a, b), s| {
        match (s.first_frame_number, s.last_frame_number) {
            (Some(lo), Some(hi)) => (a + s.distinct_frame_numbers, b + u64::from(hi - lo) + 1),
            _ => (a, b),
        }
    });
    let first_stamped = f.video.iter().find(|s| s.latency.is_some());
    let last = f.video.last();
    let fps = f
        .video
        .iter()
        .filter(|s| s.seconds > 0.0)
        .map(|s| (s.frames_decoded.saturating_sub(1)) as f64 / s.seconds)
        .next();
    let recording = cli.record.as_ref().map(|dir| RecordingFile {
        dir: dir.clone(),
        video_file: dir.join("video.ivf"),
        audio_file: dir.join("audio.wav"),
        audio_seconds: f.recording.audio_samples.map(|s| s as f64 / 48_000.0),
        stats: f.recording.clone(),
    });
    StatsFile {
        source: cli.source,
        url: (cli.source == ViewSource::Room).then(|| p.config.connection.url.clone()),
        room: Some(outcome.room.clone()).filter(|r| !r.is_empty()),
        elapsed_s: started.elapsed().as_secs_f64(),
        frames_requested: cli.frames,
        video: VideoSummary {
            frames_received,
            received_pct: (span > 0).then(|| 100.0 * seen as f64 / span as f64),
            latency_ms: first_stamped.and_then(|s| s.latency),
            width: last.map_or(0, |s| s.width),
            height: last.map_or(0, |s| s.height),
            fps,
        },
        audio: AudioSummary {
            packets: f.audio.iter().map(|s| s.packets).sum(),
            seconds: f.audio.iter().map(|s| s.seconds).sum::<f64>() + 0.0,
            decode_errors: f.audio.iter().map(|s| s.decode_errors).sum(),
        },
        render,
        recording,
        reconnects: outcome.reconnects,
        streams: StreamsFile {
            video: f.video.clone(),
            audio: f.audio.clone(),
        },
    }
}

/// The headless loop: render whenever a new frame arrives, dump PNGs, stop at `--frames`.
/// Returns whether `--frames` was reached (true without `--frames`).
fn headless(
    cli: &Cli,
    shared: &Arc<Shared>,
    render: &mut RenderSummary,
    interrupted: &Interrupt,
    media_done: impl Fn() -> bool,
) -> Result<bool> {
    let gpu = Gpu::headless().context("no GPU adapter for headless rendering")?;
    render.adapter = gpu.info().name;
    tracing::info!("rendering headless on {}", render.adapter);
    let (w, h) = cli.size;
    let mut scene = ViewerScene::new(&gpu, HEADLESS_FORMAT, shared.clone());
    let mut target = HeadlessTarget::new(&gpu.device, w, h)?;
    scene.resize(&gpu, w, h);
    if let Some(dir) = &cli.dump {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // checked: `Instant + --timeout 500000000000y` overflows the clock and panicked; a timeout
    // beyond its range never expires.
    let deadline = Instant::now().checked_add(cli.timeout);
    let mut frame_no = 0u64;
    let mut last_status = Instant::now();
    let reached = loop {
        let received = shared.video.frames.load(Ordering::Relaxed);
        if let Some(n) = cli.frames
            && received >= n
        {
            break true;
        }
        if interrupted.is_set() || media_done() {
            break cli.frames.is_none();
        }
        if cli.frames.is_some() && deadline.is_some_and(|d| Instant::now() > d) {
            break false;
        }
        // Draw when a new picture waits; without one, refresh the status at 2 frames per second.
        if !shared.video.mailbox.has_frame() && last_status.elapsed() < Duration::from_millis(500) {
            std::thread::sleep(Duration::from_millis(4));
            continue;
        }
        last_status = Instant::now();
        scene.update(&gpu, frame_no)?;
        let fresh = scene.has_fresh_frame();
        draw_scene(&gpu, &scene, target.view(), target.format())?;
        frame_no += 1;
        let dump = cli
            .dump
            .as_ref()
            .filter(|_| fresh && (render.rendered_frames).is_multiple_of(cli.dump_every));
        if fresh {
            render.rendered_frames += 1;
        }
        if let Some(dir) = dump {
            let img = target.read_rgba(&gpu.device, &gpu.queue)?;
            let seq = scene.current_sequence().unwrap_or(render.rendered_frames);
            save(&img, &dir.join(format!("frame-{seq:06}.png")))?;
            render.pngs += 1;
        } else {
            // One frame in flight at most: the software rasteriser must not queue work up.
            gpu.wait_idle("frame")?;
        }
    };
    render.picture_rect = scene.picture_rect().map(|r| (r.x, r.y, r.w, r.h));
    render.latency_ms = Percentiles::of(&scene.render_latencies);
    Ok(reached)
}

fn save(img: &wavecast_visualizer::RgbaImage, path: &Path) -> Result<()> {
    img.save_png(path)
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("960x540"), Ok((960, 540)));
        assert!(parse_size("960").is_err());
        assert!(parse_size("1x1").is_err());
    }

    #[test]
    fn audio_outputs_parse() {
        assert_eq!(parse_audio_out("none").unwrap(), OutputSpec::Null);
        assert_eq!(
            parse_audio_out("wav:/tmp/a.wav").unwrap(),
            OutputSpec::Wav("/tmp/a.wav".into())
        );
        assert!(parse_audio_out("speaker").is_err());
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
