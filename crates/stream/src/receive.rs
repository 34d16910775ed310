//! Receive and decode: one thread per subscribed track turns encoded frames into pipeline frames.
//!
//! Video: VP8 decode → read the synthetic source's stamp (frame number, capture time) for the
//! delivery ratio and glass-to-glass latency → copy into a pooled frame → the renderer's
//! latest-frame [`Mailbox`]; optionally the encoded frame goes to an IVF file untouched. The
//! picture size may change at any frame (a publisher ramping up its resolution, a simulcast
//! layer switch): the frame pool is rebuilt for a larger picture, smaller ones reuse it.
//! Audio: Opus decode → a pooled [`AudioFrame`] fanned out without copies to the renderer's queue
//! and the playback queue (both drop-oldest); optionally written to a WAV file. Lost packets
//! (gaps in the RTP times) are filled before the packet that ends them — rebuilt from that
//! packet's in-band FEC, or concealed (PLC) — up to [`wavecast_codec::DEFAULT_MAX_CONCEAL`], so
//! playback and recordings stay continuous through loss; late and duplicate packets are dropped.
//!
//! Live figures are relaxed atomics the overlay reads; the full statistics (every latency,
//! every frame number) stay on the decoder thread and come back when its track ends.
//!
//! # One decoder per kind
//! This is not a decoder of its own: [`VideoReceiver`] and [`AudioReceiver`] each hold the
//! session's subscriber ([`VideoSubscriber`], [`AudioSubscriber`], made without a track) and hand
//! it one encoded frame at a time ([`VideoSubscriber::decode`], [`AudioSubscriber::decode`]);
//! keyframe waiting, picture-size refusal, loss concealment and decode errors are the
//! subscriber's. What this module adds around that step is what a viewer, the room visualizer, a
//! load test and a recording need: statistics, the stamp read, the frame pool and the outputs,
//! the IVF/WAV files. The push-based step (instead of consuming the subscriber's own `recv`) lets
//! the same per-frame path take frames from a session track on a decoder thread
//! ([`spawn_video`], [`spawn_audio`]), from the in-process [`loopback`](crate::loopback) link, or
//! from a caller's own loop (the load test's tasks).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use serde::Serialize;
use wavecast_codec::{DEFAULT_MAX_PIXELS, MAX_OPUS_DECODED};
use wavecast_media::stamp;
use wavecast_pipeline::{
    AgeHistogram, AudioFormat, AudioFrame, AudioFramePool, FanOut, FrameQueue, Mailbox,
    PixelFormat, Timestamp, VideoFrame, VideoFramePool, VideoLayout,
};
use wavecast_session::{
    AudioSubscriber, EncodedFrame, StreamStats, SubscribedTrack, VideoDecode, VideoSubscriber,
};

use crate::error::{Result, StreamError, media, pipeline, subscriber, thread};
use crate::frames::FrameSet;
use crate::latency::Percentiles;
use crate::record::ivf_wav::TrackFile;

/// A blocking source of encoded frames for a decoder thread: a subscribed track, or the
/// in-process loopback link.
pub(crate) trait EncodedSource: Send + 'static {
    /// The next frame; `None` when the track ended.
    fn recv(&mut self) -> Option<EncodedFrame>;
    /// Ask the sender for a keyframe.
    fn request_keyframe(&self);
    /// Frames the source dropped because its reader was slow (0 for sources that never drop).
    fn dropped(&self) -> u64 {
        0
    }
    /// How many times the source moved to a new RTP stream (a rejoin); frames after a move do
    /// not continue the old stream's times. 0 for sources that never move.
    fn streams(&self) -> u64 {
        0
    }
}

/// A session's subscribed track read from a plain thread (it continues across rejoins), on the
/// runtime that was current when its decoder started.
struct BlockingTrack {
    track: SubscribedTrack,
    runtime: tokio::runtime::Handle,
}

impl BlockingTrack {
    fn new(track: SubscribedTrack) -> Result<Self> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|source| StreamError::NoRuntime {
                what: format!("decode {}", track.key()),
                source,
            })?;
        Ok(Self { track, runtime })
    }
}

impl EncodedSource for BlockingTrack {
    fn recv(&mut self) -> Option<EncodedFrame> {
        self.runtime.block_on(self.track.recv())
    }
    fn request_keyframe(&self) {
        self.track.request_keyframe();
    }
    fn dropped(&self) -> u64 {
        self.track.dropped()
    }
    fn streams(&self) -> u64 {
        self.track.streams()
    }
}

/// What a receiver accepts from peers it does not control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveLimits {
    /// Largest decoded picture, pixels (width × height): larger keyframes are refused before
    /// any allocation, and the track is reported instead of decoded.
    pub max_pixels: u64,
    /// Most tracks decoded at once (each one is a decoder thread); more are refused.
    pub max_tracks: usize,
}

impl Default for ReceiveLimits {
    /// 3840×2160 pixels, 32 tracks.
    fn default() -> Self {
        Self {
            max_pixels: DEFAULT_MAX_PIXELS,
            max_tracks: 32,
        }
    }
}

/// What the renderer reads from the video decoder.
#[derive(Default)]
pub struct VideoOut {
    /// The newest decoded picture (older ones go back to the pool, counted as dropped); shared
    /// with whoever shows it.
    pub mailbox: Arc<Mailbox<VideoFrame>>,
    /// Pictures decoded.
    pub frames: AtomicU64,
    /// Encoded bytes received.
    pub bytes: AtomicU64,
    /// Frames that failed to decode.
    pub errors: AtomicU64,
    /// Decoded frames that could not be handed to the renderer (no pool buffer free).
    pub not_shown: AtomicU64,
    /// Keyframes refused for announcing a picture larger than [`ReceiveLimits::max_pixels`].
    pub refused: AtomicU64,
    /// Age of the last stamped frame at decode, µs.
    pub last_latency_us: AtomicU64,
    /// Median age at decode over the stream so far, µs (updated every 15 frames).
    pub p50_latency_us: AtomicU64,
    /// Last frame number read from a stamp.
    pub last_frame_number: AtomicU64,
    /// Picture size, `w << 16 | h`.
    pub size: AtomicU32,
    /// Frames carry a readable stamp.
    pub stamped: AtomicBool,
}

impl std::fmt::Debug for VideoOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoOut")
            .field("frames", &self.frames)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

