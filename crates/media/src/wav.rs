//! WAV files through `hound`: a reader yielding 16-bit frames and a writer.
//!
//! Crash safety of the writer: the RIFF and data sizes in the header are brought up to date
//! (hound's checkpointing flush: the header rewritten in place, the buffer written out) after
//! every second of audio, so a process killed outright leaves a file common readers open with
//! all but at most the last second in it.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use wavecast_pipeline::{AudioFormat, AudioFrame, AudioFrameMut};

use crate::error::{MediaError, Result};
use crate::source::AudioSource;

/// Reads a PCM WAV file (8/16/24/32-bit integer or 32-bit float, up to 8 channels) as
/// interleaved 16-bit samples.
pub struct WavReader {
    path: PathBuf,
    reader: hound::WavReader<BufReader<File>>,
    spec: hound::WavSpec,
    format: AudioFormat,
}

fn wav_err(path: &Path) -> impl FnOnce(hound::Error) -> MediaError + '_ {
    move |source| match source {
        hound::Error::IoError(e) => MediaError::Io {
            path: path.to_path_buf(),
            action: "read WAV".into(),
            source: e,
        },
        hound::Error::Unsupported => MediaError::WavUnsupported {
            path: path.to_path_buf(),
            reason: "encoding not supported (only PCM integer or IEEE float)".into(),
        },
        other => MediaError::Wav {
            path: path.to_path_buf(),
            source: other,
        },
    }
}

impl WavReader {
    /// Opens `path` and checks the format.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let reader = hound::WavReader::open(&path).map_err(wav_err(&path))?;
        let spec = reader.spec();
        let unsupported = |reason: String| MediaError::WavUnsupported {
            path: path.clone(),
            reason,
        };
        match (spec.sample_format, spec.bits_per_sample) {
            (hound::SampleFormat::Int, 8 | 16 | 24 | 32) | (hound::SampleFormat::Float, 32) => {}
            (f, b) => return Err(unsupported(format!("{b}-bit {f:?} samples"))),
        }
        let format = AudioFormat::new(spec.sample_rate, spec.channels)
            .map_err(|e| unsupported(e.to_string()))?;
        Ok(WavReader {
            path,
            reader,
            spec,
            format,
        })
    }

    /// Total samples per channel in the file.
    pub fn duration_samples(&self) -> u32 {
        self.reader.duration()
    }

    fn next_sample(&mut self) -> Option<Result<i16>> {
        let path = &self.path;
        let s = match (self.spec.sample_format, self.spec.bits_per_sample) {
            (hound::SampleFormat::Float, _) => self
                .reader
                .samples::<f32>()
                .next()?
                .map(|v| (v.clamp(-1.0, 1.0) * 32767.0).round() as i16),
            (_, 8) => self
                .reader
                .samples::<i8>()
                .next()?
                .map(|v| i16::from(v) << 8),
            (_, 16) => self.reader.samples::<i16>().next()?,
            (_, bits) => self
                .reader
                .samples::<i32>()
                .next()?
                .map(|v| (v >> (bits - 16)) as i16),
        };
        Some(s.map_err(wav_err(path)))
    }
}

impl AudioSource for WavReader {
    fn format(&self) -> AudioFormat {
        self.format
    }

    fn read_frame(&mut self, out: &mut AudioFrameMut) -> Result<usize> {
        if out.format() != self.format {
            return Err(MediaError::FormatMismatch {
                what: self.path.display().to_string(),
                reason: format!("file is {:?}, buffer is {:?}", self.format, out.format()),
            });
        }
        let ch = usize::from(self.format.channels);
        let len = out.samples().len();
        let mut written = 0;
        while written < len {
            match self.next_sample() {
                Some(s) => {
                    out.samples_mut()[written] = s?;
                    written += 1;
                }
                None => break,
            }
        }
        let frames = written / ch;
        if frames > 0 {
            out.truncate(frames);
        }
        Ok(frames)
    }

