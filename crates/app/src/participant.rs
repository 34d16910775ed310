//! Watching one participant, for apps that show one (the viewer): its outputs and recording
//! ([`open_outputs`]), where its media comes from
//! ([`ParticipantMedia`]: a room followed by [`crate::follow::run`], or the in-process
//! [`loopback`] without a server), and the headless run of the participant scene
//! ([`run_headless`]) with what it reports ([`RenderSummary`], in the stats file
//! [`ParticipantStats`]).
//!
//! ```no_run
//! use std::sync::Arc;
//! use wavecast_app::participant::ParticipantMedia;
//! use wavecast_stream::decoders::{AudioSummary, Decoders, Outputs, VideoSummary};
//! use wavecast_stream::publish::VideoSettings;
//! use wavecast_stream::receive::{AudioOut, VideoOut};
//!
//! # fn demo() -> anyhow::Result<()> {
//! let out = Outputs { video: Arc::new(VideoOut::default()), audio: Arc::new(AudioOut::new(false)), channels: 1 };
//! let video = VideoSettings::pattern(320, 180, 30, 400_000);
//! let runtime = tokio::runtime::Runtime::new()?;
//! let media = ParticipantMedia::loopback(&video, &out, Decoders::new(None, None))?;
//! std::thread::sleep(std::time::Duration::from_secs(1));
//! let outcome = media.finish(&runtime);
//! println!("{} video frames", outcome.finished.video_summary().frames_received);
//! # Ok(()) }
//! ```

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;
use tokio::runtime::Runtime;
use tokio::sync::watch;
use wavecast_media::OutputSpec;
use wavecast_stream::decoders::{AudioSummary, Decoders, Outputs, VideoSummary};
use wavecast_stream::latency::Percentiles;
use wavecast_stream::loopback;
use wavecast_stream::publish::{AudioInput, VideoSettings};
use wavecast_stream::receive::{
    AudioOut, AudioStreamStats, Playback, ReceiveLimits, VideoOut, VideoStreamStats,
};
use wavecast_stream::record::ivf_wav::{Recording, RecordingSummary};
use wavecast_visualizer::Gpu;
use wavecast_visualizer::headless::{LoopOptions, Turn, run_loop};
use wavecast_visualizer::scenes::ParticipantScene;

use crate::captions::Captions;
use crate::follow::{self, Outcome, Watching};
use crate::signal::Interrupt;
use crate::{Connector, Link};

/// The watched participant's outputs (video mailbox, audio meter and, unless `audio_out` is
/// `none`, a playback queue), the playback started into `audio_out`, and decoders that
/// record into `record` (`video.ivf` + `audio.wav`, never overwriting) within `limits`.
///
/// # Errors
/// The audio output or a recording file could not be opened.
pub fn open_outputs(
    audio_out: &OutputSpec,
    channels: u16,
    record: Option<&Path>,
    limits: ReceiveLimits,
) -> anyhow::Result<(Outputs, Option<Playback>, Decoders)> {
    let out = Outputs {
        video: Arc::new(VideoOut::default()),
        audio: Arc::new(AudioOut::new(!matches!(audio_out, OutputSpec::Null))),
        channels,
    };
    let playback = Playback::start(audio_out, &out.audio, channels)?;
    let (ivf, wav) = match record {
        Some(dir) => {
            let r = Recording::create(dir, channels)?;
            (Some(r.video), Some(r.audio))
        }
        None => (None, None),
    };
    let decoders = Decoders::new(ivf, wav).with_limits(limits);
    Ok((out, playback, decoders))
}

/// The loopback's tone, Hz.
const LOOPBACK_TONE: f64 = 440.0;
/// The loopback's Opus bitrate, bits per second.
const LOOPBACK_AUDIO_BITRATE: u32 = 32_000;

/// Where the watched participant's media comes from. Dropping it without [`Self::finish`]
/// leaves a room task running on its runtime until the runtime ends.
pub struct ParticipantMedia {
    inner: Inner,
    conn: watch::Receiver<Link>,
    watching: watch::Receiver<Watching>,
    captions: Captions,
}

enum Inner {
    Room {
        task: tokio::task::JoinHandle<Outcome>,
        connector: Arc<Connector>,
        stop: watch::Sender<bool>,
    },
    Loopback {
        link: Box<loopback::Loopback>,
        state: watch::Sender<Link>,
    },
}