/// What the renderer and the playback thread read from the audio decoder.
pub struct AudioOut {
    /// Fan-out to the queues below.
    pub fan: FanOut<AudioFrame>,
    /// For the renderer (waveform, meter); drop-oldest.
    pub render: Arc<FrameQueue<AudioFrame>>,
    /// For playback; drop-oldest (absent when audio is not played).
    pub playback: Option<Arc<FrameQueue<AudioFrame>>>,
    /// Packets decoded.
    pub packets: AtomicU64,
    /// Encoded bytes received.
    pub bytes: AtomicU64,
    /// Samples per channel decoded, concealed lost audio included.
    pub samples: AtomicU64,
    /// Packets that failed to decode.
    pub errors: AtomicU64,
    /// Lost packets rebuilt from the next packet's in-band FEC.
    pub fec_recovered: AtomicU64,
    /// Lost packets concealed (PLC).
    pub plc_concealed: AtomicU64,
}

impl AudioOut {
    /// Queues for a renderer (about 1 s) and, with `playback`, for an output.
    pub fn new(playback: bool) -> Self {
        let mut fan = FanOut::new();
        let render = fan.add_queue("render", 64);
        let playback = playback.then(|| fan.add_queue("playback", 64));
        Self {
            fan,
            render,
            playback,
            packets: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            samples: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            fec_recovered: AtomicU64::new(0),
            plc_concealed: AtomicU64::new(0),
        }
    }
}

impl std::fmt::Debug for AudioOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioOut")
            .field("packets", &self.packets)
            .finish_non_exhaustive()
    }
}

/// Everything one video stream's decoder saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VideoStreamStats {
    /// Publisher identity.
    pub participant: String,
    /// Track sid (or `loopback`).
    pub track: String,
    /// The codec of the frames received (`vp8`, `vp9`, `h264`; empty before the first).
    pub codec: String,
    /// Encoded frames received.
    pub frames_in: u64,
    /// Pictures decoded.
    pub frames_decoded: u64,
    /// Frames that failed to decode (a keyframe was requested).
    pub decode_errors: u64,
    /// Frames skipped while waiting for a keyframe.
    pub skipped_before_keyframe: u64,
    /// Keyframes refused for announcing a picture larger than [`ReceiveLimits::max_pixels`]
    /// (not decoded, nothing allocated for them).
    pub refused_keyframes: u64,
    /// The size the last refused keyframe announced, `[width, height]`.
    pub refused_size: Option<(u32, u32)>,
    /// Encoded bytes.
    pub bytes: u64,
    /// Picture size of the last frame.
    pub width: u32,
    /// Picture size of the last frame.
    pub height: u32,
    /// Decoded pictures whose stamp could be read.
    pub stamped_frames: u64,
    /// Lowest stamped frame number seen.
    pub first_frame_number: Option<u32>,
    /// Highest stamped frame number seen.
    pub last_frame_number: Option<u32>,
    /// Distinct stamped frame numbers seen.
    pub distinct_frame_numbers: u64,
    /// distinct / (last − first + 1), in percent: the share of the sender's frames in that span
    /// that arrived and decoded.
    pub received_pct: Option<f64>,
    /// Stamped pictures whose frame number is lower than the one before (out of order, or a
    /// source that loops its frames).
    pub stamp_regressions: u64,
    /// The last stamped frame number decoded.
    #[serde(skip)]
    pub last_stamp: Option<u32>,
    /// Capture-to-decoded age from the stamps (glass to glass up to the decoder).
    pub latency: Option<Percentiles>,
    /// Frames written to the IVF recording.
    pub recorded_frames: u64,
    /// Every picture size the stream had, in order, with when it started.
    pub sizes: Vec<SizeChange>,
    /// Decoded pictures that could not be handed on (no free pool buffer; should stay 0).
    pub not_shown: u64,
    /// Wall time from the first to the last decoded frame, seconds.
    pub seconds: f64,
    /// Frames that followed lost packets (the source's contiguity flag).
    pub gaps: u64,
    /// Frames the track dropped because this reader was slow ([`SubscribedTrack::dropped`]).
    pub source_drops: u64,
    /// When the first picture was decoded.
    #[serde(skip)]
    pub first_decoded_at: Option<Instant>,
    /// Every stamped frame number decoded (for delivery over any range of the sender's frames).
    #[serde(skip)]
    pub frame_numbers: FrameSet,
    /// Every recorded age (what `latency` summarises), to merge with other streams'.
    #[serde(skip)]
    pub ages: AgeHistogram,
}

/// A picture size a video stream switched to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SizeChange {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Number (1-based) of the first decoded picture of this size in the stream.
    pub first_frame: u64,
    /// Wall-clock time it was decoded, seconds since the Unix epoch.
    pub at_unix_s: f64,
}

/// One audio stream's totals.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AudioStreamStats {
    /// Publisher identity.
    pub participant: String,
    /// Track sid (or `loopback`).
    pub track: String,
    /// Packets decoded.
    pub packets: u64,
    /// Packets that failed to decode.
    pub decode_errors: u64,
    /// Samples per channel decoded, concealed lost audio included.
    pub samples: u64,
    /// Decoded audio, seconds (concealed lost audio included: through loss it keeps pace with
    /// `wall_seconds`).
    pub seconds: f64,
    /// Lost packets rebuilt from the in-band FEC of the packet after them.
    pub fec_recovered: u64,
    /// Lost packets concealed by Opus PLC (in the duration of the packet after them).
    pub plc_concealed: u64,
    /// Samples per channel of lost audio filled in (FEC and PLC).
    pub concealed_samples: u64,
    /// Packets dropped as late (their time was already played) or duplicates.
    pub late_packets: u64,
    /// Gaps too long to conceal (a pause, a sender restart, an outage): not filled, the
    /// decoder restarted.
    pub restarts: u64,
    /// Wall time from the first packet's arrival to the last one's end, seconds (equals
    /// `seconds` when nothing was lost, or every loss was filled in).
    pub wall_seconds: f64,
    /// Samples per channel written to the WAV recording.
    pub recorded_samples: u64,
    /// Packets received (decoded or not).
    pub received: u64,
    /// Encoded bytes received.
    pub bytes: u64,
    /// RTP times (48 kHz) of the earliest and the latest packet received.
    pub rtp_span: Option<(u64, u64)>,
    /// Samples per channel of the last decoded packet (960 for 20 ms Opus frames).
    pub packet_samples: u64,
    /// Packets the track dropped because this reader was slow ([`SubscribedTrack::dropped`]).
    pub source_drops: u64,
}

impl AudioStreamStats {
    /// Packets the RTP time span implies were sent, at the last decoded packet's duration
    /// (0 before a packet decoded). `expected − received` is the network's loss.
    pub fn expected_packets(&self) -> u64 {
        match (self.rtp_span, self.packet_samples) {
            (Some((a, b)), n) if n > 0 => (b - a) / n + 1,
            _ => 0,
        }
    }
}

/// The decoder's frame pool, rebuilt when a picture no longer fits its buffers.
///
/// Allocation happens only when the stream's picture grows past every size seen so far (a
/// handful of times per stream at most); smaller pictures reuse the larger buffers.
pub struct DecodedPool {
    name: &'static str,
    capacity: usize,
    pool: Option<VideoFramePool>,
    rebuilt: u64,
}

