//! Receive and decode: one thread per subscribed track turns encoded frames into pipeline frames.
//!
//! Video: VP8 decode → read the synthetic source's stamp (frame number, capture time) for the
//! delivery ratio and glass-to-glass latency → copy into a pooled frame → the renderer's
//! latest-frame [`Mailbox`]; optionally the encoded frame goes to an IVF file untouched. The
//! picture size may change at any frame (a publisher ramping up its resolution, a simulcast
//! layer switch): the frame pool is rebuilt for a larger picture, smaller ones reuse it.
//! Audio: Opus decode → a pooled [`AudioFrame`] fanned out without copies to the renderer's queue
//! and the playback queue (both drop-oldest); optionally written to a WAV file.
//!
//! Live figures are relaxed atomics the overlay reads; the full statistics (every latency,
//! every frame number) stay on the decoder thread and come back when its track ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use serde::Serialize;
use wavecast_codec::{CodecError, DEFAULT_MAX_PIXELS, MAX_OPUS_DECODED, OpusDecoder, Vp8Decoder};
use wavecast_media::stamp;
use wavecast_pipeline::{
    AgeHistogram, AudioFormat, AudioFrame, AudioFramePool, FanOut, FrameQueue, Mailbox,
    PixelFormat, Timestamp, VideoFrame, VideoFramePool, VideoLayout,
};
use wavecast_session::EncodedFrame;
use wavecast_session::SubscribedTrack;

use crate::distinct::DistinctCounter;
use crate::error::{Result, StreamError, media, pipeline, thread};
use crate::latency::Percentiles;
use crate::record::ivf_wav::TrackFile;

/// A blocking source of encoded frames: a subscribed track, or the in-process loopback link.
pub trait EncodedSource: Send + 'static {
    /// The next frame; `None` when the track ended.
    fn recv(&mut self) -> Option<EncodedFrame>;
    /// Ask the sender for a keyframe.
    fn request_keyframe(&self);
}

/// A session's subscribed track read from a plain thread (it continues across rejoins).
pub struct SessionTrack {
    /// The track.
    pub track: SubscribedTrack,
    /// The runtime the session runs on.
    pub runtime: tokio::runtime::Handle,
}

