//! `viewer`: watch one participant of a LiveKit room — video, waveform, meter and a stats overlay
//! — in a window (F fullscreen, Q/Esc quit) or headless, writing PNGs and a JSON stats file.
//!
//! It joins with a viewer grant and watches `--participant`, or the first participant that
//! publishes, following the next one when that participant leaves. `--record DIR` keeps the
//! received VP8 untouched in an IVF file and the decoded audio in a WAV file. `--source loopback`
//! runs the broadcaster's synthetic capture and encoders into the decoders in this one process,
//! without any server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use serde::Serialize;
use tokio::sync::watch;
use wavecast_config::Config;
use wavecast_media::OutputSpec;
use wavecast_token::Preset;
use wavecast_visualizer::Gpu;
use wavecast_visualizer::headless::HEADLESS_FORMAT;
use wavecast_visualizer::headless::{Turn, run_loop};
use wavecast_visualizer::scenes::ParticipantScene;
use wavecast_visualizer::window::run as run_window;

use wavecast_app::feeds;
use wavecast_app::follow::{self as room, Outcome, Watching};
use wavecast_app::render::{WatchArgs, parse_size};
use wavecast_app::signal::{self, Interrupt};
use wavecast_app::{self as cli, ConnState, Connector, Credentials, VideoArgs};
use wavecast_stream::decoders::{AudioSummary, Decoders, Outputs, VideoSummary};
use wavecast_stream::latency::Percentiles;
use wavecast_stream::loopback;
use wavecast_stream::publish::{AudioInput, VideoSettings};
use wavecast_stream::receive::{self, AudioOut, Playback, VideoOut};
use wavecast_stream::record::ivf_wav::{Recording, RecordingStats};

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
    watch: WatchArgs,
    /// Identity of the participant to watch [default: the first one publishing].
    #[arg(long, value_name = "IDENTITY")]
    participant: Option<String>,
    /// Where media comes from: a LiveKit room, or the broadcaster's synthetic source in this
    /// process (no server).
    #[arg(long, value_enum, default_value_t = ViewSource::Room)]
    source: ViewSource,
    /// Stop after this many decoded video frames (headless) or rendered frames (window).
    #[arg(long, value_name = "N")]
    frames: Option<u64>,
    /// Record into DIR: received video as VP8 in IVF (no re-encoding), audio as WAV.
    #[arg(long, value_name = "DIR")]
    record: Option<PathBuf>,
    /// Audio output: `none`, `wav:PATH`, or `default` / `device:NAME` (sound card, feature cpal).
    #[arg(long, value_name = "OUT", default_value = DEFAULT_AUDIO_OUT)]
    audio_out: String,
    /// Window or image size, WxH.
    #[arg(long, value_name = "WxH", default_value = "960x540", value_parser = parse_size)]
    size: (u32, u32),
    #[command(flatten)]
    video: VideoArgs,
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

fn parse_audio_out(s: &str) -> Result<OutputSpec> {
    if s == "none" {
        return Ok(OutputSpec::Null);
    }
    s.parse::<OutputSpec>()
        .map_err(|e| anyhow::anyhow!("--audio-out {s:?}: {e}; use none, wav:PATH or default"))
}

