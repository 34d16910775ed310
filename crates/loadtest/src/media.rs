//! The media seam: the publish loop and the receive path the load test drives.
//!
//! Everything the load test does with media goes through the four items here:
//! [`start_publisher`] (synthetic stamped video + tone, paced on its own thread),
//! [`receive_video`] / [`receive_audio`] (a subscribed track → decoder → stamp → per-track
//! outcome) and [`Latency`] (mergeable percentiles). TEMPORARY: this is written against the
//! session's own publisher/subscriber helpers until the shared media-stream crate (issue 13) is
//! on main; then these bodies are replaced by that crate's publish loop, receive path and
//! percentiles, and this module shrinks to the glue.
//!
//! Decoding: every subscriber decodes every video frame (VP8 inter frames depend on the
//! frames before them, so a sample of frames cannot be decoded alone) and every audio packet,
//! and reads the stamp of every decoded picture.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio_util::sync::CancellationToken;
use wavecast_codec::{MAX_OPUS_DECODED, OpusDecoder, Vp8Decoder};
use wavecast_media::{TestPattern, ToneGenerator, Waveform, stamp};
use wavecast_pipeline::{
    AudioFormat, AudioFramePool, PixelFormat, Timestamp, VideoFramePool, VideoLayout,
};
use wavecast_session::{AudioPublisher, SubscribedTrack, VideoPublisher};

use crate::config::VideoSettings;
use crate::error::LoadTestError;

/// Opus frame length the tone is sent in (20 ms at 48 kHz).
const AUDIO_FRAME: usize = 960;
/// RTP clock ticks of one audio frame (Opus's RTP clock is 48 kHz).
const AUDIO_FRAME_TICKS: u64 = 960;
/// Capture times further than this from our clock are taken for a false stamp (the CRC-8 lets
/// about 1 in 256 unstamped pictures through).
const STAMP_PLAUSIBLE: Duration = Duration::from_secs(60);

/// Latency samples: microseconds from 1 µs to 60 s with 3 significant digits; mergeable.
#[derive(Debug, Clone)]
pub(crate) struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Self(
            Histogram::new_with_bounds(1, 60_000_000, 3)
                .expect("1 µs ..= 60 s with 3 digits is a valid histogram"),
        )
    }
}

impl Latency {
    pub(crate) fn record(&mut self, age: Duration) {
        let us = (age.as_micros() as u64).clamp(1, 60_000_000);
        self.0.saturating_record(us);
    }

    pub(crate) fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    pub(crate) fn count(&self) -> u64 {
        self.0.len()
    }

    /// Value at quantile `q` (0..=1), milliseconds.
    pub(crate) fn ms_at(&self, q: f64) -> f64 {
        self.0.value_at_quantile(q) as f64 / 1000.0
    }

    pub(crate) fn max_ms(&self) -> f64 {
        self.0.max() as f64 / 1000.0
    }
}

/// Which stamped frame numbers arrived: a bit per frame number (a publisher counts from 0).
#[derive(Debug, Clone, Default)]
pub(crate) struct FrameSet {
    bits: Vec<u64>,
    first: Option<u32>,
}

impl FrameSet {
    pub(crate) fn insert(&mut self, n: u32) {
        let word = (n / 64) as usize;
        if word >= self.bits.len() {
            self.bits.resize((word + 1).next_power_of_two(), 0);
        }
        self.bits[word] |= 1 << (n % 64);
        self.first = Some(self.first.map_or(n, |f| f.min(n)));
    }

    /// The lowest frame number seen.
    pub(crate) fn first(&self) -> Option<u32> {
        self.first
    }

    /// How many frame numbers in `from..=to` arrived.
    pub(crate) fn count_in(&self, from: u32, to: u32) -> u64 {
        (from..=to)
            .filter(|n| {
                self.bits
                    .get((n / 64) as usize)
                    .is_some_and(|w| w & (1 << (n % 64)) != 0)
            })
            .count() as u64
    }
}

/// Live counters all receive tasks add to (for the progress display).
#[derive(Debug, Default)]
pub(crate) struct LiveMedia {
    pub(crate) frames_decoded: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) decode_errors: AtomicU64,
}

/// What one publisher's loop did.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PublishOutcome {
    pub(crate) frames_sent: u64,
    pub(crate) keyframes_sent: u64,
    pub(crate) audio_packets_sent: u64,
    /// Capture ticks that started late (the machine could not keep the pace).
    pub(crate) late_ticks: u64,
    /// Encode or send errors (logged; the loop goes on).
    pub(crate) errors: u64,
}

/// A running publish loop.
#[derive(Debug)]
pub(crate) struct PublishLoop {
    /// The next frame number to be captured (frames `0..next` were captured).
    next_frame: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<PublishOutcome>,
}

impl PublishLoop {
    /// The shared count of frames captured (read by subscribers at join and by the runner).
    pub(crate) fn counter(&self) -> Arc<AtomicU64> {
        self.next_frame.clone()
    }

