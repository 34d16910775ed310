//! `broadcaster`: join a LiveKit room and publish video and audio.
//!
//! Sources: synthetic colour bars with a moving box and an embedded frame-number/timestamp stamp
//! plus a tone with timestamp markers (the default), looping Y4M/WAV files, or the microphone
//! (feature `cpal`). Type `help` on stdin for the commands (mute/unmute audio and video, stats,
//! quit). A stats line is logged every `--stats-interval`; Ctrl-C leaves the room cleanly. A
//! JSON summary goes to stdout at exit.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Parser, ValueEnum};
use tokio::sync::mpsc;
use wavecast_config::Config;
use wavecast_session::{Room, RoomEvent};
use wavecast_token::Preset;

use wavecast_app::{self as cli, ConnectArgs, Connector, Credentials, Followed, VideoArgs, given};
use wavecast_stream::broadcast::{Broadcast, COMMANDS_HELP, Command, VideoTrackInfo};
use wavecast_stream::publish::{
    self as capture, AudioInput, AudioSourceOpen, VideoInput, VideoSettings,
};
use wavecast_stream::screen;

/// Join a LiveKit room and publish video and audio.
#[derive(Debug, Parser)]
#[command(name = "broadcaster", version, about, max_term_width = 100, after_help = cli::LAYERS_HELP)]
struct Cli {
    #[command(flatten)]
    conn: ConnectArgs,
    /// Media source: synthetic bars and tone with embedded timestamps, or files.
    #[arg(long, value_enum, default_value_t = SourceKind::Synthetic)]
    source: SourceKind,
    /// X display to capture with `--source screen` [default: $DISPLAY].
    #[arg(long, value_name = "DISPLAY")]
    display: Option<String>,
    /// Y4M video file for `--source file` (8-bit 4:2:0; loops).
    #[arg(long, value_name = "FILE")]
    video_file: Option<PathBuf>,
    /// WAV audio file for `--source file` (48 kHz, 16-bit, mono or stereo; loops).
    #[arg(long, value_name = "FILE")]
    audio_file: Option<PathBuf>,
    /// Capture the microphone instead of the tone: `default` or a device name (feature `cpal`).
    #[arg(long, value_name = "DEVICE")]
    mic: Option<String>,
    #[command(flatten)]
    video: VideoArgs,
    /// Video codec (video.codec). VP9 goes out as one layer.
    #[arg(long, value_enum, default_value_t = CodecArg::Vp8)]
    codec: CodecArg,
    /// Publish up to three simulcast layers: full, half and quarter size (video.simulcast).
    #[arg(long)]
    simulcast: bool,
    /// The bitrate floor in kbit/s that the bandwidth estimate never goes below
    /// (video.min_bitrate; `--bitrate` is the ceiling).
    #[arg(long, value_name = "KBPS", default_value_t = wavecast_config::Config::default().video.min_bitrate)]
    min_bitrate: u32,
    /// Opus bitrate in kbit/s.
    #[arg(long, value_name = "KBPS", default_value_t = 32)]
    audio_bitrate: u32,
    /// Tone frequency in Hz (synthetic audio).
    #[arg(long, value_name = "HZ", default_value_t = 440.0)]
    tone: f64,
    /// Publish no audio track.
    #[arg(long)]
    no_audio: bool,
    /// Publish no video track.
    #[arg(long)]
    no_video: bool,
    /// Start with the audio track muted.
    #[arg(long)]
    mute_audio: bool,
    /// Start with the video track muted.
    #[arg(long)]
    mute_video: bool,
    /// Draw the frame-number/timestamp stamp on file video too (synthetic video always has it).
    #[arg(long)]
    stamp: bool,
    /// Write one captured frame (the 30th) as a PNG here, to see what is being sent.
    #[arg(long, value_name = "FILE")]
    snapshot: Option<PathBuf>,
    /// Interval of the stats line.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    stats_interval: Duration,
    /// Leave after this long (e.g. `30s`) [default: run until Ctrl-C or `quit`].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Ignore stdin (no commands), e.g. when run in the background.
    #[arg(long)]
    no_stdin: bool,
    /// More logging.
    #[arg(short, long)]
    verbose: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SourceKind {
    /// Colour bars, moving box, frame stamp; tone with markers.
    Synthetic,
    /// `--video-file` and/or `--audio-file`.
    File,
    /// The X11 screen (published as a screen share) and the tone.
    Screen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CodecArg {
    /// VP8 (libvpx).
    Vp8,
    /// VP9 (libvpx).
    Vp9,
    /// H.264 (OpenH264, constrained baseline).
    H264,
}

fn main() -> ExitCode {
    let (cli, matches) = cli::parse::<Cli>();
    cli::init_logging(cli.verbose);
    let (config, plan) = match prepare(&cli, &matches) {
        Ok(v) => v,
        Err(e) => return cli::fail(&e, cli::EXIT_USAGE),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return cli::fail(&anyhow::anyhow!(e).context("tokio runtime"), 1),
    };
    let code = runtime.block_on(run(&cli, config, plan));
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}

/// Everything validated before any connection is made.
struct Plan {
    credentials: Credentials,
    e2ee: Option<wavecast_session::E2eeOptions>,
    screen: bool,
    video: Option<(VideoInput, VideoSettings)>,
    audio: Option<AudioSourceOpen>,
}

fn prepare(cli: &Cli, m: &clap::ArgMatches) -> Result<(Config, Plan)> {
    let mut l = cli.video.layer(cli::loader(&cli.conn, m), m);
    if given(m, "codec") {
        let c = match cli.codec {
            CodecArg::Vp8 => "vp8",
            CodecArg::Vp9 => "vp9",
            CodecArg::H264 => "h264",
        };
        l = l.flag("video.codec", "--codec", c);
    }
    if given(m, "simulcast") {
        l = l.flag("video.simulcast", "--simulcast", true);
    }
    if given(m, "min_bitrate") {
        l = l.flag("video.min_bitrate", "--min-bitrate", cli.min_bitrate);
    }
    let config = l
        .load()
        .map_err(|e| anyhow::anyhow!(cli::config_error_message(&e)))?;
    if cli.no_audio && cli.no_video {
        bail!("--no-audio and --no-video together leave nothing to publish");
    }
    let file = cli.source == SourceKind::File;
    if file && cli.video_file.is_none() && cli.audio_file.is_none() {
        bail!("--source file needs --video-file FILE.y4m and/or --audio-file FILE.wav");
    }
    if cli.display.is_some() && cli.source != SourceKind::Screen {
        bail!("--display needs --source screen");
    }
    if !file && (cli.video_file.is_some() || cli.audio_file.is_some()) {
        bail!("--video-file/--audio-file need --source file");
    }
    if !(20.0..=20_000.0).contains(&cli.tone) {
        bail!("--tone {}: must be between 20 and 20000 Hz", cli.tone);
    }
    if !(6..=510).contains(&cli.audio_bitrate) {
        bail!(
            "--audio-bitrate {}: Opus takes 6 to 510 kbit/s",
            cli.audio_bitrate
        );
    }
    let video = if cli.no_video || (file && cli.video_file.is_none()) {
        None
    } else {
        let s = VideoSettings {
            file: cli.video_file.clone(),
            width: config.video.width,
            height: config.video.height,
            fps: (!file || given(m, "fps")).then_some(config.video.fps),
            bitrate: config.video.bitrate * 1000,
            min_bitrate: config.video.min_bitrate * 1000,
            codec: cli::video_codec(config.video.codec),
            simulcast: config.video.simulcast,
            stamp_files: cli.stamp,
            snapshot: cli.snapshot.clone().map(|p| (p, 30)),
        };
        let input = if cli.source == SourceKind::Screen {
            let g = screen::ScreenGrabber::open(cli.display.as_deref())?;
            VideoInput::Live(
                Box::new(g),
                wavecast_media::FrameRate::new(config.video.fps, 1),
            )
        } else {
            VideoInput::open(&s)?
        };
        let (w, _) = input.size();
        let stamped = cli.source == SourceKind::Synthetic || cli.stamp;
        if w < wavecast_media::stamp::MIN_WIDTH && stamped {
            bail!(
                "video width {w}: the frame stamp needs at least {} pixels",
                wavecast_media::stamp::MIN_WIDTH
            );
        }
        Some((input, s))
    };
    let audio = if cli.no_audio || (file && cli.audio_file.is_none() && cli.mic.is_none()) {
        None
    } else {
        let input = match (&cli.mic, &cli.audio_file) {
            (Some(name), _) => AudioInput::Device((name != "default").then(|| name.clone())),
            (None, Some(path)) => AudioInput::File(path.clone()),
            (None, None) => AudioInput::Tone {
                frequency: cli.tone,
                channels: config.audio.channels,
            },
        };
        #[cfg(not(feature = "cpal"))]
        if matches!(input, AudioInput::Device(_)) {
            bail!("--mic needs a build with microphone support: `cargo build --features cpal`");
        }
        if config.audio.sample_rate != wavecast_codec::OPUS_SAMPLE_RATE {
            tracing::warn!(
                "audio.sample_rate = {}: the broadcaster sends 48000 Hz Opus",
                config.audio.sample_rate
            );
        }
        Some(AudioSourceOpen::open(&input)?)
    };
    let credentials =
        Credentials::from_config(&config, &cli.conn, "broadcaster", Preset::Broadcaster)?;
    Ok((
        config,
        Plan {
            credentials,
            e2ee: cli.conn.e2ee()?,
            screen: cli.source == SourceKind::Screen,
            video,
            audio,
        },
    ))
}

fn spawn_stdin(tx: mpsc::Sender<Command>) {
    // A plain thread: tokio's stdin would hold the runtime open at exit.
    let _ = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let mut line = String::new();
            loop {
                line.clear();
                match std::io::stdin().read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if line.trim().is_empty() {
                    continue;
                }
                match line.parse::<Command>() {
                    Ok(c) => {
                        if tx.blocking_send(c).is_err() {
                            return;
                        }
                    }
                    Err(e) => eprintln!("{e}"),
                }
            }
        });
}