    fn rewind(&mut self) -> Result<()> {
        self.reader.seek(0).map_err(|e| MediaError::Io {
            path: self.path.clone(),
            action: "rewind".into(),
            source: e,
        })
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}

/// Writes 16-bit PCM WAV files, keeping the header current every second of audio.
pub struct WavWriter {
    path: PathBuf,
    writer: Option<hound::WavWriter<BufWriter<File>>>,
    format: AudioFormat,
    /// Samples per channel written since the header was last brought up to date.
    since_checkpoint: u64,
}

impl WavWriter {
    /// Creates (or truncates) `path` for `format`.
    pub fn create(path: impl AsRef<Path>, format: AudioFormat) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::create(&path).map_err(|source| MediaError::Io {
            path: path.clone(),
            action: "create".into(),
            source,
        })?;
        Self::start(file, path, format)
    }

    /// Creates `path` for `format`, failing if it exists (a recording is never overwritten).
    pub fn create_new(path: impl AsRef<Path>, format: AudioFormat) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| MediaError::Io {
                path: path.clone(),
                action: "create (never overwriting)".into(),
                source,
            })?;
        Self::start(file, path, format)
    }

    fn start(file: File, path: PathBuf, format: AudioFormat) -> Result<Self> {
        let spec = hound::WavSpec {
            channels: format.channels,
            sample_rate: format.sample_rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer =
            hound::WavWriter::new(BufWriter::new(file), spec).map_err(|source| match source {
                hound::Error::IoError(e) => MediaError::Io {
                    path: path.clone(),
                    action: "create".into(),
                    source: e,
                },
                other => MediaError::Wav {
                    path: path.clone(),
                    source: other,
                },
            })?;
        Ok(WavWriter {
            path,
            writer: Some(writer),
            format,
            since_checkpoint: 0,
        })
    }

    /// Appends a frame, which must have the file's format.
    pub fn write_frame(&mut self, frame: &AudioFrame) -> Result<()> {
        self.write_samples(frame.samples(), frame.format())
    }

    /// Appends interleaved samples in `format` (must be the file's).
    pub fn write_samples(&mut self, samples: &[i16], format: AudioFormat) -> Result<()> {
        if format != self.format {
            return Err(MediaError::FormatMismatch {
                what: self.path.display().to_string(),
                reason: format!("file is {:?}, frame is {format:?}", self.format),
            });
        }
        let path = &self.path;
        let Some(writer) = self.writer.as_mut() else {
            return Err(MediaError::FormatMismatch {
                what: path.display().to_string(),
                reason: "already finished".into(),
            });
        };
        let mut w = writer.get_i16_writer(samples.len() as u32);
        for &s in samples {
            w.write_sample(s);
        }
        w.flush().map_err(|source| MediaError::Wav {
            path: path.clone(),
            source,
        })?;
        self.since_checkpoint += (samples.len() / usize::from(format.channels.max(1))) as u64;
        if self.since_checkpoint >= u64::from(format.sample_rate) {
            self.since_checkpoint = 0;
            writer.flush().map_err(|source| MediaError::Wav {
                path: path.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Writes the final header sizes and closes the file. Also done on drop, with errors logged.
    pub fn finish(&mut self) -> Result<()> {
        match self.writer.take() {
            Some(w) => w.finalize().map_err(|source| MediaError::Wav {
                path: self.path.clone(),
                source,
            }),
            None => Ok(()),
        }
    }
}

impl Drop for WavWriter {
    fn drop(&mut self) {
        if let Err(e) = self.finish() {
            tracing::warn!(error = %e, "closing WAV file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: after SIGKILL the RIFF and data sizes were 0 and players read nothing.
    /// Without finish or drop, the file on disk holds every whole second written.
    #[test]
    fn the_header_is_current_every_second_without_finish() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        let format = AudioFormat::new(48_000, 2).unwrap();
        let mut w = WavWriter::create(&path, format).unwrap();
        let chunk = vec![1000i16; 960 * 2];
        for _ in 0..75 {
            w.write_samples(&chunk, format).unwrap(); // 1.5 s
        }
        // What a killed process leaves: no finish, no drop.
        std::mem::forget(w);
        let r = hound::WavReader::open(&path).unwrap();
        assert_eq!(r.spec().channels, 2);
        assert_eq!(r.duration(), 48_000, "the first whole second");
        let b = std::fs::read(&path).unwrap();
        let riff = u32::from_le_bytes(b[4..8].try_into().unwrap());
        assert_eq!(riff, 36 + 48_000 * 4);
    }

    #[test]
    fn create_new_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        std::fs::write(&path, b"precious").unwrap();
        let format = AudioFormat::new(48_000, 1).unwrap();
        let e = WavWriter::create_new(&path, format)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("a.wav"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    }
}