impl std::fmt::Debug for DecodedPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodedPool")
            .field("name", &self.name)
            .field("layout", &self.pool.as_ref().map(|p| *p.layout()))
            .field("rebuilt", &self.rebuilt)
            .finish()
    }
}

impl DecodedPool {
    /// No buffers until the first picture.
    pub fn new(name: &'static str, capacity: usize) -> Self {
        Self {
            name,
            capacity,
            pool: None,
            rebuilt: 0,
        }
    }

    /// A pool whose buffers hold a `width`×`height` I420 picture.
    ///
    /// # Errors
    /// The size is not a valid I420 layout.
    pub fn fit(&mut self, width: u32, height: u32) -> Result<&VideoFramePool> {
        let layout = VideoLayout::new(PixelFormat::I420, width, height).map_err(|source| {
            StreamError::Pipeline {
                what: format!("decoded picture {width}x{height}"),
                source,
            }
        })?;
        let fits = self
            .pool
            .as_ref()
            .is_some_and(|p| p.layout().len() >= layout.len());
        if !fits {
            if self.pool.is_some() {
                tracing::debug!("{} frames grew to {width}x{height}: new pool", self.name);
                self.rebuilt += 1;
            }
            // Frames still in flight keep the old buffers alive until they are dropped.
            self.pool = Some(VideoFramePool::new(self.name, layout, self.capacity));
        }
        Ok(self.pool.as_ref().expect("set just above"))
    }

    /// How many times a larger picture replaced the pool.
    pub fn rebuilt(&self) -> u64 {
        self.rebuilt
    }
}

/// Capture times further than this from our clock are taken for a false stamp (the CRC-8 lets
/// about 1 in 256 unstamped pictures through; a real stamp from this machine or an NTP-synced one
/// is within milliseconds).
const STAMP_PLAUSIBLE: std::time::Duration = std::time::Duration::from_secs(60);

/// Reads the stamp straight from a decoded picture's luma plane.
fn read_stamp(img: &wavecast_codec::DecodedImage<'_>, now: Timestamp) -> Option<stamp::Stamp> {
    let i = &img.image;
    let s = stamp::decode_plane(i.planes[0], i.strides[0], 1, i.width, i.height).ok()?;
    let off = now
        .saturating_duration_since(s.timestamp)
        .max(s.timestamp.saturating_duration_since(now));
    (off <= STAMP_PLAUSIBLE).then_some(s)
}

/// How a receiver hands on what it decodes, and what it measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveOptions {
    /// Hand every `deliver_every`-th decoded picture (video) or packet (audio) to the outputs:
    /// `1` (the default) every one, as a viewer needs; `0` none — a client that only measures
    /// (a load test) saves the copy out of the decoder and the output pool. Everything is still
    /// decoded (VP8 inter frames depend on the frames before them) and every stamp is read.
    pub deliver_every: u32,
    /// Ages of stamped pictures decoded within this time of the first decoded picture are left
    /// out of the latency histogram (the start of a stream: the wait for the first keyframe,
    /// a jitter buffer filling). Zero by default.
    pub latency_warmup: std::time::Duration,
    /// Largest decoded picture, pixels: larger keyframes are refused before any allocation
    /// ([`ReceiveLimits::max_pixels`]; 3840×2160 by default).
    pub max_pixels: u64,
}

impl Default for ReceiveOptions {
    fn default() -> Self {
        Self {
            deliver_every: 1,
            latency_warmup: std::time::Duration::ZERO,
            max_pixels: DEFAULT_MAX_PIXELS,
        }
    }
}

impl From<ReceiveLimits> for ReceiveOptions {
    /// Every picture and packet delivered, pictures up to `limits.max_pixels`.
    fn from(limits: ReceiveLimits) -> Self {
        Self {
            max_pixels: limits.max_pixels,
            ..Self::default()
        }
    }
}

/// Whose stream a receiver decodes, as its statistics name it: from a [`SubscribedTrack`], its
/// publisher's identity and the track sid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamName {
    pub(crate) participant: String,
    pub(crate) track: String,
}

impl From<&SubscribedTrack> for StreamName {
    fn from(track: &SubscribedTrack) -> Self {
        Self {
            participant: track.key().identity.clone(),
            track: track.sid(),
        }
    }
}

impl StreamName {
    /// A stream that is no session track: the loopback's, a test's.
    pub(crate) fn other(participant: &str, track: &str) -> Self {
        Self {
            participant: participant.into(),
            track: track.into(),
        }
    }
}

/// The video receive path of one track, without a thread: feed it encoded frames with
/// [`push`](Self::push) from any loop (a decoder thread — [`spawn_video`] — or an async task on
/// a runtime of the caller's size), read [`stats`](Self::stats), [`finish`](Self::finish) when
/// the track ends.
///
/// Per frame: the subscriber's VP8 decode step ([`VideoSubscriber::decode`]), the stamp read (frame number into a [`FrameSet`], age into an
/// [`AgeHistogram`]), the relaxed counters of [`VideoOut`], and — per
/// [`ReceiveOptions::deliver_every`] — a copy into a pooled frame posted to the mailbox. Nothing
/// allocates in steady state.
pub struct VideoReceiver {
    out: Arc<VideoOut>,
    recorder: Option<TrackFile>,
    options: ReceiveOptions,
    stats: VideoStreamStats,
    subscriber: VideoSubscriber,
    pool: DecodedPool,
    hist: AgeHistogram,
    last_at: Instant,
}

impl std::fmt::Debug for VideoReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoReceiver")
            .field("participant", &self.stats.participant)
            .field("track", &self.stats.track)
            .field("frames_decoded", &self.stats.frames_decoded)
            .finish_non_exhaustive()
    }
}

impl VideoReceiver {
    /// A receiver for a track (`name`: pass the [`SubscribedTrack`]), decoding into `out` (and
    /// the encoded frames into `recorder`'s IVF file when given). The caller feeds it the
    /// track's frames ([`push`](Self::push)).
    ///
    /// # Errors
    /// The VP8 decoder cannot start.
    pub fn new(
        name: impl Into<StreamName>,
        out: Arc<VideoOut>,
        recorder: Option<TrackFile>,
        options: ReceiveOptions,
    ) -> Result<Self> {
        let StreamName { participant, track } = name.into();
        let subscriber = VideoSubscriber::without_track()
            .map_err(subscriber("cannot start the VP8 decoder"))?
            .with_max_pixels(options.max_pixels);
        Ok(Self {
            out,
            recorder,
            options,
            stats: VideoStreamStats {
                participant,
                track,
                // An hour at 30 fps before the set grows.
                frame_numbers: FrameSet::with_capacity(1 << 17),
                ..Default::default()
            },
            subscriber,
            pool: DecodedPool::new("decoded", 4),
            hist: AgeHistogram::new(),
            last_at: Instant::now(),
        })
    }