impl EncodedSource for SessionTrack {
    fn recv(&mut self) -> Option<EncodedFrame> {
        self.runtime.block_on(self.track.recv())
    }
    fn request_keyframe(&self) {
        self.track.request_keyframe();
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
    /// Samples per channel decoded.
    pub samples: AtomicU64,
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
    /// Samples per channel decoded.
    pub samples: u64,
    /// Decoded audio, seconds.
    pub seconds: f64,
    /// Wall time from the first packet's arrival to the last one's end, seconds (equals
    /// `seconds` when nothing was lost).
    pub wall_seconds: f64,
    /// Samples per channel written to the WAV recording.
    pub recorded_samples: u64,
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

/// A running decoder thread and what it returns when its track ends.
pub type Decoder<T> = JoinHandle<(T, Option<TrackFile>)>;

/// Starts decoding video from `source` into `out`, with the default [`ReceiveLimits`].
pub fn spawn_video<S: EncodedSource>(
    source: S,
    out: Arc<VideoOut>,
    recorder: Option<TrackFile>,
    participant: String,
    track: String,
) -> Result<Decoder<VideoStreamStats>> {
    spawn_video_with(
        source,
        out,
        recorder,
        participant,
        track,
        ReceiveLimits::default(),
    )
}

/// Starts decoding video from `source` into `out`. Keyframes larger than `limits.max_pixels`
/// are refused (counted, warned about once, no keyframe requested for them): the track shows
/// nothing until its publisher sends a keyframe that fits.
pub fn spawn_video_with<S: EncodedSource>(
    mut source: S,
    out: Arc<VideoOut>,
    mut recorder: Option<TrackFile>,
    participant: String,
    track: String,
    limits: ReceiveLimits,
) -> Result<Decoder<VideoStreamStats>> {
    let name = format!("video-{participant}");
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let mut stats = VideoStreamStats {
                participant,
                track,
                ..Default::default()
            };
            let mut decoder = match Vp8Decoder::new() {
                Ok(d) => d.with_max_pixels(limits.max_pixels),
                Err(e) => {
                    tracing::error!("VP8 decoder: {e}");
                    return (stats, recorder);
                }
            };
            let mut pool = DecodedPool::new("decoded", 4);
            let mut seen = DistinctCounter::default();
            // Whether to ask for keyframes while waiting for one (not after refusing one: the
            // publisher would only send the same size again).
            let mut ask = true;
            let mut hist = AgeHistogram::new();
            let mut need_key = true;
            let mut first_at: Option<Instant> = None;
            let mut last_at = Instant::now();
            while let Some(f) = source.recv() {
                stats.frames_in += 1;
                stats.bytes += f.data.len() as u64;
                out.bytes.fetch_add(f.data.len() as u64, Ordering::Relaxed);
                if need_key && !f.keyframe {
                    if ask && stats.skipped_before_keyframe.is_multiple_of(15) {
                        source.request_keyframe();
                    }
                    stats.skipped_before_keyframe += 1;
                    continue;
                }
                let img = match decoder.decode(&f.data) {
                    Ok(Some(img)) => img,
                    Ok(None) => continue,
                    Err(CodecError::TooLarge {
                        width,
                        height,
                        max_pixels,
                    }) => {
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
                        need_key = true;
                        ask = false;
                        continue;
                    }
                    Err(e) => {
                        stats.decode_errors += 1;
                        out.errors.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!("VP8 decode: {e}; asking for a keyframe");
                        source.request_keyframe();
                        need_key = true;
                        continue;
                    }
                };
                need_key = false;
                ask = true;
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
                first_at.get_or_insert(at);
                last_at = at;
                let stamp = read_stamp(&img, now);
                if let Some(s) = stamp {
                    let age = now.saturating_duration_since(s.timestamp);
                    stats.stamped_frames += 1;
                    seen.insert(s.frame_number);
                    stats.first_frame_number = Some(
                        stats
                            .first_frame_number
                            .map_or(s.frame_number, |v| v.min(s.frame_number)),
                    );
                    stats.last_frame_number = Some(
                        stats
                            .last_frame_number
                            .map_or(s.frame_number, |v| v.max(s.frame_number)),
                    );
                    hist.record(age);
                    out.last_latency_us
                        .store(age.as_micros() as u64, Ordering::Relaxed);
                    out.last_frame_number
                        .store(u64::from(s.frame_number), Ordering::Relaxed);
                    if stats.stamped_frames % 15 == 1 {
                        out.p50_latency_us
                            .store(hist.quantile_us(0.5), Ordering::Relaxed);
                    }
                }
                out.stamped.store(stamp.is_some(), Ordering::Relaxed);
                out.size.store((w << 16) | (h & 0xffff), Ordering::Relaxed);
                if let Some(TrackFile::Ivf(ivf)) = recorder.as_mut() {
                    match ivf
                        .write(&f.data, f.rtp_time, w, h)
                        .map_err(media("video recording"))
                    {
                        Ok(()) => stats.recorded_frames += 1,
                        Err(e) => {
                            tracing::error!("recording stopped: {e}");
                            recorder = None;
                        }
                    }
                }
                let copied = pool.fit(w, h).and_then(|p| {
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
                out.frames.fetch_add(1, Ordering::Relaxed);
            }
            stats.distinct_frame_numbers = seen.count();
            if let (Some(a), Some(b)) = (stats.first_frame_number, stats.last_frame_number) {
                let span = f64::from(b - a) + 1.0;
                stats.received_pct = Some(100.0 * seen.count() as f64 / span);
            }
            stats.latency = Percentiles::of(&hist);
            stats.seconds = first_at.map_or(0.0, |f| (last_at - f).as_secs_f64());
            (stats, recorder)
        })
        .map_err(thread("video decoder"))
}

/// Starts decoding audio from `source` (Opus, 48 kHz, `channels`) into `out`.
pub fn spawn_audio<S: EncodedSource>(
    mut source: S,
    out: Arc<AudioOut>,
    channels: u16,
    mut recorder: Option<TrackFile>,
    participant: String,
    track: String,
) -> Result<Decoder<AudioStreamStats>> {
    let format = AudioFormat::new(48_000, channels)
        .map_err(pipeline(format!("{channels} audio channels")))?;
    let name = format!("audio-{participant}");
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let mut stats = AudioStreamStats {
                participant,
                track,
                ..Default::default()
            };
            let mut decoder = match OpusDecoder::new(channels) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!("Opus decoder: {e}");
                    return (stats, recorder);
                }
            };
            let pool = AudioFramePool::new(
                "decoded-audio",
                MAX_OPUS_DECODED * usize::from(channels),
                160,
            );
            let mut pcm = vec![0i16; MAX_OPUS_DECODED * usize::from(channels)];
            let mut first: Option<Instant> = None;
            let mut last = (Instant::now(), 0usize);
            while let Some(f) = source.recv() {
                out.bytes.fetch_add(f.data.len() as u64, Ordering::Relaxed);
                let n = match decoder.decode(&f.data, &mut pcm) {
                    Ok(n) => n,
                    Err(e) => {
                        stats.decode_errors += 1;
                        tracing::debug!("Opus decode: {e}");
                        continue;
                    }
                };
                stats.packets += 1;
                stats.samples += n as u64;
                first.get_or_insert(f.received_at);
                last = (f.received_at, n);
                out.packets.fetch_add(1, Ordering::Relaxed);
                out.samples.fetch_add(n as u64, Ordering::Relaxed);
                let samples = &pcm[..n * usize::from(channels)];
                if let Some(TrackFile::Wav(w)) = recorder.as_mut() {
                    match w.write_samples(samples, format) {
                        Ok(()) => stats.recorded_samples += n as u64,
                        Err(e) => {
                            tracing::error!("recording stopped: {e}");
                            recorder = None;
                        }
                    }
                }
                match pool.acquire(format, n) {
                    Ok(mut frame) => {
                        frame.samples_mut().copy_from_slice(samples);
                        frame
                            .set_timestamp(Timestamp::now())
                            .set_sequence(stats.packets);
                        out.fan.publish(frame.freeze());
                    }
                    Err(e) => tracing::debug!("audio frame dropped: {e}"),
                }
            }
            stats.seconds = stats.samples as f64 / 48_000.0;
            stats.wall_seconds = first.map_or(0.0, |t| {
                (last.0 - t).as_secs_f64() + last.1 as f64 / 48_000.0
            });
            (stats, recorder)
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

    /// Regression: the pool was sized by the first picture, so a publisher whose resolution
    /// grew (320x180 → 1280x720) froze the viewer on its last small picture.
    #[test]
    fn pictures_that_grow_mid_stream_reach_the_mailbox() {
        use crate::publish::EncodedSink;
        use wavecast_pipeline::{VideoFrameMut, VideoLayout};
        let (mut tx, rx) = crate::loopback::link();
        let out = Arc::new(VideoOut::default());
        let dec = spawn_video(rx, out.clone(), None, "p".into(), "t".into()).unwrap();
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

    /// Regression: a publisher's 16383x16383 keyframe made every viewer allocate ~400 MB.
    #[test]
    fn a_huge_keyframe_is_refused_and_the_track_keeps_running() {
        use crate::publish::EncodedSink;
        use wavecast_pipeline::{VideoFrameMut, VideoLayout};
        let (mut tx, rx) = crate::loopback::link();
        let out = Arc::new(VideoOut::default());
        let dec = spawn_video(rx, out.clone(), None, "p".into(), "t".into()).unwrap();
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
        let mut dec = Vp8Decoder::new().unwrap();
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
