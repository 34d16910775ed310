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
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use wavecast_config::Config;
use wavecast_media::OutputSpec;
use wavecast_token::Preset;
use wavecast_visualizer::Gpu;
use wavecast_visualizer::headless::HEADLESS_FORMAT;
use wavecast_visualizer::scenes::ParticipantScene;
use wavecast_visualizer::window::run as run_window;

use wavecast_app::feeds;
use wavecast_app::participant::{
    ParticipantMedia, ParticipantStats, RenderSummary, open_outputs, parse_audio_out, run_headless,
};
use wavecast_app::render::{WatchArgs, parse_size};
use wavecast_app::signal::{self, Interrupt};
use wavecast_app::{self as cli, Connector, Credentials, VideoArgs};
use wavecast_stream::publish::VideoSettings;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ViewSource {
    /// A LiveKit room.
    Room,
    /// Synthetic capture → VP8/Opus → decoders, in this process.
    Loopback,
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
    e2ee: Option<wavecast_session::E2eeOptions>,
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
        e2ee: cli.watch.conn.e2ee()?,
        config,
        credentials,
        audio_out,
    })
}

fn run(cli: &Cli, p: Prepared) -> Result<ExitCode> {
    let started = Instant::now();
    let (record, limits) = (cli.record.as_deref(), cli.watch.limits.limits());
    let channels = p.config.audio.channels;
    let (out, playback, decoders) = open_outputs(&p.audio_out, channels, record, limits)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    // SIGINT / SIGTERM end the run on the normal path (recordings finalised, room left).
    let interrupted = Interrupt::install(runtime.handle());
    let url = p.config.connection.url.clone();

    // The media side: a room task, or the in-process loopback.
    let media = match cli.source {
        ViewSource::Room => {
            let connector = Arc::new(
                Connector::new(
                    url.clone(),
                    p.credentials.clone().expect("room mode has credentials"),
                    p.config.reconnect.clone(),
                    p.config.connection.connect_timeout,
                )
                .with_transport(p.config.connection.transport)
                .with_e2ee(p.e2ee.clone()),
            );
            let want = cli.participant.clone();
            ParticipantMedia::room(&runtime, connector, out.clone(), decoders, want)
        }
        ViewSource::Loopback => {
            let v = &p.config.video;
            let settings = VideoSettings::pattern(v.width, v.height, v.fps, v.bitrate * 1000);
            ParticipantMedia::loopback(&settings, &out, decoders)?
        }
    };
    let feeds = feeds::participant_feeds(&out.video, &out.audio);
    let (conn, watching, captions) = (media.conn(), media.watching(), media.captions());
    let status = || {
        let (v, a) = (out.video.clone(), out.audio.clone());
        let (c, w) = (conn.clone(), watching.clone());
        feeds::participant_status(
            v,
            a,
            c,
            w,
            url.clone(),
            interrupted.flag(),
            captions.clone(),
        )
    };
    let mut render = RenderSummary {
        size: cli.size,
        ..Default::default()
    };
    let mut reached = true;
    if cli.watch.render.headless {
        let scene =
            |gpu: &Gpu| ParticipantScene::new(gpu, HEADLESS_FORMAT, feeds.clone(), status());
        let options = cli
            .watch
            .render
            .loop_options(cli.size, cli.frames, Duration::ZERO);
        let done = || media.is_finished();
        reached = run_headless(
            scene,
            &options,
            cli.frames,
            &out,
            &interrupted,
            done,
            &mut render,
        )?;
    } else {
        // The window closes on Q/Esc, on SIGINT/SIGTERM, or a moment after the room task gave
        // up (so its message shows); the normal path below then finalises and reports.
        if let Some(connector) = media.connector() {
            let handle = runtime.handle();
            signal::close_after_giving_up(handle, connector.subscribe(), interrupted.clone());
        }
        let title = format!("wavecast viewer — {url}");
        let options = cli.watch.render.window(title, cli.size, cli.frames);
        let (f, st) = (feeds.clone(), status());
        let report = run_window(options, move |gpu, format| {
            Ok(ParticipantScene::new(gpu, format, f, st).with_frame_cap(60))
        })
        .context("the window failed")?;
        render.rendered_frames = report.frames_rendered;
        render.adapter = report.adapter;
    }

    // Stop the media side and collect its statistics.
    let outcome = media.finish(&runtime);
    if let Some(p) = playback {
        p.stop();
    }
    runtime.shutdown_timeout(Duration::from_secs(1));

    let url = (cli.source == ViewSource::Room).then_some(url);
    let source = format!("{:?}", cli.source).to_lowercase();
    let (record, frames) = (cli.record.as_deref(), cli.frames);
    let stats = ParticipantStats::new(source, url, started, frames, render, record, &outcome);
    if let Some(path) = &cli.watch.render.stats_path() {
        wavecast_app::write_stats(path, &stats)?;
    }
    let v = &stats.video;
    tracing::info!("received {v}; {:.1} s of audio", stats.audio.seconds);
    let shortfall = (!reached).then(|| {
        let (n, timeout) = (cli.frames.unwrap_or(0), cli.watch.render.timeout);
        let within = humantime::format_duration(timeout);
        format!(
            "only {} of {n} video frames arrived within {within}",
            v.frames_received
        )
    });
    Ok(cli::end_of_run(outcome.failure, shortfall))
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