    /// Decodes one encoded frame. Returns `true` when the sender should be asked for a keyframe
    /// (waiting for the first one, or after a decode error).
    #[must_use = "ask the source for a keyframe when this is true"]
    pub fn push(&mut self, f: &EncodedFrame) -> bool {
        let (stats, out) = (&mut self.stats, &*self.out);
        stats.frames_in += 1;
        stats.bytes += f.data.len() as u64;
        out.bytes.fetch_add(f.data.len() as u64, Ordering::Relaxed);
        if stats.codec != f.codec.name() {
            if !stats.codec.is_empty() {
                tracing::info!("video of {} now in {}", stats.participant, f.codec);
            }
            stats.codec = f.codec.name().to_owned();
        }
        // (The first frame of a stream has nothing to be contiguous with.)
        if !f.contiguous && stats.frames_in > 1 {
            stats.gaps += 1;
        }
        let img = match self.subscriber.decode(f) {
            VideoDecode::Picture(p) => p.image,
            VideoDecode::WaitingForKeyframe { ask_keyframe } => {
                stats.skipped_before_keyframe += 1;
                return ask_keyframe;
            }
            VideoDecode::Refused {
                width,
                height,
                max_pixels,
            } => {
                if stats.refused_keyframes == 0 {
                    tracing::warn!(
                        "refusing video track {} of {}: its keyframe announces \
                         {width}x{height}, more than the {max_pixels} pixels accepted",
                        stats.track,
                        stats.participant
                    );
                }
                stats.refused_keyframes += 1;
                stats.refused_size = Some((width, height));
                out.refused.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            VideoDecode::Failed(e) => {
                stats.decode_errors += 1;
                out.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("{} decode: {e}; asking for a keyframe", f.codec);
                return true;
            }
            _ => return false,
        };
        let now = Timestamp::now();
        let (w, h) = (img.image.width, img.image.height);
        stats.frames_decoded += 1;
        if (stats.width, stats.height) != (w, h) {
            if stats.frames_decoded > 1 {
                tracing::info!(
                    "video of {} changed size: {}x{} → {w}x{h}",
                    stats.participant,
                    stats.width,
                    stats.height
                );
            }
            stats.sizes.push(SizeChange {
                width: w,
                height: h,
                first_frame: stats.frames_decoded,
                at_unix_s: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64()),
            });
        }
        stats.width = w;
        stats.height = h;
        let at = Instant::now();
        let first_at = *stats.first_decoded_at.get_or_insert(at);
        self.last_at = at;
        let stamp = read_stamp(&img, now);
        if let Some(s) = stamp {
            let age = now.saturating_duration_since(s.timestamp);
            stats.stamped_frames += 1;
            stats.frame_numbers.insert(s.frame_number);
            if stats.last_stamp.is_some_and(|last| s.frame_number < last) {
                stats.stamp_regressions += 1;
            }
            stats.last_stamp = Some(s.frame_number);
            if at.duration_since(first_at) >= self.options.latency_warmup {
                self.hist.record(age);
            }
            out.last_latency_us
                .store(age.as_micros() as u64, Ordering::Relaxed);
            out.last_frame_number
                .store(u64::from(s.frame_number), Ordering::Relaxed);
            if stats.stamped_frames % 15 == 1 {
                out.p50_latency_us
                    .store(self.hist.quantile_us(0.5), Ordering::Relaxed);
            }
        }
        out.stamped.store(stamp.is_some(), Ordering::Relaxed);
        out.size.store((w << 16) | (h & 0xffff), Ordering::Relaxed);
        if let Some(rec @ TrackFile::Ivf(_)) = self.recorder.as_mut() {
            // VP8 and VP9 as received (the file's FourCC follows); H.264 is refused (IVF).
            match rec.write_video(f.codec, &f.data, f.rtp_time, w, h) {
                Ok(()) => stats.recorded_frames += 1,
                Err(e) => {
                    tracing::error!("recording stopped: {e}");
                    self.recorder = None;
                }
            }
        }
        let every = u64::from(self.options.deliver_every);
        if every > 0 && (stats.frames_decoded - 1).is_multiple_of(every) {
            let copied = self.pool.fit(w, h).and_then(|p| {
                wavecast_codec::pipeline::to_frame(&img, p)
                    .map_err(crate::error::codec("copy the decoded picture"))
            });
            match copied {
                Ok(mut frame) => {
                    frame
                        .set_timestamp(stamp.map_or(now, |s| s.timestamp))
                        .set_sequence(
                            stamp.map_or(stats.frames_decoded, |s| u64::from(s.frame_number)),
                        );
                    out.mailbox.post(frame.freeze());
                }
                Err(e) => {
                    stats.not_shown += 1;
                    out.not_shown.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("decoded {w}x{h} frame not shown: {e}");
                }
            }
        }
        out.frames.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// What the stream delivered so far (the latency fields are filled by
    /// [`finish`](Self::finish); [`ages`](Self::ages) has them now).
    pub fn stats(&self) -> &VideoStreamStats {
        &self.stats
    }

    /// The ages recorded so far.
    pub fn ages(&self) -> &AgeHistogram {
        &self.hist
    }

    /// The stream's totals and the recorder (to hand to the next stream). `source_drops`: what
    /// the source dropped because this reader was slow ([`SubscribedTrack::dropped`]).
    pub fn finish(mut self, source_drops: u64) -> (VideoStreamStats, Option<TrackFile>) {
        let stats = &mut self.stats;
        stats.source_drops = source_drops;
        stats.distinct_frame_numbers = stats.frame_numbers.len();
        stats.first_frame_number = stats.frame_numbers.first();
        stats.last_frame_number = stats.frame_numbers.last();
        if let (Some(a), Some(b)) = (stats.first_frame_number, stats.last_frame_number) {
            let span = f64::from(b - a) + 1.0;
            stats.received_pct = Some(100.0 * stats.frame_numbers.len() as f64 / span);
        }
        stats.latency = Percentiles::of(&self.hist);
        stats.ages = self.hist;
        stats.seconds = stats
            .first_decoded_at
            .map_or(0.0, |f| (self.last_at - f).as_secs_f64());
        (self.stats, self.recorder)
    }
}

/// A running decoder thread and what it returns when its track ends.
pub type Decoder<T> = JoinHandle<(T, Option<TrackFile>)>;

/// Starts decoding `track`'s video into `out` on a thread of its own until the track ends
/// (what [`VideoReceiver`] does per frame, with `options`; keyframes larger than
/// [`ReceiveOptions::max_pixels`] are refused — counted, warned about once, no keyframe asked
/// for them — and the track shows nothing until its publisher sends one that fits). The
/// thread reads the track on the tokio runtime this is called on.
///
/// # Errors
/// No tokio runtime is current, the VP8 decoder or the thread cannot start.
pub fn spawn_video(
    track: SubscribedTrack,
    out: Arc<VideoOut>,
    recorder: Option<TrackFile>,
    options: ReceiveOptions,
) -> Result<Decoder<VideoStreamStats>> {
    let receiver = VideoReceiver::new(&track, out, recorder, options)?;
    run_video(BlockingTrack::new(track)?, receiver)
}

/// Runs `receiver` on its own thread, fed from `source` until the track ends.
pub(crate) fn run_video<S: EncodedSource>(
    mut source: S,
    mut receiver: VideoReceiver,
) -> Result<Decoder<VideoStreamStats>> {
    let name = format!("video-{}", receiver.stats.participant);
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            while let Some(f) = source.recv() {
                if receiver.push(&f) {
                    source.request_keyframe();
                }
            }
            receiver.finish(source.dropped())
        })
        .map_err(thread("video decoder"))
}

