//! Receive and decode: one thread per subscribed track turns encoded frames into pipeline frames.
//!
//! Video: VP8 decode → read the synthetic source's stamp (frame number, capture time) for the
//! delivery ratio and glass-to-glass latency → copy into a pooled frame → the renderer's
//! latest-frame [`Mailbox`]; optionally the encoded frame goes to an IVF file untouched.
//! Audio: Opus decode → a pooled [`AudioFrame`] fanned out without copies to the renderer's queue
//! and the playback queue (both drop-oldest); optionally written to a WAV file.
//!
//! Live figures are relaxed atomics the overlay reads; the full statistics (every latency,
//! every frame number) stay on the decoder thread and come back when its track ends. Shared by
//! the viewer and the room visualizer (included with `#[path]`).

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;
use wavecast_codec::{MAX_OPUS_DECODED, OpusDecoder, Vp8Decoder};
use wavecast_media::WavWriter;
use wavecast_media::stamp;
use wavecast_pipeline::{
    AgeHistogram, AudioFormat, AudioFrame, AudioFramePool, FanOut, FrameQueue, Mailbox,
    PixelFormat, Timestamp, VideoFrame, VideoFramePool, VideoLayout,
};
use wavecast_rtc::EncodedFrame;
use wavecast_session::session::SubscribedTrack;

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

