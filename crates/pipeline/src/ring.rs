//! The audio path: an SPSC sample ring with a target latency.

use std::sync::Arc;
use std::time::Duration;

use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};
use serde::{Deserialize, Serialize};

use crate::audio::{AudioFormat, AudioFrame};
use crate::counter::{CacheLine, SoloCounter};
use crate::error::{PipelineError, Result};
use crate::metrics::{AgeHistogram, LatencySummary};
use crate::time::Timestamp;

/// Default latency the consumer aims for.
pub const DEFAULT_TARGET_LATENCY: Duration = Duration::from_millis(40);

/// Settings of an [`audio_ring`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioRingConfig {
    /// Sample rate and channels of the samples carried.
    pub format: AudioFormat,
    /// How much audio the consumer keeps buffered: it waits for this much before starting (and
    /// after every underflow) and trims back to it when the buffer grows past
    /// [`max_latency`](AudioRingConfig::max_latency). Default 40 ms.
    pub target_latency: Duration,
    /// Buffered audio above which the consumer discards the oldest samples down to the target
    /// (counted as skipped). Default: twice the target.
    pub max_latency: Duration,
    /// Ring size; samples that do not fit are dropped by the producer (counted as overflow).
    /// Default: four times the target.
    pub capacity: Duration,
}

impl AudioRingConfig {
    /// Defaults for `format`: 40 ms target, 80 ms max, 160 ms ring.
    pub fn new(format: AudioFormat) -> Self {
        Self::with_target(format, DEFAULT_TARGET_LATENCY)
    }

    /// `target` latency, twice that as the trim threshold, four times as the ring size.
    pub fn with_target(format: AudioFormat, target: Duration) -> Self {
        AudioRingConfig {
            format,
            target_latency: target,
            max_latency: target * 2,
            capacity: target * 4,
        }
    }
}

/// Counters of an audio ring, readable from either side or from an [`AudioRingStatsHandle`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioRingStats {
    /// Frames pushed by the producer.
    pub frames_pushed: u64,
    /// Samples (interleaved) written into the ring.
    pub samples_written: u64,
    /// Samples the producer dropped because the ring was full.
    pub overflow_samples: u64,
    /// Samples the consumer read.
    pub samples_read: u64,
    /// Silence samples the consumer produced because the ring ran dry (after it had started).
    pub underflow_samples: u64,
    /// Times the ring ran dry.
    pub underruns: u64,
    /// Samples the consumer discarded to bring latency back to the target.
    pub skipped_samples: u64,
    /// Samples currently buffered.
    pub buffered_samples: u64,
    /// Buffered audio in microseconds.
    pub buffered_us: u64,
}

struct Shared {
    format: AudioFormat,
    /// Written only by the producer half.
    producer: CacheLine<ProducerCounters>,
    /// Written only by the consumer half.
    consumer: CacheLine<ConsumerCounters>,
}

#[derive(Default)]
struct ProducerCounters {
    frames_pushed: SoloCounter,
    samples_written: SoloCounter,
    overflow_samples: SoloCounter,
}

#[derive(Default)]
struct ConsumerCounters {
    samples_read: SoloCounter,
    underflow_samples: SoloCounter,
    underruns: SoloCounter,
    skipped_samples: SoloCounter,
}

impl Shared {
    fn stats(&self) -> AudioRingStats {
        let (p, c) = (&self.producer, &self.consumer);
        let written = p.samples_written.get();
        let consumed = c.samples_read.get() + c.skipped_samples.get();
        let buffered = written.saturating_sub(consumed);
        let per_sec = u64::from(self.format.sample_rate) * u64::from(self.format.channels);
        AudioRingStats {
            frames_pushed: p.frames_pushed.get(),
            samples_written: written,
            overflow_samples: p.overflow_samples.get(),
            samples_read: c.samples_read.get(),
            underflow_samples: c.underflow_samples.get(),
            underruns: c.underruns.get(),
            skipped_samples: c.skipped_samples.get(),
            buffered_samples: buffered,
            buffered_us: buffered * 1_000_000 / per_sec.max(1),
        }
    }
}