/// The audio receive path of one track, without a thread (see [`VideoReceiver`]): the
/// subscriber's Opus decode step ([`AudioSubscriber::decode`], loss filled in), the counters of
/// [`AudioOut`], the WAV recording, and — per
/// [`ReceiveOptions::deliver_every`] — a pooled frame fanned out to the output queues.
pub struct AudioReceiver {
    out: Arc<AudioOut>,
    recorder: Option<TrackFile>,
    options: ReceiveOptions,
    format: AudioFormat,
    stats: AudioStreamStats,
    subscriber: AudioSubscriber,
    pool: Option<AudioFramePool>,
    first: Option<Instant>,
    last: (Instant, usize),
}

impl std::fmt::Debug for AudioReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioReceiver")
            .field("participant", &self.stats.participant)
            .field("packets", &self.stats.packets)
            .finish_non_exhaustive()
    }
}

impl AudioReceiver {
    /// A receiver for a track (`name`: pass the [`SubscribedTrack`]) decoding Opus (48 kHz,
    /// `channels`) into `out`. The caller feeds it the track's frames ([`push`](Self::push))
    /// and says when the track moved to a new RTP stream ([`new_stream`](Self::new_stream)).
    ///
    /// # Errors
    /// A bad channel count, or the Opus decoder cannot start.
    pub fn new(
        name: impl Into<StreamName>,
        out: Arc<AudioOut>,
        channels: u16,
        recorder: Option<TrackFile>,
        options: ReceiveOptions,
    ) -> Result<Self> {
        let StreamName { participant, track } = name.into();
        let format = AudioFormat::new(48_000, channels)
            .map_err(pipeline(format!("{channels} audio channels")))?;
        let subscriber = AudioSubscriber::without_track(channels)
            .map_err(subscriber("cannot start the Opus decoder"))?;
        let max = MAX_OPUS_DECODED * usize::from(channels);
        Ok(Self {
            out,
            recorder,
            options,
            format,
            stats: AudioStreamStats {
                participant,
                track,
                ..Default::default()
            },
            subscriber,
            pool: (options.deliver_every > 0)
                .then(|| AudioFramePool::new("decoded-audio", max, 160)),
            first: None,
            last: (Instant::now(), 0),
        })
    }

    /// The packets that follow come from a new RTP stream (the sender rejoined): the decoder
    /// starts over at the next one instead of dropping it as late against the old stream.
    pub fn new_stream(&mut self) {
        self.subscriber.new_stream();
    }

    /// Decodes one packet, after filling the gap before it when packets were lost.
    pub fn push(&mut self, f: &EncodedFrame) {
        let (stats, out) = (&mut self.stats, &*self.out);
        stats.received += 1;
        stats.bytes += f.data.len() as u64;
        out.bytes.fetch_add(f.data.len() as u64, Ordering::Relaxed);
        let span = stats.rtp_span.get_or_insert((f.rtp_time, f.rtp_time));
        span.0 = span.0.min(f.rtp_time);
        span.1 = span.1.max(f.rtp_time);
        let before = *self.subscriber.loss_stats();
        let Some(d) = self.subscriber.decode(f) else {
            // Late, a duplicate, or a bad packet after no gap.
            count_loss(stats, out, &before, self.subscriber.loss_stats());
            return;
        };
        count_loss(stats, out, &before, d.loss);
        let samples = d.samples;
        let n = samples.len() / usize::from(self.format.channels);
        if d.packet_samples > 0 {
            stats.packets += 1;
            stats.packet_samples = d.packet_samples as u64;
            out.packets.fetch_add(1, Ordering::Relaxed);
            self.first.get_or_insert(f.received_at);
            self.last = (f.received_at, d.packet_samples);
        }
        stats.samples += n as u64;
        out.samples.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(TrackFile::Wav(w)) = self.recorder.as_mut() {
            match w.write_samples(samples, self.format) {
                Ok(()) => stats.recorded_samples += n as u64,
                Err(e) => {
                    tracing::error!("recording stopped: {e}");
                    self.recorder = None;
                }
            }
        }
        let every = u64::from(self.options.deliver_every);
        if let Some(pool) = &self.pool
            && stats.packets.saturating_sub(1).is_multiple_of(every.max(1))
        {
            // A filled gap and its packet go out in frames of at most one packet's size.
            let ch = usize::from(self.format.channels);
            for chunk in samples.chunks(MAX_OPUS_DECODED * ch) {
                match pool.acquire(self.format, chunk.len() / ch) {
                    Ok(mut frame) => {
                        frame.samples_mut().copy_from_slice(chunk);
                        frame
                            .set_timestamp(Timestamp::now())
                            .set_sequence(stats.packets);
                        out.fan.publish(frame.freeze());
                    }
                    Err(e) => tracing::debug!("audio frame dropped: {e}"),
                }
            }
        }
    }

    /// What the stream delivered so far (the loss counts — FEC, PLC, late, restarts — are
    /// the subscriber's: [`AudioReceiver::loss`] now, copied in by [`AudioReceiver::finish`]).
    pub fn stats(&self) -> &AudioStreamStats {
        &self.stats
    }

    /// What loss cost so far: packets rebuilt from FEC, concealed, late, gaps left unfilled.
    pub fn loss(&self) -> &StreamStats {
        self.subscriber.loss_stats()
    }

