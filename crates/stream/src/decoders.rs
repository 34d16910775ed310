//! The decoders of one watched participant: at most one video and one audio decoder thread at a
//! time, with the recorders handed from each finished stream to the next one.

use std::sync::Arc;

use wavecast_session::{SubscribedTrack, TrackKind};

use crate::latency::Percentiles;
use crate::loopback::LinkRx;
use crate::receive::{
    AudioOut, AudioReceiver, AudioStreamStats, Decoder, ReceiveLimits, ReceiveOptions, StreamName,
    VideoOut, VideoReceiver, VideoStreamStats, run_audio, run_video, spawn_audio, spawn_video,
};
use crate::record::ivf_wav::{RecordingStats, TrackFile};

/// Where decoded media goes.
#[derive(Debug, Clone)]
pub struct Outputs {
    /// Video.
    pub video: Arc<VideoOut>,
    /// Audio.
    pub audio: Arc<AudioOut>,
    /// Channels to decode audio to.
    pub channels: u16,
}

/// The decoder threads of the watched participant, and the recorders they pass along.
#[derive(Debug)]
pub struct Decoders {
    video: Option<Decoder<VideoStreamStats>>,
    audio: Option<Decoder<AudioStreamStats>>,
    ivf: Option<TrackFile>,
    wav: Option<TrackFile>,
    limits: ReceiveLimits,
    /// Finished video streams.
    pub done_video: Vec<VideoStreamStats>,
    /// Finished audio streams.
    pub done_audio: Vec<AudioStreamStats>,
}

impl Decoders {
    /// No decoders yet; the recorders wait for the first streams.
    pub fn new(ivf: Option<TrackFile>, wav: Option<TrackFile>) -> Self {
        Self {
            video: None,
            audio: None,
            ivf,
            wav,
            limits: ReceiveLimits::default(),
            done_video: Vec::new(),
            done_audio: Vec::new(),
        }
    }

    /// Decode with `limits` instead of the defaults.
    pub fn with_limits(mut self, limits: ReceiveLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The limits the decoders apply.
    pub fn limits(&self) -> ReceiveLimits {
        self.limits
    }

    /// Collects decoders whose tracks ended.
    pub fn reap(&mut self) {
        if self.video.as_ref().is_some_and(|h| h.is_finished())
            && let Some(h) = self.video.take()
        {
            self.join_video(h);
        }
        if self.audio.as_ref().is_some_and(|h| h.is_finished())
            && let Some(h) = self.audio.take()
        {
            self.join_audio(h);
        }
    }

    fn join_video(&mut self, h: Decoder<VideoStreamStats>) {
        match h.join() {
            Ok((s, rec)) => {
                tracing::info!(
                    "video stream of {} ended: {} frames decoded",
                    s.participant,
                    s.frames_decoded
                );
                self.done_video.push(s);
                self.ivf = rec;
            }
            Err(_) => tracing::error!("a video decoder thread panicked"),
        }
    }

    fn join_audio(&mut self, h: Decoder<AudioStreamStats>) {
        match h.join() {
            Ok((s, rec)) => {
                self.done_audio.push(s);
                self.wav = rec;
            }
            Err(_) => tracing::error!("an audio decoder thread panicked"),
        }
    }

    /// Whether a decoder of `kind` is running.
    pub fn busy(&self, kind: TrackKind) -> bool {
        match kind {
            TrackKind::Video => self.video.is_some(),
            TrackKind::Audio => self.audio.is_some(),
        }
    }

    /// Starts decoding `track` (its kind's decoder must not be [`busy`](Self::busy)); its
    /// publisher's identity and the track sid name the stream's statistics.
    pub fn start(&mut self, track: SubscribedTrack, out: &Outputs) {
        let options = ReceiveOptions::from(self.limits);
        let started = match track.kind() {
            TrackKind::Video => spawn_video(track, out.video.clone(), self.ivf.take(), options)
                .map(|h| self.video = Some(h)),
            TrackKind::Audio => spawn_audio(
                track,
                out.audio.clone(),
                out.channels,
                self.wav.take(),
                options,
            )
            .map(|h| self.audio = Some(h)),
        };
        if let Err(e) = started {
            tracing::error!("{e}");
        }
    }

    /// Starts decoding the loopback link `source` of `kind` (statistics named `loopback`).
    pub(crate) fn start_loopback(&mut self, kind: TrackKind, source: LinkRx, out: &Outputs) {
        let options = ReceiveOptions::from(self.limits);
        let name = StreamName::other("loopback", &format!("loopback-{kind:?}").to_lowercase());
        let started = match kind {
            TrackKind::Video => {
                VideoReceiver::new(name, out.video.clone(), self.ivf.take(), options)
                    .and_then(|r| run_video(source, r))
                    .map(|h| self.video = Some(h))
            }
            TrackKind::Audio => AudioReceiver::new(
                name,
                out.audio.clone(),
                out.channels,
                self.wav.take(),
                options,
            )
            .and_then(|r| run_audio(source, r))
            .map(|h| self.audio = Some(h)),
        };
        if let Err(e) = started {
            tracing::error!("{e}");
        }
    }

    /// Waits for every decoder (their sources must be closed) and finishes the recordings.
    pub fn finish(mut self) -> Finished {
        if let Some(h) = self.video.take() {
            self.join_video(h);
        }
        if let Some(h) = self.audio.take() {
            self.join_audio(h);
        }
        let mut recording = RecordingStats::default();
        if let Some(mut r) = self.ivf.take() {
            if let TrackFile::Ivf(w) = &r {
                recording.video_frames = Some(u64::from(w.frames()));
            }
            if let Err(e) = r.finish() {
                tracing::error!("{e}");
            }
        }
        if let Some(mut r) = self.wav.take() {
            if let Err(e) = r.finish() {
                tracing::error!("{e}");
            }
            recording.audio_samples =
                Some(self.done_audio.iter().map(|a| a.recorded_samples).sum());
        }
        Finished {
            video: self.done_video,
            audio: self.done_audio,
            recording,
        }
    }
}

/// All streams once everything stopped.
#[derive(Debug, Default)]
pub struct Finished {
    /// Video streams, in order.
    pub video: Vec<VideoStreamStats>,
    /// Audio streams, in order.
    pub audio: Vec<AudioStreamStats>,
    /// Recording.
    pub recording: RecordingStats,
}

/// All video streams of a run in a few figures.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VideoSummary {
    /// Pictures decoded, all streams.
    pub frames_received: u64,
    /// Distinct stamped frame numbers / their span, all streams, percent.
    pub received_pct: Option<f64>,
    /// Capture-to-decode age of stamped frames (first stream with stamps).
    pub latency_ms: Option<Percentiles>,
    /// Picture width of the last stream's last picture.
    pub width: u32,
    /// Picture height of the last stream's last picture.
    pub height: u32,
    /// Decoded pictures per second (first stream that lasted).
    pub fps: Option<f64>,
}