/// Capture time of the first sample written at a ring position.
#[derive(Clone, Copy, Debug, Default)]
struct Mark {
    position: u64,
    timestamp: Timestamp,
}

const MARKS: usize = 256;

/// Creates an audio ring: the producer half goes to the decoder thread, the consumer half to
/// playback or analysis. All memory is allocated here.
pub fn audio_ring(config: AudioRingConfig) -> Result<(AudioRingProducer, AudioRingConsumer)> {
    let format = AudioFormat::new(config.format.sample_rate, config.format.channels)?;
    let ch = usize::from(format.channels);
    let target = format.samples_per_channel(config.target_latency).max(1) * ch;
    let max = (format.samples_per_channel(config.max_latency) * ch).max(target);
    let capacity = (format.samples_per_channel(config.capacity) * ch).max(max + ch);
    let (prod, cons) = HeapRb::<i16>::new(capacity).split();
    let (mark_prod, mark_cons) = HeapRb::<Mark>::new(MARKS).split();
    let shared = Arc::new(Shared {
        format,
        producer: CacheLine::default(),
        consumer: CacheLine::default(),
    });
    Ok((
        AudioRingProducer {
            prod,
            marks: mark_prod,
            written: 0,
            shared: Arc::clone(&shared),
        },
        AudioRingConsumer {
            cons,
            marks: mark_cons,
            pending_mark: None,
            position: 0,
            primed: false,
            started: false,
            target,
            max,
            shared,
            ages: AgeHistogram::new(),
        },
    ))
}

/// Writing half of an audio ring (the decoder thread). Never blocks.
///
/// **Drop policy: drop newest.** Samples that do not fit are discarded and counted in
/// [`AudioRingStats::overflow_samples`]; in practice the consumer trims back to its target
/// latency long before the ring fills, so overflow means the consumer has stalled.
pub struct AudioRingProducer {
    prod: HeapProd<i16>,
    marks: HeapProd<Mark>,
    written: u64,
    shared: Arc<Shared>,
}

impl AudioRingProducer {
    /// Writes a frame's samples. Returns how many samples (interleaved) were written; the rest
    /// overflowed. A frame of another format is refused.
    pub fn push(&mut self, frame: &AudioFrame) -> Result<usize> {
        let fmt = self.shared.format;
        if frame.format() != fmt {
            return Err(PipelineError::AudioFormatMismatch {
                component: "audio ring",
                expected_rate: fmt.sample_rate,
                expected_channels: fmt.channels,
                got_rate: frame.sample_rate(),
                got_channels: frame.channels(),
            });
        }
        Ok(self.push_samples(frame.samples(), frame.timestamp()))
    }

    /// Writes interleaved samples captured at `timestamp` (the first sample's capture time).
    /// Only whole sample frames (all channels) are written. Returns the samples written.
    pub fn push_samples(&mut self, samples: &[i16], timestamp: Timestamp) -> usize {
        let ch = usize::from(self.shared.format.channels);
        let whole = samples.len() / ch * ch;
        let room = self.prod.vacant_len() / ch * ch;
        let n = whole.min(room);
        let written = self.prod.push_slice(&samples[..n]);
        debug_assert_eq!(written, n);
        if written > 0 {
            // A full marks ring only costs latency samples, never audio.
            let _ = self.marks.try_push(Mark {
                position: self.written,
                timestamp,
            });
        }
        self.written += written as u64;
        let s = &self.shared.producer;
        s.frames_pushed.add(1);
        s.samples_written.add(written as u64);
        if written < samples.len() {
            s.overflow_samples.add((samples.len() - written) as u64);
        }
        written
    }

    /// Counters.
    pub fn stats(&self) -> AudioRingStats {
        self.shared.stats()
    }

    /// A handle to read the counters from any thread.
    pub fn stats_handle(&self) -> AudioRingStatsHandle {
        AudioRingStatsHandle(Arc::clone(&self.shared))
    }
}