    /// The stream's totals and the recorder. `source_drops` as for [`VideoReceiver::finish`].
    pub fn finish(mut self, source_drops: u64) -> (AudioStreamStats, Option<TrackFile>) {
        let stats = &mut self.stats;
        stats.source_drops = source_drops;
        let loss = self.subscriber.loss_stats();
        stats.fec_recovered = loss.fec_frames;
        stats.plc_concealed = loss.plc_frames;
        stats.concealed_samples = loss.plc_samples + loss.fec_samples;
        stats.late_packets = loss.late;
        stats.restarts = loss.restarts;
        stats.seconds = stats.samples as f64 / 48_000.0;
        stats.wall_seconds = self.first.map_or(0.0, |t| {
            (self.last.0 - t).as_secs_f64() + self.last.1 as f64 / 48_000.0
        });
        (self.stats, self.recorder)
    }
}

/// The decode errors and the lost packets filled in by one [`AudioSubscriber::decode`] step,
/// from the subscriber's totals before and after it.
fn count_loss(
    stats: &mut AudioStreamStats,
    out: &AudioOut,
    before: &StreamStats,
    after: &StreamStats,
) {
    out.fec_recovered
        .fetch_add(after.fec_frames - before.fec_frames, Ordering::Relaxed);
    out.plc_concealed
        .fetch_add(after.plc_frames - before.plc_frames, Ordering::Relaxed);
    let errors = after.errors - before.errors;
    if errors > 0 {
        stats.decode_errors += errors;
        out.errors.fetch_add(errors, Ordering::Relaxed);
    }
}

/// Starts decoding `track`'s audio (Opus, 48 kHz, `channels`) into `out` on a thread of its
/// own until the track ends (what [`AudioReceiver`] does per packet, with `options`). The
/// thread reads the track on the tokio runtime this is called on.
///
/// # Errors
/// No tokio runtime is current, a bad channel count, the Opus decoder or the thread cannot
/// start.
pub fn spawn_audio(
    track: SubscribedTrack,
    out: Arc<AudioOut>,
    channels: u16,
    recorder: Option<TrackFile>,
    options: ReceiveOptions,
) -> Result<Decoder<AudioStreamStats>> {
    let receiver = AudioReceiver::new(&track, out, channels, recorder, options)?;
    run_audio(BlockingTrack::new(track)?, receiver)
}

/// Runs `receiver` on its own thread, fed from `source` until the track ends.
pub(crate) fn run_audio<S: EncodedSource>(
    mut source: S,
    mut receiver: AudioReceiver,
) -> Result<Decoder<AudioStreamStats>> {
    let name = format!("audio-{}", receiver.stats.participant);
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let mut stream = source.streams();
            while let Some(f) = source.recv() {
                if source.streams() != stream {
                    stream = source.streams();
                    receiver.new_stream();
                }
                receiver.push(&f);
            }
            receiver.finish(source.dropped())
        })
        .map_err(thread("audio decoder"))
}

/// A running playback thread (see [`spawn_playback`]).
#[derive(Debug)]
pub struct Playback {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<u64>>,
}

impl Playback {
    /// Plays `out`'s playback queue (if it has one) into `spec`.
    ///
    /// # Errors
    /// A bad output (see [`spawn_playback`]).
    pub fn start(
        spec: &wavecast_media::OutputSpec,
        out: &AudioOut,
        channels: u16,
    ) -> Result<Option<Self>> {
        let Some(q) = &out.playback else {
            return Ok(None);
        };
        let stop = Arc::new(AtomicBool::new(false));
        let thread = spawn_playback(spec.clone(), q.clone(), channels, stop.clone())?;
        Ok(Some(Self { stop, thread }))
    }

    /// Drains what is queued, finishes the output and logs how it went.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.join() {
            Ok(Ok(samples)) => tracing::debug!("audio output took {samples} samples"),
            Ok(Err(e)) => tracing::error!("audio output: {e}"),
            Err(_) => tracing::error!("the playback thread panicked"),
        }
    }
}