impl ParticipantMedia {
    /// Joins through `connector` on `runtime` and watches `want` (else the first participant
    /// that publishes, then the next one when they leave), decoding into `out`.
    pub fn room(
        runtime: &Runtime,
        connector: Arc<Connector>,
        out: Outputs,
        decoders: Decoders,
        want: Option<String>,
    ) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        let (watch_tx, watching) = watch::channel(Watching::default());
        let conn = connector.subscribe();
        let captions = Captions::default();
        let task = runtime.spawn(follow::run(
            connector.clone(),
            out,
            decoders,
            watch_tx,
            want,
            captions.clone(),
            stop_rx,
        ));
        Self {
            inner: Inner::Room {
                task,
                connector,
                stop,
            },
            conn,
            watching,
            captions,
        }
    }

    /// Runs the broadcaster's synthetic capture (`video`, and a 440 Hz tone with
    /// `out.channels`) through the encoders into `decoders`, in this process (no server).
    ///
    /// # Errors
    /// The capture or an encoder could not start.
    pub fn loopback(
        video: &VideoSettings,
        out: &Outputs,
        decoders: Decoders,
    ) -> anyhow::Result<Self> {
        let audio = AudioInput::Tone {
            frequency: LOOPBACK_TONE,
            channels: out.channels,
        };
        let link = loopback::Loopback::start(video, &audio, LOOPBACK_AUDIO_BITRATE, out, decoders)
            .context("the loopback did not start")?;
        let (state, conn) = watch::channel(Link::connected("loopback"));
        Ok(Self {
            inner: Inner::Loopback {
                link: Box::new(link),
                state,
            },
            conn,
            watching: watch::channel(Watching::default()).1,
            captions: Captions::default(),
        })
    }

    /// The connection state, for a status line.
    pub fn conn(&self) -> watch::Receiver<Link> {
        self.conn.clone()
    }

    /// Who is being watched, for a status line.
    pub fn watching(&self) -> watch::Receiver<Watching> {
        self.watching.clone()
    }

    /// The room's chat and transcriptions (empty for the loopback).
    pub fn captions(&self) -> Captions {
        self.captions.clone()
    }

    /// The room's connection supervisor (`None` for the loopback).
    pub fn connector(&self) -> Option<&Arc<Connector>> {
        match &self.inner {
            Inner::Room { connector, .. } => Some(connector),
            Inner::Loopback { .. } => None,
        }
    }

    /// Whether the media side ended by itself (the room task gave up or the room ended).
    pub fn is_finished(&self) -> bool {
        match &self.inner {
            Inner::Room { task, .. } => task.is_finished(),
            Inner::Loopback { .. } => false,
        }
    }

    /// Stops the media side (leaving the room; finalising recordings the decoders hold) and
    /// returns what it received.
    pub fn finish(self, runtime: &Runtime) -> Outcome {
        match self.inner {
            Inner::Room { task, stop, .. } => {
                let _ = stop.send(true);
                runtime.block_on(task).unwrap_or_default()
            }
            Inner::Loopback { link, state } => {
                state.send_modify(|l| {
                    l.state = wavecast_session::ConnectionState::Disconnected;
                    l.cause = "left the room".into();
                });
                Outcome {
                    finished: link.stop(),
                    room: "loopback".into(),
                    ..Default::default()
                }
            }
        }
    }
}

/// What rendering did (a part of the stats file).
#[derive(Debug, Serialize, Default)]
pub struct RenderSummary {
    /// Frames rendered.
    pub rendered_frames: u64,
    /// PNGs written.
    pub pngs: u64,
    /// Window or image size.
    pub size: (u32, u32),
    /// Where the picture lands in the PNGs (x, y, w, h).
    pub picture_rect: Option<(f32, f32, f32, f32)>,
    /// Capture-to-render age of shown stamped frames.
    pub latency_ms: Option<Percentiles>,
    /// The GPU adapter.
    pub adapter: String,
    /// The caption lines on the last rendered frame (chat, transcriptions; after wrapping).
    pub captions: Vec<String>,
    /// Where captions are drawn in the PNGs (x, y, w, h).
    pub caption_rect: Option<(f32, f32, f32, f32)>,
}