/// What the renderer reads from the video decoder.
#[derive(Default)]
pub struct VideoOut {
    /// The newest decoded picture (older ones go back to the pool, counted as dropped).
    pub mailbox: Mailbox<VideoFrame>,
    /// Pictures decoded.
    pub frames: AtomicU64,
    /// Encoded bytes received.
    pub bytes: AtomicU64,
    /// Frames that failed to decode.
    pub errors: AtomicU64,
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

/// Latency percentiles, milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Percentiles {
    /// Percentiles of `values_us` (sorted in place).
    pub fn of(values_us: &mut [u64]) -> Option<Self> {
        if values_us.is_empty() {
            return None;
        }
        values_us.sort_unstable();
        let at = |q: f64| {
            let i = ((values_us.len() as f64 - 1.0) * q).round() as usize;
            values_us[i.min(values_us.len() - 1)] as f64 / 1000.0
        };
        Some(Self {
            count: values_us.len(),
            p50_ms: at(0.5),
            p95_ms: at(0.95),
            max_ms: at(1.0),
        })
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
    /// Wall time from the first to the last decoded frame, seconds.
    pub seconds: f64,
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

/// VP8 frames into an IVF file, untouched (the header's frame count is fixed up at the end).
pub struct IvfWriter {
    out: BufWriter<File>,
    path: PathBuf,
    frames: u32,
    first_rtp: Option<u64>,
    size: (u16, u16),
}

impl IvfWriter {
    /// Creates `path` (the size in the header is updated from the first keyframe).
    pub fn create(path: &Path) -> Result<Self> {
        let file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut w = Self {
            out: BufWriter::new(file),
            path: path.to_owned(),
            frames: 0,
            first_rtp: None,
            size: (0, 0),
        };
        w.header()?;
        Ok(w)
    }

    fn header(&mut self) -> Result<()> {
        let mut h = [0u8; 32];
        h[0..4].copy_from_slice(b"DKIF");
        h[4..6].copy_from_slice(&0u16.to_le_bytes());
        h[6..8].copy_from_slice(&32u16.to_le_bytes());
        h[8..12].copy_from_slice(b"VP80");
        h[12..14].copy_from_slice(&self.size.0.to_le_bytes());
        h[14..16].copy_from_slice(&self.size.1.to_le_bytes());
        h[16..20].copy_from_slice(&90_000u32.to_le_bytes()); // time base denominator
        h[20..24].copy_from_slice(&1u32.to_le_bytes()); // numerator: pts in 1/90000 s
        h[24..28].copy_from_slice(&self.frames.to_le_bytes());
        self.out
            .write_all(&h)
            .with_context(|| format!("cannot write {}", self.path.display()))
    }

    /// Appends one frame with its 90 kHz RTP time.
    pub fn write(&mut self, data: &[u8], rtp_time: u64, width: u32, height: u32) -> Result<()> {
        if self.frames == 0 {
            self.size = (width.min(65535) as u16, height.min(65535) as u16);
        }
        let first = *self.first_rtp.get_or_insert(rtp_time);
        let pts = rtp_time.saturating_sub(first);
        self.out
            .write_all(&(data.len() as u32).to_le_bytes())
            .and_then(|()| self.out.write_all(&pts.to_le_bytes()))
            .and_then(|()| self.out.write_all(data))
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        self.frames += 1;
        Ok(())
    }

    /// Frames written.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// Rewrites the header with the frame count and size, and flushes.
    pub fn finish(&mut self) -> Result<()> {
        self.out
            .seek(SeekFrom::Start(0))
            .with_context(|| format!("cannot seek {}", self.path.display()))?;
        self.header()?;
        self.out
            .seek(SeekFrom::End(0))
            .and_then(|_| self.out.flush())
            .with_context(|| format!("cannot flush {}", self.path.display()))
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
pub type Decoder<T> = JoinHandle<(T, Option<Recorder>)>;

/// Recorders move from one decoder thread to the next (one stream at a time), so they never
/// need a lock.
pub enum Recorder {
    /// Encoded video.
    Ivf(IvfWriter),
    /// Decoded audio.
    Wav(WavWriter),
}

/// Starts decoding video from `source` into `out`.
pub fn spawn_video<S: EncodedSource>(
    mut source: S,
    out: Arc<VideoOut>,
    mut recorder: Option<Recorder>,
    participant: String,
    track: String,
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
                Ok(d) => d,
                Err(e) => {
                    tracing::error!("VP8 decoder: {e}");
                    return (stats, recorder);
                }
            };
            let mut pool: Option<VideoFramePool> = None;
            let mut seen: HashSet<u32> = HashSet::new();
            let mut latencies: Vec<u64> = Vec::new();
            let mut hist = AgeHistogram::new();
            let mut need_key = true;
            let mut first_at: Option<Instant> = None;
            let mut last_at = Instant::now();
            while let Some(f) = source.recv() {
                stats.frames_in += 1;
                stats.bytes += f.data.len() as u64;
                out.bytes.fetch_add(f.data.len() as u64, Ordering::Relaxed);
                if need_key && !f.keyframe {
                    if stats.skipped_before_keyframe.is_multiple_of(15) {
                        source.request_keyframe();
                    }
                    stats.skipped_before_keyframe += 1;
                    continue;
                }
                let img = match decoder.decode(&f.data) {
                    Ok(Some(img)) => img,
                    Ok(None) => continue,
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
                let now = Timestamp::now();
                let (w, h) = (img.image.width, img.image.height);
                stats.frames_decoded += 1;
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
                    if latencies.len() < 200_000 {
                        latencies.push(age.as_micros() as u64);
                    }
                    hist.record(age);
                    out.last_latency_us
                        .store(age.as_micros() as u64, Ordering::Relaxed);
                    out.last_frame_number
                        .store(u64::from(s.frame_number), Ordering::Relaxed);
                    if stats.stamped_frames % 15 == 1 {
                        out.p50_latency_us
                            .store(hist.summary().p50_us, Ordering::Relaxed);
                    }
                }
                out.stamped.store(stamp.is_some(), Ordering::Relaxed);
                out.size.store((w << 16) | (h & 0xffff), Ordering::Relaxed);
                if let Some(Recorder::Ivf(ivf)) = recorder.as_mut() {
                    match ivf.write(&f.data, f.rtp_time, w, h) {
                        Ok(()) => stats.recorded_frames += 1,
                        Err(e) => {
                            tracing::error!("recording stopped: {e:#}");
                            recorder = None;
                        }
                    }
                }
                let p = pool.get_or_insert_with(|| {
                    let layout = VideoLayout::new(PixelFormat::I420, w.max(2), h.max(2))
                        .unwrap_or_else(|_| {
                            VideoLayout::new(PixelFormat::I420, 2, 2).expect("2x2 is valid")
                        });
                    VideoFramePool::new("decoded", layout, 4)
                });
                match wavecast_codec::pipeline::to_frame(&img, p) {
                    Ok(mut frame) => {
                        frame
                            .set_timestamp(stamp.map_or(now, |s| s.timestamp))
                            .set_sequence(
                                stamp.map_or(stats.frames_decoded, |s| u64::from(s.frame_number)),
                            );
                        out.mailbox.post(frame.freeze());
                    }
                    Err(e) => tracing::debug!("decoded frame not shown: {e}"),
                }
                out.frames.fetch_add(1, Ordering::Relaxed);
            }
            stats.distinct_frame_numbers = seen.len() as u64;
            if let (Some(a), Some(b)) = (stats.first_frame_number, stats.last_frame_number) {
                let span = f64::from(b - a) + 1.0;
                stats.received_pct = Some(100.0 * seen.len() as f64 / span);
            }
            stats.latency = Percentiles::of(&mut latencies);
            stats.seconds = first_at.map_or(0.0, |f| (last_at - f).as_secs_f64());
            (stats, recorder)
        })
        .context("cannot start a video decoder thread")
}

/// Starts decoding audio from `source` (Opus, 48 kHz, `channels`) into `out`.
pub fn spawn_audio<S: EncodedSource>(
    mut source: S,
    out: Arc<AudioOut>,
    channels: u16,
    mut recorder: Option<Recorder>,
    participant: String,
    track: String,
) -> Result<Decoder<AudioStreamStats>> {
    let format = AudioFormat::new(48_000, channels).context("audio format")?;
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
                if let Some(Recorder::Wav(w)) = recorder.as_mut() {
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
        .context("cannot start an audio decoder thread")
}

/// Plays (or writes, or discards) the playback queue until `stop`; returns samples written.
pub fn spawn_playback(
    spec: wavecast_media::OutputSpec,
    queue: Arc<FrameQueue<AudioFrame>>,
    channels: u16,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<Result<u64>>> {
    let format = AudioFormat::new(48_000, channels).context("audio format")?;
    // Open once here to fail early on bad paths; device sinks are re-opened on the thread
    // (cpal streams stay on the thread that made them).
    if let wavecast_media::OutputSpec::Wav(p) = &spec
        && let Some(dir) = p.parent()
        && !dir.as_os_str().is_empty()
        && !dir.is_dir()
    {
        anyhow::bail!("--audio-out {spec}: no directory {}", dir.display());
    }
    std::thread::Builder::new()
        .name("playback".into())
        .spawn(move || {
            let mut sink = wavecast_media::open_output(&spec, format)
                .with_context(|| format!("cannot open audio output {spec}"))?;
            loop {
                while let Some(f) = queue.pop() {
                    sink.write(&f)?;
                }
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            sink.finish()?;
            Ok(sink.stats().samples)
        })
        .context("cannot start the playback thread")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_ramp() {
        let mut v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        let p = Percentiles::of(&mut v).unwrap();
        assert_eq!(p.count, 100);
        assert!((p.p50_ms - 50.0).abs() <= 1.0, "{p:?}");
        assert!((p.p95_ms - 95.0).abs() <= 1.0, "{p:?}");
        assert_eq!(p.max_ms, 100.0);
        assert!(Percentiles::of(&mut []).is_none());
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

    #[test]
    fn ivf_header_counts_frames() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.ivf");
        let mut w = IvfWriter::create(&path).unwrap();
        w.write(&[1, 2, 3], 9000, 320, 240).unwrap();
        w.write(&[4, 5], 12000, 320, 240).unwrap();
        w.finish().unwrap();
        drop(w);
        let b = std::fs::read(&path).unwrap();
        assert_eq!(&b[0..4], b"DKIF");
        assert_eq!(u16::from_le_bytes([b[12], b[13]]), 320);
        assert_eq!(u32::from_le_bytes([b[24], b[25], b[26], b[27]]), 2);
        assert_eq!(b.len(), 32 + 12 + 3 + 12 + 2);
        assert_eq!(u64::from_le_bytes(b[36..44].try_into().unwrap()), 0);
        assert_eq!(u64::from_le_bytes(b[51..59].try_into().unwrap()), 3000);
    }
}