/// Plays (or writes, or discards) the playback queue until `stop`; returns samples written.
pub fn spawn_playback(
    spec: wavecast_media::OutputSpec,
    queue: Arc<FrameQueue<AudioFrame>>,
    channels: u16,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<Result<u64>>> {
    let format = AudioFormat::new(48_000, channels)
        .map_err(pipeline(format!("{channels} audio channels")))?;
    // Open once here to fail early on bad paths; device sinks are re-opened on the thread
    // (cpal streams stay on the thread that made them).
    if let wavecast_media::OutputSpec::Wav(p) = &spec
        && let Some(dir) = p.parent()
        && !dir.as_os_str().is_empty()
        && !dir.is_dir()
    {
        return Err(StreamError::Unsupported {
            what: format!("audio output {spec}"),
            reason: format!("no directory {}", dir.display()),
        });
    }
    std::thread::Builder::new()
        .name("playback".into())
        .spawn(move || {
            let what = format!("audio output {spec}");
            let mut sink =
                wavecast_media::open_output(&spec, format).map_err(media(what.clone()))?;
            loop {
                while let Some(f) = queue.pop() {
                    sink.write(&f).map_err(media(what.clone()))?;
                }
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            sink.finish().map_err(media(what))?;
            Ok(sink.stats().samples)
        })
        .map_err(thread("playback"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A video decoder thread reading the loopback link `rx` into `out`.
    fn spawn_on_link(
        rx: crate::loopback::LinkRx,
        out: &Arc<VideoOut>,
    ) -> Decoder<VideoStreamStats> {
        let options = ReceiveOptions::default();
        let receiver =
            VideoReceiver::new(StreamName::other("p", "t"), out.clone(), None, options).unwrap();
        run_video(rx, receiver).unwrap()
    }

    /// Regression: the pool was sized by the first picture, so a publisher whose resolution
    /// grew (320x180 → 1280x720) froze the viewer on its last small picture.
    #[test]
    fn pictures_that_grow_mid_stream_reach_the_mailbox() {
        use crate::publish::EncodedSink;
        use wavecast_pipeline::{VideoFrameMut, VideoLayout};
        let (mut tx, rx) = crate::loopback::link();
        let out = Arc::new(VideoOut::default());
        let dec = spawn_on_link(rx, &out);
        let mut sent = 0;
        let mut last_shown = None;
        for (w, h) in [(320, 180), (1280, 720), (640, 360), (1280, 720)] {
            let mut enc =
                wavecast_codec::Vp8Encoder::new(wavecast_codec::Vp8Config::new(w, h, 30)).unwrap();
            for n in 0..5u32 {
                let mut f = VideoFrameMut::new(VideoLayout::new(PixelFormat::I420, w, h).unwrap());
                wavecast_media::TestPattern::default()
                    .render(&mut f, n, Timestamp::now())
                    .unwrap();
                let f = f.freeze();
                let img = wavecast_codec::pipeline::i420_of(&f).unwrap();
                let e = enc.encode(&img, i64::from(n) * 3000).unwrap().unwrap();
                let (data, key) = (e.data.to_vec(), e.keyframe);
                // The link holds 32 frames: wait for the decoder rather than drop.
                while !tx
                    .write(&data, u64::from(n) * 3000, Instant::now(), key)
                    .unwrap()
                {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                sent += 1;
                // Keep the consumer's side of the mailbox moving, as a renderer would.
                std::thread::sleep(std::time::Duration::from_millis(5));
                if let Some(shown) = out.mailbox.take() {
                    last_shown = Some(shown);
                }
            }
        }
        drop(tx);
        let (stats, _) = dec.join().unwrap();
        assert_eq!(stats.frames_decoded, sent, "{stats:?}");
        assert_eq!(stats.not_shown, 0, "{stats:?}");
        let sizes: Vec<(u32, u32)> = stats.sizes.iter().map(|s| (s.width, s.height)).collect();
        assert_eq!(sizes, [(320, 180), (1280, 720), (640, 360), (1280, 720)]);
        assert_eq!(stats.sizes[1].first_frame, 6);
        let last = out
            .mailbox
            .take()
            .or(last_shown)
            .expect("pictures reached the mailbox");
        assert_eq!((last.width(), last.height()), (1280, 720));
    }

    fn encoded_pattern(enc: &mut wavecast_codec::Vp8Encoder, n: u32) -> (Vec<u8>, bool) {
        use wavecast_pipeline::{VideoFrameMut, VideoLayout};
        let mut f = VideoFrameMut::new(VideoLayout::new(PixelFormat::I420, 320, 180).unwrap());
        wavecast_media::TestPattern::default()
            .render(&mut f, n, Timestamp::now())
            .unwrap();
        let f = f.freeze();
        let img = wavecast_codec::pipeline::i420_of(&f).unwrap();
        let e = enc.encode(&img, i64::from(n) * 3000).unwrap().unwrap();
        (e.data.to_vec(), e.keyframe)
    }

    fn frame(data: Vec<u8>, keyframe: bool, contiguous: bool) -> EncodedFrame {
        EncodedFrame {
            codec: wavecast_session::MediaCodec::Vp8,
            data: data.into(),
            rtp_time: 0,
            received_at: Instant::now(),
            keyframe,
            contiguous,
        }
    }

    /// A measuring client (deliver_every 0) decodes and counts every frame but copies none out.
    #[test]
    fn a_receiver_that_only_measures_posts_no_pictures() {
        let mut enc =
            wavecast_codec::Vp8Encoder::new(wavecast_codec::Vp8Config::new(320, 180, 30)).unwrap();
        let out = Arc::new(VideoOut::default());
        let options = ReceiveOptions {
            deliver_every: 0,
            latency_warmup: std::time::Duration::from_secs(3600),
            ..ReceiveOptions::default()
        };
        let mut rx =
            VideoReceiver::new(StreamName::other("p", "t"), out.clone(), None, options).unwrap();
        let mut frames = Vec::new();
        for n in 0..10u32 {
            frames.push(encoded_pattern(&mut enc, n));
        }
        // An inter frame first: skipped, a keyframe asked for.
        assert!(rx.push(&frame(frames[1].0.clone(), false, true)));
        for (n, (data, key)) in frames.iter().enumerate() {
            // Frame 6 says packets were lost before it (all of its own arrived).
            let _ = rx.push(&frame(data.clone(), *key, n != 6));
        }
        assert!(out.mailbox.take().is_none(), "nothing posted");
        assert_eq!(out.frames.load(Ordering::Relaxed), 10);
        let (stats, _) = rx.finish(7);
        assert_eq!((stats.frames_in, stats.skipped_before_keyframe), (11, 1));
        assert_eq!(stats.frames_decoded, 10);
        assert_eq!(stats.gaps, 1);
        assert_eq!(stats.source_drops, 7);
        assert_eq!(stats.frame_numbers.len(), 10);
        assert_eq!(stats.frame_numbers.count_in(2, 5), 4);
        assert!(!stats.frame_numbers.contains(10));
        assert!(stats.first_decoded_at.is_some());
        // Every picture fell in the (hour-long) warm-up: no ages recorded.
        assert_eq!(stats.ages.count(), 0);
        assert!(stats.latency.is_none());
    }

    #[test]
    fn every_nth_picture_is_delivered() {
        let mut enc =
            wavecast_codec::Vp8Encoder::new(wavecast_codec::Vp8Config::new(320, 180, 30)).unwrap();
        let out = Arc::new(VideoOut::default());
        let options = ReceiveOptions {
            deliver_every: 3,
            ..Default::default()
        };
        let mut rx =
            VideoReceiver::new(StreamName::other("p", "t"), out.clone(), None, options).unwrap();
        let mut posted = Vec::new();
        for n in 0..7u32 {
            let (data, key) = encoded_pattern(&mut enc, n);
            let _ = rx.push(&frame(data, key, true));
            if let Some(f) = out.mailbox.take() {
                posted.push(f.sequence());
            }
        }
        assert_eq!(
            posted,
            [0, 3, 6],
            "pictures 1, 4 and 7 (frame numbers 0, 3, 6)"
        );
        let (stats, _) = rx.finish(0);
        assert_eq!(stats.ages.count(), 7);
        assert_eq!(stats.latency.map(|l| l.count), Some(7));
    }

    #[test]
    fn audio_loss_from_the_rtp_span() {
        let mut enc = wavecast_codec::OpusEncoder::new(1, 32_000).unwrap();
        let out = Arc::new(AudioOut::new(false));
        let options = ReceiveOptions {
            deliver_every: 0,
            ..Default::default()
        };
        let mut rx =
            AudioReceiver::new(StreamName::other("p", "t"), out.clone(), 1, None, options).unwrap();
        let pcm = vec![0i16; 960];
        let mut packet = vec![0u8; wavecast_codec::MAX_OPUS_PACKET];
        for i in 0..10u64 {
            let len = enc.encode(&pcm, &mut packet).unwrap();
            if i == 4 {
                continue; // lost
            }
            let mut f = frame(packet[..len].to_vec(), false, true);
            f.rtp_time = 1_000 + i * 960;
            rx.push(&f);
        }
        assert!(out.render.pop().is_none(), "nothing delivered");
        let (stats, _) = rx.finish(0);
        assert_eq!((stats.received, stats.packets), (9, 9));
        assert_eq!(stats.expected_packets(), 10);
        assert_eq!(out.packets.load(Ordering::Relaxed), 9);
        assert!(stats.bytes > 0);
        // The lost packet's 20 ms were filled in (silence has no FEC: concealed).
        assert_eq!((stats.samples, stats.concealed_samples), (10 * 960, 960));
        assert_eq!((stats.fec_recovered, stats.plc_concealed), (0, 1));
    }

    /// Under loss, reordering and duplicates the outputs get one continuous stream: every lost
    /// packet's time filled in (FEC or PLC), nothing played twice, the tone's frequency kept.
    #[test]
    fn lost_audio_is_filled_in_for_the_outputs() {
        use wavecast_media::{ToneGenerator, Waveform};
        use wavecast_pipeline::AudioFrameMut;
        let format = AudioFormat::MONO_48K;
        let mut tone =
            ToneGenerator::new(format, Waveform::Tone(660.0), 0.5, Timestamp::ZERO).unwrap();
        let mut enc = wavecast_codec::OpusEncoder::new(1, 32_000).unwrap();
        let mut packet = vec![0u8; wavecast_codec::MAX_OPUS_PACKET];
        let mut pcm = AudioFrameMut::new(format, 960);
        let mut sent = Vec::new();
        for i in 0..100u64 {
            tone.fill(&mut pcm);
            let len = enc.encode(pcm.samples(), &mut packet).unwrap();
            sent.push((i * 960, packet[..len].to_vec()));
        }
        // Lose every 4th and a burst of three (60–62), send every 7th twice (11 of them
        // arrive), swap two pairs; the last one arrives.
        let lost = |i: usize| i % 4 == 1 || (60..=62).contains(&i);
        let mut arrivals: Vec<_> = sent
            .iter()
            .enumerate()
            .filter(|(i, _)| !lost(*i))
            .flat_map(|(i, p)| std::iter::repeat_n(p.clone(), if i % 7 == 3 { 2 } else { 1 }))
            .collect();
        arrivals.swap(30, 31);
        arrivals.swap(50, 51);
        let out = Arc::new(AudioOut::new(false));
        let mut rx = AudioReceiver::new(
            StreamName::other("p", "t"),
            out.clone(),
            1,
            None,
            ReceiveOptions::default(),
        )
        .unwrap();
        let mut played = Vec::new();
        for (t, p) in &arrivals {
            let mut f = frame(p.clone(), false, true);
            f.rtp_time = 5_000 + t;
            rx.push(&f);
            while let Some(a) = out.render.pop() {
                played.extend_from_slice(a.samples());
            }
        }
        let (stats, _) = rx.finish(0);
        eprintln!("{stats:?}");
        assert_eq!(played.len(), 100 * 960, "{stats:?}");
        assert_eq!(stats.samples, 100 * 960);
        // A packet overtaken by its successor is filled in, then dropped as late.
        let overtaken = stats.late_packets - 11;
        assert!(stats.late_packets >= 11, "{stats:?}");
        assert_eq!(
            stats.fec_recovered + stats.plc_concealed,
            27 + overtaken,
            "lost and overtaken: {stats:?}"
        );
        assert!(stats.plc_concealed >= 2, "the burst: {stats:?}");
        assert_eq!(
            out.fec_recovered.load(Ordering::Relaxed) + out.plc_concealed.load(Ordering::Relaxed),
            27 + overtaken
        );
        let mut spectrum =
            wavecast_pipeline::analysis::SpectrumAnalyzer::new(16_384, 48_000).unwrap();
        spectrum.push(&played[played.len() - 16_384..], 1);
        spectrum.compute();
        let (hz, _) = spectrum.dominant_frequency().unwrap();
        assert!((hz - 660.0).abs() < 5.0, "{hz} Hz");
    }

    /// Regression: a publisher's 16383x16383 keyframe made every viewer allocate ~400 MB.
    #[test]
    fn a_huge_keyframe_is_refused_and_the_track_keeps_running() {
        use crate::publish::EncodedSink;
        use wavecast_pipeline::{VideoFrameMut, VideoLayout};
        let (mut tx, rx) = crate::loopback::link();
        let out = Arc::new(VideoOut::default());
        let dec = spawn_on_link(rx, &out);
        let mut huge = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0xff, 0x3f, 0xff, 0x3f];
        huge.extend(std::iter::repeat_n(0x55, 4000));
        for n in 0..3u64 {
            assert!(tx.write(&huge, n * 3000, Instant::now(), true).unwrap());
            // Interframes after a refused keyframe are skipped, not decoded.
            assert!(
                tx.write(
                    &[0x31, 0, 0, 1, 2, 3],
                    n * 3000 + 1500,
                    Instant::now(),
                    false
                )
                .unwrap()
            );
        }
        let mut enc =
            wavecast_codec::Vp8Encoder::new(wavecast_codec::Vp8Config::new(160, 120, 30)).unwrap();
        for n in 0..5u32 {
            let mut f = VideoFrameMut::new(VideoLayout::new(PixelFormat::I420, 160, 120).unwrap());
            wavecast_media::TestPattern::default()
                .render(&mut f, n, Timestamp::now())
                .unwrap();
            let f = f.freeze();
            let e = enc
                .encode(
                    &wavecast_codec::pipeline::i420_of(&f).unwrap(),
                    i64::from(n) * 3000,
                )
                .unwrap()
                .unwrap();
            let (data, key) = (e.data.to_vec(), e.keyframe);
            while !tx
                .write(&data, 9000 + u64::from(n) * 3000, Instant::now(), key)
                .unwrap()
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        drop(tx);
        let (stats, _) = dec.join().unwrap();
        assert_eq!(stats.refused_keyframes, 3, "{stats:?}");
        assert_eq!(stats.refused_size, Some((16383, 16383)));
        assert_eq!(out.refused.load(Ordering::Relaxed), 3);
        assert_eq!(stats.decode_errors, 0, "{stats:?}");
        assert_eq!(stats.frames_decoded, 5, "{stats:?}");
        assert_eq!((stats.width, stats.height), (160, 120));
    }

    #[test]
    fn implausible_stamps_are_ignored() {
        use wavecast_pipeline::{VideoFrameMut, VideoLayout};
        let mut enc =
            wavecast_codec::Vp8Encoder::new(wavecast_codec::Vp8Config::new(320, 180, 30)).unwrap();
        let mut dec = wavecast_codec::Vp8Decoder::new().unwrap();
        let now = Timestamp::now();
        for (ts, ok) in [(now, true), (Timestamp::from_micros(1_000), false)] {
            let mut f = VideoFrameMut::new(VideoLayout::new(PixelFormat::I420, 320, 180).unwrap());
            wavecast_media::TestPattern::default()
                .render(&mut f, 7, ts)
                .unwrap();
            let f = f.freeze();
            enc.force_keyframe();
            let data = enc
                .encode(&wavecast_codec::pipeline::i420_of(&f).unwrap(), 0)
                .unwrap()
                .unwrap()
                .data
                .to_vec();
            let img = dec.decode(&data).unwrap().unwrap();
            assert_eq!(read_stamp(&img, now).is_some(), ok, "stamp at {ts:?}");
        }
    }
}
