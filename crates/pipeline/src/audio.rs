//! Audio frames: interleaved 16-bit PCM in pooled buffers.

use crate::sync::Arc;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{PipelineError, Result};
use crate::pool::{Lease, PoolStats, SlotPool};
use crate::time::Timestamp;

/// Sample rate and channel count of a PCM stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AudioFormat {
    /// Samples per second per channel (8 000 ..= 384 000).
    pub sample_rate: u32,
    /// Interleaved channels (1 ..= 8).
    pub channels: u16,
}

impl AudioFormat {
    /// 48 kHz mono, what LiveKit's Opus tracks decode to by default.
    pub const MONO_48K: AudioFormat = AudioFormat {
        sample_rate: 48_000,
        channels: 1,
    };
    /// 48 kHz stereo.
    pub const STEREO_48K: AudioFormat = AudioFormat {
        sample_rate: 48_000,
        channels: 2,
    };

    /// A validated format.
    pub fn new(sample_rate: u32, channels: u16) -> Result<Self> {
        if !(8_000..=384_000).contains(&sample_rate) {
            return Err(PipelineError::InvalidAudioFormat {
                what: "sample_rate",
                value: sample_rate.into(),
                allowed: "8000..=384000",
            });
        }
        if !(1..=8).contains(&channels) {
            return Err(PipelineError::InvalidAudioFormat {
                what: "channels",
                value: channels.into(),
                allowed: "1..=8",
            });
        }
        Ok(AudioFormat {
            sample_rate,
            channels,
        })
    }

    /// Samples per channel in `duration` (rounded down).
    pub fn samples_per_channel(&self, duration: Duration) -> usize {
        (duration.as_micros() * u128::from(self.sample_rate) / 1_000_000) as usize
    }

    /// Duration of `samples_per_channel` samples.
    pub fn duration_of(&self, samples_per_channel: usize) -> Duration {
        Duration::from_micros(samples_per_channel as u64 * 1_000_000 / u64::from(self.sample_rate))
    }
}

struct AudioBuffer {
    samples: Box<[i16]>,
    format: AudioFormat,
    samples_per_channel: usize,
    timestamp: Timestamp,
    sequence: u64,
}

impl AudioBuffer {
    fn len(&self) -> usize {
        self.samples_per_channel * usize::from(self.format.channels)
    }
}

/// A chunk of interleaved 16-bit PCM, shared read-only.
///
/// Cloning is an atomic increment; the samples are never copied. When the last clone drops, the
/// buffer is free again in its [`AudioFramePool`].
#[derive(Clone)]
pub struct AudioFrame {
    buf: Arc<AudioBuffer>,
}

impl AudioFrame {
    /// Interleaved samples (`samples_per_channel * channels` of them).
    pub fn samples(&self) -> &[i16] {
        &self.buf.samples[..self.buf.len()]
    }
    /// Sample rate and channel count.
    pub fn format(&self) -> AudioFormat {
        self.buf.format
    }
    /// Samples per second per channel.
    pub fn sample_rate(&self) -> u32 {
        self.buf.format.sample_rate
    }
    /// Interleaved channel count.
    pub fn channels(&self) -> u16 {
        self.buf.format.channels
    }
    /// Samples per channel in this frame.
    pub fn samples_per_channel(&self) -> usize {
        self.buf.samples_per_channel
    }
    /// Capture timestamp of the first sample.
    pub fn timestamp(&self) -> Timestamp {
        self.buf.timestamp
    }
    /// Producer-assigned sequence number.
    pub fn sequence(&self) -> u64 {
        self.buf.sequence
    }
    /// Playing time of the frame.
    pub fn duration(&self) -> Duration {
        self.buf.format.duration_of(self.buf.samples_per_channel)
    }
    /// Whether two handles share the same samples.
    pub fn ptr_eq(&self, other: &AudioFrame) -> bool {
        Arc::ptr_eq(&self.buf, &other.buf)
    }
}

impl fmt::Debug for AudioFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AudioFrame")
            .field("sample_rate", &self.sample_rate())
            .field("channels", &self.channels())
            .field("samples_per_channel", &self.samples_per_channel())
            .field("timestamp", &self.timestamp())
            .field("sequence", &self.sequence())
            .finish()
    }
}

/// An audio frame being written: exclusive access to a buffer. Fill
/// [`samples_mut`](AudioFrameMut::samples_mut), then [`freeze`](AudioFrameMut::freeze).
pub struct AudioFrameMut {
    lease: Lease<AudioBuffer>,
}

impl AudioFrameMut {
    /// A one-off zeroed frame outside any pool (allocates; for tests, tools and cold paths).
    pub fn new(format: AudioFormat, samples_per_channel: usize) -> Self {
        AudioFrameMut {
            lease: Lease::unpooled(AudioBuffer {
                samples: vec![0; samples_per_channel * usize::from(format.channels)]
                    .into_boxed_slice(),
                format,
                samples_per_channel,
                timestamp: Timestamp::ZERO,
                sequence: 0,
            }),
        }
    }

    /// A one-off frame holding a copy of `samples` (interleaved). Extra samples that do not make
    /// a whole sample frame are ignored.
    pub fn from_samples(format: AudioFormat, samples: &[i16]) -> Self {
        let spc = samples.len() / usize::from(format.channels);
        let mut f = Self::new(format, spc);
        let n = f.samples_mut().len();
        f.samples_mut().copy_from_slice(&samples[..n]);
        f
    }

