//! Source traits and the looping adapter.

use std::time::Duration;

use wavecast_pipeline::{AudioFormat, AudioFrameMut, VideoFrameMut, VideoLayout};

use crate::error::{MediaError, Result};

/// A frame rate as a fraction (frames per second = `num / den`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrameRate {
    /// Numerator.
    pub num: u32,
    /// Denominator.
    pub den: u32,
}

impl FrameRate {
    /// `num / den` frames per second (a zero part is replaced by 1).
    pub const fn new(num: u32, den: u32) -> Self {
        FrameRate {
            num: if num == 0 { 1 } else { num },
            den: if den == 0 { 1 } else { den },
        }
    }

    /// Time between frames.
    pub fn interval(&self) -> Duration {
        Duration::from_nanos(u64::from(self.den) * 1_000_000_000 / u64::from(self.num))
    }
}

/// Something that yields video frames in order (a file, a generator).
pub trait VideoSource {
    /// Layout of the frames (buffers passed to `read_frame` must match it).
    fn layout(&self) -> VideoLayout;
    /// Nominal frame rate.
    fn frame_rate(&self) -> FrameRate;
    /// Fills `out` with the next frame; `false` at the end.
    fn read_frame(&mut self, out: &mut VideoFrameMut) -> Result<bool>;
    /// Goes back to the first frame.
    fn rewind(&mut self) -> Result<()>;
    /// What the source is, for messages (a path, a generator name).
    fn describe(&self) -> String;
}

/// Something that yields audio frames in order.
pub trait AudioSource {
    /// Format of the samples.
    fn format(&self) -> AudioFormat;
    /// Fills `out` (its format must match) with up to its length of samples and returns the
    /// samples per channel written; 0 at the end. A short count means the end is near: `out` is
    /// truncated to what was written. At the end (0) `out` is left as it was.
    fn read_frame(&mut self, out: &mut AudioFrameMut) -> Result<usize>;
    /// Goes back to the first sample.
    fn rewind(&mut self) -> Result<()>;
    /// What the source is, for messages.
    fn describe(&self) -> String;
}

/// Plays a source again from the start whenever it ends, forever or `max_loops` times.
///
/// Sequence numbers keep increasing across loops. A source that yields nothing after a rewind
/// is reported as [`MediaError::EmptySource`] instead of spinning.
pub struct Looping<S> {
    inner: S,
    loops: u64,
    max_loops: Option<u64>,
    sequence: u64,
}

impl<S> Looping<S> {
    /// Loops `inner` forever.
    pub fn new(inner: S) -> Self {
        Looping {
            inner,
            loops: 0,
            max_loops: None,
            sequence: 0,
        }
    }

    /// Plays `inner` at most `loops` times in total.
    pub fn times(inner: S, loops: u64) -> Self {
        Looping {
            inner,
            loops: 0,
            max_loops: Some(loops),
            sequence: 0,
        }
    }

    /// Completed passes through the source.
    pub fn loops(&self) -> u64 {
        self.loops
    }

    /// The wrapped source.
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn next_pass(&mut self) -> bool {
        self.loops += 1;
        self.max_loops.is_none_or(|max| self.loops < max)
    }
}

impl<S: VideoSource> VideoSource for Looping<S> {
    fn layout(&self) -> VideoLayout {
        self.inner.layout()
    }
    fn frame_rate(&self) -> FrameRate {
        self.inner.frame_rate()
    }
    fn read_frame(&mut self, out: &mut VideoFrameMut) -> Result<bool> {
        if !self.inner.read_frame(out)? {
            if !self.next_pass() {
                return Ok(false);
            }
            self.inner.rewind()?;
            if !self.inner.read_frame(out)? {
                return Err(MediaError::EmptySource {
                    what: self.inner.describe(),
                });
            }
        }
        out.set_sequence(self.sequence);
        self.sequence += 1;
        Ok(true)
    }
    fn rewind(&mut self) -> Result<()> {
        self.loops = 0;
        self.inner.rewind()
    }
    fn describe(&self) -> String {
        format!("looping {}", self.inner.describe())
    }
}

impl<S: AudioSource> AudioSource for Looping<S> {
    fn format(&self) -> AudioFormat {
        self.inner.format()
    }
    fn read_frame(&mut self, out: &mut AudioFrameMut) -> Result<usize> {
        let mut n = self.inner.read_frame(out)?;
        if n == 0 {
            if !self.next_pass() {
                return Ok(0);
            }
            self.inner.rewind()?;
            n = self.inner.read_frame(out)?;
            if n == 0 {
                return Err(MediaError::EmptySource {
                    what: self.inner.describe(),
                });
            }
        }
        out.set_sequence(self.sequence);
        self.sequence += 1;
        Ok(n)
    }
    fn rewind(&mut self) -> Result<()> {
        self.loops = 0;
        self.inner.rewind()
    }
    fn describe(&self) -> String {
        format!("looping {}", self.inner.describe())
    }
}