async fn run(cli: &Cli, config: Config, plan: Plan) -> ExitCode {
    let Plan {
        credentials,
        e2ee,
        screen,
        video,
        audio,
    } = plan;
    let started = (|| -> wavecast_stream::Result<_> {
        let v = match video {
            Some((input, s)) => {
                let size = input.size();
                let fps = input.fps(&s);
                let info = VideoTrackInfo {
                    size,
                    screen,
                    publish: Some(s.publish_options(size, fps)),
                };
                Some((capture::start_video(input, &s)?, info, cli.mute_video))
            }
            None => None,
        };
        let a = match audio {
            Some(a) => Some((
                capture::start_audio(a, cli.audio_bitrate * 1000)?,
                cli.mute_audio,
            )),
            None => None,
        };
        Ok(Broadcast::new(v, a))
    })();
    let mut broadcast = match started {
        Ok(b) => b,
        Err(e) => return cli::fail(&e.into(), 1),
    };
    let url = config.connection.url.clone();
    let connector = Connector::new(
        url.clone(),
        credentials,
        config.reconnect.clone(),
        config.connection.connect_timeout,
    )
    .with_transport(config.connection.transport)
    .with_e2ee(e2ee);
    let (cmd_tx, mut cmd_rx) = mpsc::channel(16);
    if !cli.no_stdin {
        spawn_stdin(cmd_tx);
    } else {
        drop(cmd_tx);
    }
    // checked: `Instant + --duration 500000000000y` overflows the clock and panicked; a
    // duration beyond its range is the same as none.
    let deadline = cli
        .duration
        .and_then(|d| tokio::time::Instant::now().checked_add(d));
    let until_deadline = async move {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(until_deadline);
    let shutdown = wavecast_app::signal::shutdown_signal();
    tokio::pin!(shutdown);
    let mut exit = ExitCode::SUCCESS;
    let mut reconnects = 0;
    let connected = tokio::select! {
        r = connector.connect() => Some(r),
        _ = &mut shutdown => None,
        _ = &mut until_deadline => None,
    };
    match connected {
        None => {}
        Some(Err(e)) => exit = cli::fail(&anyhow::anyhow!("{e}"), e.exit_code()),
        Some(Ok((room, mut events))) => {
            let me = room.local_participant();
            if let Err(e) = broadcast.publish(me).await {
                exit = cli::fail(&e.into(), 1);
            } else {
                let mut stats_tick =
                    tokio::time::interval(cli.stats_interval.max(Duration::from_millis(100)));
                stats_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                stats_tick.reset(); // the first line after one interval, not at once
                loop {
                    tokio::select! {
                        ev = events.recv() => {
                            let Some(ev) = ev else { break };
                            if let Followed::Ended { failure } = connector.follow(&ev) {
                                if let Some((code, msg)) = failure {
                                    exit = cli::fail(&anyhow::anyhow!(msg), code);
                                }
                                break;
                            }
                            match ev {
                                RoomEvent::ParticipantConnected(p) => tracing::info!("{} joined", p.identity()),
                                RoomEvent::ParticipantDisconnected(p) => tracing::info!("{} left", p.identity()),
                                _ => {}
                            }
                        }
                        cmd = cmd_rx.recv(), if !cli.no_stdin => match cmd {
                            None => {} // stdin closed: keep broadcasting
                            Some(Command::Quit) => break,
                            Some(Command::Help) => eprintln!("{COMMANDS_HELP}"),
                            Some(Command::Stats) => stats_line(&mut broadcast, &room, &connector),
                            Some(Command::Mute(which, m)) => broadcast.set_muted(me, which, Some(m)).await,
                            Some(Command::Toggle(which)) => broadcast.set_muted(me, which, None).await,
                        },
                        _ = stats_tick.tick() => stats_line(&mut broadcast, &room, &connector),
                        _ = &mut shutdown => break,
                        _ = &mut until_deadline => break,
                    }
                    if broadcast.any_finished() {
                        break;
                    }
                }
            }
            reconnects = room.stats().rejoins;
            broadcast.detach();
            tracing::info!("leaving the room");
            if tokio::time::timeout(Duration::from_secs(5), room.close())
                .await
                .is_err()
            {
                tracing::warn!("the room did not close within 5 s");
            }
        }
    }
    let mut summary = serde_json::json!({"event": "summary", "reconnects": reconnects});
    for (name, k) in broadcast.stop() {
        if let Some(e) = &k.error {
            summary[format!("{name}_error")] = e.clone().into();
            if exit == ExitCode::SUCCESS {
                exit = ExitCode::FAILURE;
            }
        }
        summary[name] = serde_json::to_value(&k).unwrap_or_default();
    }
    println!("{summary}");
    exit
}

fn stats_line(b: &mut Broadcast, room: &Room, connector: &Connector) {
    let parts = b.stats_parts();
    let state = connector.subscribe().borrow().clone();
    let peers = room.remote_participants().len();
    let quality = room.local_participant().connection_quality();
    let q = quality.map_or("n/a".to_owned(), |q| format!("{q:?}").to_lowercase());
    tracing::info!(
        "stats: {} | peers {peers} | quality {q} | {state}",
        parts.join(" | ")
    );
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