fn main() -> ExitCode {
    let (cli, matches) = cli::parse::<Cli>();
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
    let layers = cli.video.layer(cli::loader(&cli.watch.conn, m), m);
    let config = cli.watch.load(layers, cli.frames)?;
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
            &cli.watch.conn,
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
    let playback = Playback::start(&p.audio_out, &out.audio, channels)?;
    let (ivf, wav) = match &cli.record {
        Some(dir) => {
            let r = Recording::create(dir, channels)?;
            (Some(r.video), Some(r.audio))
        }
        None => (None, None),
    };
    let decoders = Decoders::new(ivf, wav).with_limits(cli.watch.limits.limits());
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
    let feeds = feeds::participant_feeds(&out.video, &out.audio);
    let status = || {
        feeds::participant_status(
            out.video.clone(),
            out.audio.clone(),
            conn_rx.clone(),
            watch_rx.clone(),
            url.clone(),
            interrupted.flag(),
        )
    };

    let media_done = || match &media {
        Media::Room(t, _) => t.is_finished(),
        Media::Loopback(..) => false,
    };
    let mut render = RenderSummary {
        size: cli.size,
        ..Default::default()
    };
    let mut reached = true;
    if cli.watch.render.headless {
        let scene =
            |gpu: &Gpu| ParticipantScene::new(gpu, HEADLESS_FORMAT, feeds.clone(), status());
        reached = headless(cli, scene, &out, &mut render, &interrupted, media_done)?;
    } else {
        // The window closes on Q/Esc, on SIGINT/SIGTERM, or a moment after the room task gave
        // up (so its message shows); the normal path below then finalises and reports.
        if let Media::Room(_, connector) = &media {
            signal::close_after_giving_up(
                runtime.handle(),
                connector.subscribe(),
                interrupted.clone(),
            );
        }
        let options =
            cli.watch
                .render
                .window(format!("wavecast viewer — {url}"), cli.size, cli.frames);
        let (f, st) = (feeds.clone(), status());
        let report = run_window(options, move |gpu, format| {
            Ok(ParticipantScene::new(gpu, format, f, st).with_frame_cap(60))
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
    if let Some(p) = playback {
        p.stop();
    }
    runtime.shutdown_timeout(Duration::from_secs(1));

    let stats = stats_file(cli, &p, started, render, &outcome);
    let path = cli.watch.render.stats_path();
    if let Some(path) = &path {
        wavecast_app::write_stats(path, &stats)?;
    }
    let v = &stats.video;
    tracing::info!(
        "received {}; {:.1} s of audio",
        stats.video,
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
            humantime::format_duration(cli.watch.render.timeout)
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
        video: f.video_summary(),
        audio: f.audio_summary(),
        render,
        recording,
        reconnects: outcome.reconnects,
        streams: StreamsFile {
            video: f.video.clone(),
            audio: f.audio.clone(),
        },
    }
}

/// Headless: render whenever a new picture waits (else the status twice a second), dump PNGs
/// named by frame number, stop at `--frames` decoded. Returns whether they were reached.
fn headless(
    cli: &Cli,
    scene: impl FnOnce(&Gpu) -> ParticipantScene,
    out: &Outputs,
    render: &mut RenderSummary,
    interrupted: &Interrupt,
    media_done: impl Fn() -> bool,
) -> Result<bool> {
    let gpu = Gpu::headless().context("no GPU adapter for headless rendering")?;
    let mut scene = scene(&gpu);
    let options = cli
        .watch
        .render
        .loop_options(cli.size, cli.frames, Duration::ZERO);
    let mut last_status = Instant::now();
    let turn = |_: &ParticipantScene| {
        if cli
            .frames
            .is_some_and(|n| out.video.frames.load(Ordering::Relaxed) >= n)
        {
            Turn::Stop { reached: true }
        } else if interrupted.is_set() || media_done() {
            Turn::Stop {
                reached: cli.frames.is_none(),
            }
        } else if !out.video.mailbox.has_frame()
            && last_status.elapsed() < Duration::from_millis(500)
        {
            Turn::Skip
        } else {
            last_status = Instant::now();
            Turn::Render
        }
    };
    let count = |s: &ParticipantScene, n: u64| {
        s.has_fresh_frame()
            .then(|| format!("frame-{:06}.png", s.current_sequence().unwrap_or(n + 1)))
    };
    let report = run_loop(&gpu, &mut scene, &options, turn, count)?;
    render.adapter = report.adapter;
    render.rendered_frames = report.counted;
    render.pngs = report.pngs;
    render.picture_rect = scene.picture_rect().map(|r| (r.x, r.y, r.w, r.h));
    render.latency_ms = Percentiles::of(&scene.render_latencies);
    Ok(report.reached)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

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