    /// Frames captured so far.
    pub(crate) fn frames_captured(&self) -> u64 {
        self.next_frame.load(Ordering::Relaxed)
    }

    /// Stop the loop and wait for it.
    pub(crate) fn stop(self) -> PublishOutcome {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// Starts a thread that captures stamped test-pattern pictures at `settings.fps` (and 20 ms
/// tone frames when `audio` is given), encodes and publishes them.
pub(crate) fn start_publisher(
    name: &str,
    mut video: VideoPublisher,
    mut audio: Option<AudioPublisher>,
    settings: VideoSettings,
) -> Result<PublishLoop, LoadTestError> {
    let next_frame = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let layout =
        VideoLayout::new(PixelFormat::I420, settings.width, settings.height).map_err(|e| {
            LoadTestError::InvalidConfig {
                setting: "video size",
                value: format!("{}x{}", settings.width, settings.height),
                allowed: e.to_string(),
            }
        })?;
    let format = AudioFormat::new(48_000, 1).expect("48 kHz mono is a valid format");
    let mut tone = ToneGenerator::new(format, Waveform::Tone(440.0), 0.3, Timestamp::now())
        .expect("a 440 Hz tone at 0.3 is valid");
    let thread_name = format!("publish-{name}");
    let (next, halt) = (next_frame.clone(), stop.clone());
    let thread = std::thread::Builder::new()
        .name(thread_name.clone())
        .spawn(move || {
            let pool = VideoFramePool::new("load-video", layout, 3);
            let audio_pool = AudioFramePool::new("load-audio", AUDIO_FRAME, 3);
            let pattern = TestPattern::default();
            let mut out = PublishOutcome::default();
            let start = Instant::now();
            let frame_period = Duration::from_secs(1) / settings.fps;
            let audio_period = Duration::from_millis(20);
            let (mut next_video, mut next_audio) = (start, start);
            let mut n: u64 = 0;
            while !halt.load(Ordering::Relaxed) {
                let now = Instant::now();
                if now >= next_video {
                    if now > next_video + frame_period {
                        out.late_ticks += 1;
                    }
                    match pool.acquire() {
                        Ok(mut frame) => {
                            let captured = Timestamp::now();
                            if let Err(e) = pattern.render(&mut frame, n as u32, captured) {
                                tracing::warn!("render frame {n}: {e}");
                                out.errors += 1;
                            } else if let Err(e) = video.push_frame(&frame.freeze(), Instant::now())
                            {
                                tracing::debug!("publish frame {n}: {e}");
                                out.errors += 1;
                            }
                        }
                        Err(e) => {
                            tracing::debug!("no free video buffer: {e}");
                            out.errors += 1;
                        }
                    }
                    n += 1;
                    next.store(n, Ordering::Relaxed);
                    next_video += frame_period;
                    if next_video < now {
                        // Far behind: skip the missed ticks instead of bursting.
                        next_video = now + frame_period;
                    }
                }
                if let Some(a) = audio.as_mut()
                    && now >= next_audio
                {
                    match audio_pool.acquire(format, AUDIO_FRAME) {
                        Ok(mut frame) => {
                            tone.fill(&mut frame);
                            if let Err(e) = a.push_frame(&frame.freeze(), Instant::now()) {
                                tracing::debug!("publish audio: {e}");
                                out.errors += 1;
                            }
                        }
                        Err(e) => {
                            tracing::debug!("no free audio buffer: {e}");
                            out.errors += 1;
                        }
                    }
                    next_audio += audio_period;
                    if next_audio < now {
                        next_audio = now + audio_period;
                    }
                }
                let wake = match audio {
                    Some(_) => next_video.min(next_audio),
                    None => next_video,
                };
                std::thread::sleep(wake.saturating_duration_since(Instant::now()));
            }
            (out.frames_sent, out.keyframes_sent) = video.frames_sent();
            out.audio_packets_sent = audio.as_ref().map_or(0, |a| a.packets_sent());
            out
        })
        .map_err(|source| LoadTestError::Thread {
            name: thread_name,
            source,
        })?;
    Ok(PublishLoop {
        next_frame,
        stop,
        thread,
    })
}

/// What one subscribed video track delivered.
#[derive(Debug, Clone, Default)]
pub(crate) struct VideoOutcome {
    /// Publisher identity.
    pub(crate) publisher: String,
    pub(crate) frames_in: u64,
    pub(crate) frames_decoded: u64,
    pub(crate) decode_errors: u64,
    /// Frames that followed lost packets.
    pub(crate) gaps: u64,
    pub(crate) bytes: u64,
    pub(crate) first_frame: Option<Instant>,
    pub(crate) seen: FrameSet,
    pub(crate) latency: Latency,
    /// Frames the track's queue dropped because this reader was slow.
    pub(crate) queue_drops: u64,
}

/// What one subscribed audio track delivered.
#[derive(Debug, Clone, Default)]
pub(crate) struct AudioOutcome {
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
    pub(crate) decode_errors: u64,
    /// RTP times of the first and last packet.
    pub(crate) rtp_span: Option<(u64, u64)>,
}

impl AudioOutcome {
    /// Packets the RTP time span says were sent (one Opus frame of 20 ms per packet).
    pub(crate) fn expected_packets(&self) -> u64 {
        self.rtp_span
            .map_or(0, |(a, b)| b.saturating_sub(a) / AUDIO_FRAME_TICKS + 1)
    }
}

/// Decode a video track until `stop`: every frame through VP8, every picture's stamp read.
pub(crate) async fn receive_video(
    mut track: SubscribedTrack,
    stop: CancellationToken,
    warmup: Duration,
    live: Arc<LiveMedia>,
) -> VideoOutcome {
    let mut out = VideoOutcome {
        publisher: track.key().identity.clone(),
        ..Default::default()
    };
    let mut decoder = match Vp8Decoder::new() {
        Ok(d) => d,
        Err(e) => {
            tracing::error!("VP8 decoder: {e}");
            return out;
        }
    };
    let mut need_key = true;
    let mut skipped = 0u64;
    loop {
        let frame = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            f = track.recv() => match f { Some(f) => f, None => break },
        };
        out.frames_in += 1;
        out.bytes += frame.data.len() as u64;
        live.bytes
            .fetch_add(frame.data.len() as u64, Ordering::Relaxed);
        if !frame.contiguous {
            out.gaps += 1;
        }
        if need_key && !frame.keyframe {
            if skipped.is_multiple_of(15) {
                track.request_keyframe();
            }
            skipped += 1;
            continue;
        }
        let img = match decoder.decode(&frame.data) {
            Ok(Some(img)) => img,
            Ok(None) => continue,
            Err(e) => {
                out.decode_errors += 1;
                live.decode_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("VP8 decode: {e}; asking for a keyframe");
                track.request_keyframe();
                need_key = true;
                continue;
            }
        };
        need_key = false;
        let now = Timestamp::now();
        let at = Instant::now();
        out.frames_decoded += 1;
        live.frames_decoded.fetch_add(1, Ordering::Relaxed);
        let first = *out.first_frame.get_or_insert(at);
        let i = &img.image;
        let Ok(s) = stamp::decode_plane(i.planes[0], i.strides[0], 1, i.width, i.height) else {
            continue;
        };
        let age = now.saturating_duration_since(s.timestamp);
        if age > STAMP_PLAUSIBLE || s.timestamp.saturating_duration_since(now) > STAMP_PLAUSIBLE {
            continue;
        }
        out.seen.insert(s.frame_number);
        if at.duration_since(first) >= warmup {
            out.latency.record(age);
        }
    }
    out.queue_drops = track.dropped();
    out
}

/// Decode an audio track until `stop`: every packet through Opus.
pub(crate) async fn receive_audio(
    mut track: SubscribedTrack,
    stop: CancellationToken,
    live: Arc<LiveMedia>,
) -> AudioOutcome {
    let mut out = AudioOutcome::default();
    let mut decoder = match OpusDecoder::new(1) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!("Opus decoder: {e}");
            return out;
        }
    };
    let mut pcm = vec![0i16; MAX_OPUS_DECODED];
    loop {
        let frame = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            f = track.recv() => match f { Some(f) => f, None => break },
        };
        out.bytes += frame.data.len() as u64;
        live.bytes
            .fetch_add(frame.data.len() as u64, Ordering::Relaxed);
        out.packets += 1;
        let span = out.rtp_span.get_or_insert((frame.rtp_time, frame.rtp_time));
        span.0 = span.0.min(frame.rtp_time);
        span.1 = span.1.max(frame.rtp_time);
        if let Err(e) = decoder.decode(&frame.data, &mut pcm) {
            out.decode_errors += 1;
            live.decode_errors.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("Opus decode: {e}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_set_counts_what_arrived_in_a_range() {
        let mut s = FrameSet::default();
        for n in [5, 6, 8, 200, 201] {
            s.insert(n);
        }
        assert_eq!(s.first(), Some(5));
        assert_eq!(s.count_in(5, 8), 3);
        assert_eq!(s.count_in(0, 1000), 5);
        assert_eq!(s.count_in(300, 400), 0);
    }

    #[test]
    fn latency_percentiles_of_a_ramp_and_a_merge() {
        let mut a = Latency::default();
        for ms in 1..=100 {
            a.record(Duration::from_millis(ms));
        }
        assert!((a.ms_at(0.5) - 50.0).abs() < 0.5, "{}", a.ms_at(0.5));
        assert!((a.ms_at(0.99) - 99.0).abs() < 0.5, "{}", a.ms_at(0.99));
        let mut b = Latency::default();
        b.record(Duration::from_secs(1));
        a.merge(&b);
        assert_eq!(a.count(), 101);
        assert!((a.max_ms() - 1000.0).abs() < 1.0);
    }

    #[test]
    fn audio_loss_from_the_rtp_span() {
        let a = AudioOutcome {
            packets: 9,
            rtp_span: Some((1_000, 1_000 + 9 * 960)),
            ..Default::default()
        };
        assert_eq!(a.expected_packets(), 10);
    }
}