/// Reading half of an audio ring (playback callback or analyser). Never blocks.
pub struct AudioRingConsumer {
    cons: HeapCons<i16>,
    marks: HeapCons<Mark>,
    pending_mark: Option<Mark>,
    position: u64,
    primed: bool,
    started: bool,
    target: usize,
    max: usize,
    shared: Arc<Shared>,
    ages: AgeHistogram,
}

impl AudioRingConsumer {
    /// Fills `out` (interleaved) using the clock for latency accounting. See
    /// [`pop_at`](AudioRingConsumer::pop_at).
    pub fn pop(&mut self, out: &mut [i16]) -> usize {
        self.pop_at(out, Timestamp::now())
    }

    /// Fills `out` with buffered samples and returns how many were real audio; the rest of `out`
    /// is silence.
    ///
    /// Until `target_latency` worth of audio is buffered (at start and after every underflow)
    /// the output is silence. When more than `max_latency` is buffered the oldest samples are
    /// discarded down to the target. If the ring runs dry mid-buffer, the remainder is silence,
    /// counted as underflow. The age of each frame whose first sample is played is recorded
    /// against `now`.
    pub fn pop_at(&mut self, out: &mut [i16], now: Timestamp) -> usize {
        let ch = usize::from(self.shared.format.channels);
        let available = self.cons.occupied_len() / ch * ch;
        if !self.primed {
            if available < self.target {
                out.fill(0);
                return 0;
            }
            self.primed = true;
            self.started = true;
        }
        if available > self.max {
            let skip = (available - self.target) / ch * ch;
            let skipped = self.cons.skip(skip);
            self.position += skipped as u64;
            self.shared.consumer.skipped_samples.add(skipped as u64);
            self.drain_marks(None);
        }
        let want = out.len() / ch * ch;
        let n = self.cons.pop_slice(&mut out[..want]);
        self.position += n as u64;
        out[n..].fill(0);
        self.shared.consumer.samples_read.add(n as u64);
        if n < want {
            self.primed = false;
            if self.started {
                self.shared
                    .consumer
                    .underflow_samples
                    .add((want - n) as u64);
                self.shared.consumer.underruns.add(1);
            }
        }
        self.drain_marks(Some(now));
        n
    }

    /// Consumes marks of samples already read; records their age if `now` is given.
    fn drain_marks(&mut self, now: Option<Timestamp>) {
        loop {
            let mark = match self.pending_mark.take() {
                Some(m) => m,
                None => match self.marks.try_pop() {
                    Some(m) => m,
                    None => return,
                },
            };
            if mark.position >= self.position {
                self.pending_mark = Some(mark);
                return;
            }
            if let Some(now) = now {
                self.ages.record_frame(mark.timestamp, now);
            }
        }
    }

    /// Whether playback has reached the target fill (false while priming or after an underflow).
    pub fn is_primed(&self) -> bool {
        self.primed
    }

    /// Counters.
    pub fn stats(&self) -> AudioRingStats {
        self.shared.stats()
    }

    /// Age of played frames (capture → first sample read).
    pub fn latency(&self) -> LatencySummary {
        self.ages.summary()
    }

    /// The age histogram, for resetting or merging.
    pub fn latency_histogram_mut(&mut self) -> &mut AgeHistogram {
        &mut self.ages
    }

    /// A handle to read the counters from any thread.
    pub fn stats_handle(&self) -> AudioRingStatsHandle {
        AudioRingStatsHandle(Arc::clone(&self.shared))
    }
}

/// Reads an audio ring's counters from any thread (relaxed atomic loads).
#[derive(Clone)]
pub struct AudioRingStatsHandle(Arc<Shared>);