    /// Interleaved samples, mutable.
    pub fn samples_mut(&mut self) -> &mut [i16] {
        let buf = self.lease.get_mut();
        let len = buf.len();
        &mut buf.samples[..len]
    }
    /// Interleaved samples.
    pub fn samples(&self) -> &[i16] {
        let buf = self.lease.get();
        &buf.samples[..buf.len()]
    }
    /// Sample rate and channel count.
    pub fn format(&self) -> AudioFormat {
        self.lease.get().format
    }
    /// Samples per channel.
    pub fn samples_per_channel(&self) -> usize {
        self.lease.get().samples_per_channel
    }
    /// Capture timestamp of the first sample.
    pub fn timestamp(&self) -> Timestamp {
        self.lease.get().timestamp
    }
    /// Sets the capture timestamp of the first sample.
    pub fn set_timestamp(&mut self, timestamp: Timestamp) -> &mut Self {
        self.lease.get_mut().timestamp = timestamp;
        self
    }
    /// Sets the producer's sequence number.
    pub fn set_sequence(&mut self, sequence: u64) -> &mut Self {
        self.lease.get_mut().sequence = sequence;
        self
    }
    /// Shortens the frame to `samples_per_channel` (e.g. a short final chunk of a file).
    /// Longer values are clamped to the current length.
    pub fn truncate(&mut self, samples_per_channel: usize) -> &mut Self {
        let buf = self.lease.get_mut();
        buf.samples_per_channel = buf.samples_per_channel.min(samples_per_channel);
        self
    }
    /// Publishes the frame for sharing.
    pub fn freeze(self) -> AudioFrame {
        AudioFrame {
            buf: self.lease.publish(),
        }
    }
}

/// A fixed set of pre-allocated audio buffers, each holding up to `max_samples` interleaved
/// samples.
///
/// When every buffer is in use, [`acquire`](AudioFramePool::acquire) returns
/// [`PipelineError::PoolEmpty`] at once and counts it; it never blocks or allocates.
#[derive(Clone)]
pub struct AudioFramePool {
    slots: SlotPool<AudioBuffer>,
    max_samples: usize,
}

impl AudioFramePool {
    /// `capacity` buffers of `max_samples` interleaved samples each, allocated now.
    pub fn new(name: &str, max_samples: usize, capacity: usize) -> Self {
        let slots = SlotPool::new(name, capacity, || AudioBuffer {
            samples: vec![0; max_samples].into_boxed_slice(),
            format: AudioFormat::MONO_48K,
            samples_per_channel: 0,
            timestamp: Timestamp::ZERO,
            sequence: 0,
        });
        AudioFramePool { slots, max_samples }
    }

    /// A pool sized for frames of `frame` duration in `format` (e.g. 10 ms at 48 kHz stereo).
    pub fn for_format(name: &str, format: AudioFormat, frame: Duration, capacity: usize) -> Self {
        let max = format.samples_per_channel(frame) * usize::from(format.channels);
        Self::new(name, max, capacity)
    }

    /// A free buffer for `samples_per_channel` samples of `format`. The samples hold stale data;
    /// write all of them.
    pub fn acquire(
        &self,
        format: AudioFormat,
        samples_per_channel: usize,
    ) -> Result<AudioFrameMut> {
        let needed = samples_per_channel * usize::from(format.channels);
        if needed > self.max_samples {
            return Err(PipelineError::FrameTooLarge {
                pool: std::sync::Arc::clone(self.slots.name()),
                needed,
                capacity: self.max_samples,
            });
        }
        let mut lease = self.slots.acquire()?;
        let buf = lease.get_mut();
        buf.format = format;
        buf.samples_per_channel = samples_per_channel;
        Ok(AudioFrameMut { lease })
    }

    /// Counters (cheap: a few relaxed atomic loads).
    pub fn stats(&self) -> PoolStats {
        self.slots.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_frames_round_trip() {
        let pool = AudioFramePool::for_format(
            "mic",
            AudioFormat::STEREO_48K,
            Duration::from_millis(10),
            2,
        );
        let mut f = pool.acquire(AudioFormat::STEREO_48K, 480).unwrap();
        assert_eq!(f.samples_mut().len(), 960);
        f.samples_mut().fill(7);
        f.set_timestamp(Timestamp::from_micros(1000));
        let frame = f.freeze();
        assert_eq!(frame.samples().len(), 960);
        assert_eq!(frame.duration(), Duration::from_millis(10));
        assert!(pool.acquire(AudioFormat::STEREO_48K, 481).is_err());
        let g = pool.acquire(AudioFormat::MONO_48K, 960).unwrap().freeze();
        assert!(matches!(
            pool.acquire(AudioFormat::MONO_48K, 10),
            Err(PipelineError::PoolEmpty { capacity: 2, .. })
        ));
        drop(frame);
        drop(g);
        assert!(pool.acquire(AudioFormat::MONO_48K, 10).is_ok());
        assert_eq!(pool.stats().exhausted, 1);
    }

    #[test]
    fn format_validation() {
        assert!(AudioFormat::new(48_000, 2).is_ok());
        assert!(AudioFormat::new(100, 2).is_err());
        assert!(AudioFormat::new(48_000, 0).is_err());
        assert_eq!(
            AudioFormat::MONO_48K.samples_per_channel(Duration::from_millis(40)),
            1920
        );
    }

    #[test]
    fn from_samples_and_truncate() {
        let mut f = AudioFrameMut::from_samples(AudioFormat::STEREO_48K, &[1, 2, 3, 4, 5]);
        assert_eq!(f.samples(), &[1, 2, 3, 4]);
        f.truncate(1);
        assert_eq!(f.freeze().samples(), &[1, 2]);
    }
}