/// All audio streams of a run in a few figures.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AudioSummary {
    /// Packets decoded.
    pub packets: u64,
    /// Decoded audio, seconds.
    pub seconds: f64,
    /// Packets that failed to decode.
    pub decode_errors: u64,
}

impl std::fmt::Display for VideoSummary {
    /// `120 video frames (99.2% of sent), latency p50 41 ms p95 60 ms`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
        write!(
            f,
            "{} video frames ({}), latency p50 {} ms p95 {} ms",
            self.frames_received,
            self.received_pct
                .map_or("no stamps".into(), |p| format!("{p:.1}% of sent")),
            ms(self.latency_ms.map(|l| l.p50_ms)),
            ms(self.latency_ms.map(|l| l.p95_ms)),
        )
    }
}

impl Finished {
    /// The video streams in a few figures.
    pub fn video_summary(&self) -> VideoSummary {
        let v = &self.video;
        let (seen, span) = v.iter().fold((0u64, 0u64), |(a, b), s| {
            match (s.first_frame_number, s.last_frame_number) {
                (Some(lo), Some(hi)) => (a + s.distinct_frame_numbers, b + u64::from(hi - lo) + 1),
                _ => (a, b),
            }
        });
        let last = v.last();
        VideoSummary {
            frames_received: v.iter().map(|s| s.frames_decoded).sum(),
            received_pct: (span > 0).then(|| 100.0 * seen as f64 / span as f64),
            latency_ms: v.iter().find_map(|s| s.latency),
            width: last.map_or(0, |s| s.width),
            height: last.map_or(0, |s| s.height),
            fps: v
                .iter()
                .filter(|s| s.seconds > 0.0)
                .map(|s| (s.frames_decoded.saturating_sub(1)) as f64 / s.seconds)
                .next(),
        }
    }

    /// The audio streams in a few figures.
    pub fn audio_summary(&self) -> AudioSummary {
        let a = &self.audio;
        AudioSummary {
            packets: a.iter().map(|s| s.packets).sum(),
            seconds: a.iter().map(|s| s.seconds).sum::<f64>() + 0.0,
            decode_errors: a.iter().map(|s| s.decode_errors).sum(),
        }
    }
}