impl AudioRingStatsHandle {
    /// Counters.
    pub fn stats(&self) -> AudioRingStats {
        self.0.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AudioFrameMut;

    fn frame(fmt: AudioFormat, ms: u64, value: i16, ts: u64) -> AudioFrame {
        let spc = fmt.samples_per_channel(Duration::from_millis(ms));
        let mut f = AudioFrameMut::new(fmt, spc);
        f.samples_mut().fill(value);
        f.set_timestamp(Timestamp::from_micros(ts));
        f.freeze()
    }

    #[test]
    fn primes_to_target_then_plays() {
        let fmt = AudioFormat::MONO_48K;
        let (mut p, mut c) = audio_ring(AudioRingConfig::new(fmt)).unwrap();
        let mut out = [1i16; 480];
        for i in 0..3 {
            p.push(&frame(fmt, 10, 5, i * 10_000)).unwrap();
            assert_eq!(
                c.pop_at(&mut out, Timestamp::from_micros(0)),
                0,
                "still priming"
            );
            assert!(out.iter().all(|&s| s == 0));
        }
        p.push(&frame(fmt, 10, 5, 30_000)).unwrap();
        assert_eq!(c.pop_at(&mut out, Timestamp::from_micros(45_000)), 480);
        assert!(out.iter().all(|&s| s == 5));
        let lat = c.latency();
        assert_eq!(lat.count, 1);
        assert!((44_000..=46_000).contains(&lat.p50_us), "{lat:?}");
        assert_eq!(c.stats().underflow_samples, 0);
    }

    #[test]
    fn underflow_is_counted_and_reprimes() {
        let fmt = AudioFormat::MONO_48K;
        let (mut p, mut c) = audio_ring(AudioRingConfig::new(fmt)).unwrap();
        p.push(&frame(fmt, 40, 3, 0)).unwrap();
        let mut out = [0i16; 480 * 5];
        assert_eq!(c.pop(&mut out), 1920);
        assert!(out[..1920].iter().all(|&s| s == 3) && out[1920..].iter().all(|&s| s == 0));
        let s = c.stats();
        assert_eq!((s.underflow_samples, s.underruns), (480, 1));
        assert!(!c.is_primed());
        p.push(&frame(fmt, 10, 3, 0)).unwrap();
        assert_eq!(c.pop(&mut out[..480]), 0, "re-priming after underflow");
    }

    #[test]
    fn overflow_never_blocks_and_is_counted() {
        let fmt = AudioFormat::STEREO_48K;
        let (mut p, c) = audio_ring(AudioRingConfig::new(fmt)).unwrap();
        let f = frame(fmt, 10, 1, 0);
        let mut written = 0;
        for _ in 0..100 {
            written += p.push(&f).unwrap();
        }
        let s = c.stats();
        assert_eq!(written as u64, s.samples_written);
        assert_eq!(s.samples_written, 160 * 96, "160 ms of 48 kHz stereo");
        assert_eq!(s.overflow_samples, 100 * 960 - 160 * 96);
        assert_eq!(s.buffered_us, 160_000);
    }

    #[test]
    fn latency_is_trimmed_back_to_target() {
        let fmt = AudioFormat::MONO_48K;
        let (mut p, mut c) = audio_ring(AudioRingConfig::new(fmt)).unwrap();
        for i in 0..12 {
            p.push(&frame(fmt, 10, i, 0)).unwrap();
        }
        let mut out = [0i16; 480];
        c.pop_at(&mut out, Timestamp::ZERO);
        // 120 ms buffered > 80 ms max: trimmed to 40 ms, then 10 ms read.
        assert_eq!(out[0], 8, "oldest 80 ms skipped");
        let s = c.stats();
        assert_eq!(s.skipped_samples, 80 * 48);
        assert_eq!(s.buffered_us, 30_000);
    }

    #[test]
    fn format_mismatch_is_an_error() {
        let (mut p, _c) = audio_ring(AudioRingConfig::new(AudioFormat::MONO_48K)).unwrap();
        let err = p
            .push(&frame(AudioFormat::STEREO_48K, 10, 0, 0))
            .unwrap_err();
        assert!(err.to_string().contains("48000 Hz/2 ch"), "{err}");
    }
}