/// Headless: render whenever a new picture waits (else the status twice a second), dump PNGs
/// named by frame number, stop at `frames` decoded video frames (counted in `out`), on
/// `interrupted` or when `media_done`. Fills `render`; returns whether `frames` were reached
/// (true without `frames`).
///
/// # Errors
/// No GPU adapter, or rendering / writing a PNG failed.
pub fn run_headless(
    scene: impl FnOnce(&Gpu) -> ParticipantScene,
    options: &LoopOptions,
    frames: Option<u64>,
    out: &Outputs,
    interrupted: &Interrupt,
    media_done: impl Fn() -> bool,
    render: &mut RenderSummary,
) -> anyhow::Result<bool> {
    let gpu = Gpu::headless().context("no GPU adapter for headless rendering")?;
    let mut scene = scene(&gpu);
    let mut last_status = Instant::now();
    let turn = |_: &ParticipantScene| {
        if frames.is_some_and(|n| out.video.frames.load(Ordering::Relaxed) >= n) {
            Turn::Stop { reached: true }
        } else if interrupted.is_set() || media_done() {
            Turn::Stop {
                reached: frames.is_none(),
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
    let report = run_loop(&gpu, &mut scene, options, turn, count)?;
    render.adapter = report.adapter;
    render.rendered_frames = report.counted;
    render.pngs = report.pngs;
    render.picture_rect = scene.picture_rect().map(|r| (r.x, r.y, r.w, r.h));
    render.latency_ms = Percentiles::of(&scene.render_latencies);
    render.captions = scene.captions().to_vec();
    let c = scene.caption_rect();
    render.caption_rect = Some((c.x, c.y, c.w, c.h));
    Ok(report.reached)
}

/// The stats file of an app that watched one participant (`--stats` / `--dump`).
#[derive(Debug, Serialize)]
pub struct ParticipantStats {
    /// Where the media came from: `room` or `loopback`.
    pub source: String,
    /// The server (room mode).
    pub url: Option<String>,
    /// The room's name.
    pub room: Option<String>,
    /// Seconds from start to the end of the run.
    pub elapsed_s: f64,
    /// The `--frames` asked for.
    pub frames_requested: Option<u64>,
    /// All video streams in a few figures.
    pub video: VideoSummary,
    /// All audio streams in a few figures.
    pub audio: AudioSummary,
    /// What rendering did.
    pub render: RenderSummary,
    /// The IVF + WAV recording, when there was one.
    pub recording: Option<RecordingSummary>,
    /// Rejoins made.
    pub reconnects: u64,
    /// End-to-end encryption: frames decrypted and refused (all zero without encryption).
    pub e2ee: wavecast_session::E2eeStats,
    /// Every stream, in order.
    pub streams: StreamsStats,
}

/// Every stream of a run.
#[derive(Debug, Serialize)]
pub struct StreamsStats {
    /// Video streams.
    pub video: Vec<VideoStreamStats>,
    /// Audio streams.
    pub audio: Vec<AudioStreamStats>,
}

impl ParticipantStats {
    /// The stats of a run that began at `started`: its `outcome`, `render`ing, and the
    /// recording made into `record`.
    pub fn new(
        source: String,
        url: Option<String>,
        started: Instant,
        frames_requested: Option<u64>,
        render: RenderSummary,
        record: Option<&Path>,
        outcome: &Outcome,
    ) -> Self {
        let f = &outcome.finished;
        Self {
            source,
            url,
            room: Some(outcome.room.clone()).filter(|r| !r.is_empty()),
            elapsed_s: started.elapsed().as_secs_f64(),
            frames_requested,
            video: f.video_summary(),
            audio: f.audio_summary(),
            render,
            recording: record.map(|dir| RecordingSummary::new(dir, &f.recording)),
            reconnects: outcome.reconnects,
            e2ee: outcome.e2ee,
            streams: StreamsStats {
                video: f.video.clone(),
                audio: f.audio.clone(),
            },
        }
    }
}

/// Parses an `--audio-out` value: `none`, `wav:PATH`, `default` or `device:NAME`.
///
/// # Errors
/// A sentence quoting the value and listing the forms.
pub fn parse_audio_out(s: &str) -> anyhow::Result<OutputSpec> {
    if s == "none" {
        return Ok(OutputSpec::Null);
    }
    s.parse::<OutputSpec>()
        .map_err(|e| anyhow::anyhow!("--audio-out {s:?}: {e}; use none, wav:PATH or default"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_outputs_parse() {
        assert_eq!(parse_audio_out("none").unwrap(), OutputSpec::Null);
        assert_eq!(
            parse_audio_out("wav:/tmp/a.wav").unwrap(),
            OutputSpec::Wav("/tmp/a.wav".into())
        );
        assert!(parse_audio_out("speaker").is_err());
    }
}
