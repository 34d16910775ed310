//! Audio outputs and inputs chosen by a short specification string, so tools run headless:
//! `null`, `wav:PATH`, and with the `cpal` feature `device` / `device:NAME`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::Serialize;
use wavecast_pipeline::{AudioFormat, AudioFrame};

use crate::error::{MediaError, Result};
use crate::wav::WavWriter;

/// Where decoded audio goes.
pub trait AudioSink {
    /// Takes one frame. Real-time sinks never block: they buffer up to their target latency and
    /// count what they drop.
    fn write(&mut self, frame: &AudioFrame) -> Result<()>;
    /// Flushes and closes (idempotent).
    fn finish(&mut self) -> Result<()>;
    /// Counters.
    fn stats(&self) -> SinkStats;
}

/// Counters of an [`AudioSink`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SinkStats {
    /// Frames accepted.
    pub frames: u64,
    /// Samples (interleaved) accepted.
    pub samples: u64,
    /// Samples dropped (device sinks: ring overflow).
    pub dropped_samples: u64,
}

/// A parsed audio output specification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputSpec {
    /// Discard (counting).
    Null,
    /// Write a 16-bit WAV file.
    Wav(PathBuf),
    /// A sound device through cpal; `None` is the default device.
    Device(Option<String>),
}

impl FromStr for OutputSpec {
    type Err = MediaError;

    fn from_str(s: &str) -> Result<Self> {
        parse_spec(s, "output").map(|(kind, arg)| match kind {
            Kind::Null => OutputSpec::Null,
            Kind::Wav => OutputSpec::Wav(PathBuf::from(arg.unwrap_or_default())),
            Kind::Device => OutputSpec::Device(arg.map(str::to_owned)),
        })
    }
}

impl fmt::Display for OutputSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputSpec::Null => f.write_str("null"),
            OutputSpec::Wav(p) => write!(f, "wav:{}", p.display()),
            OutputSpec::Device(None) => f.write_str("device"),
            OutputSpec::Device(Some(name)) => write!(f, "device:{name}"),
        }
    }
}

/// A parsed audio input specification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputSpec {
    /// Read a WAV file (looping is up to the caller, see [`Looping`](crate::Looping)).
    Wav(PathBuf),
    /// A capture device through cpal; `None` is the default device.
    Device(Option<String>),
}

impl FromStr for InputSpec {
    type Err = MediaError;

    fn from_str(s: &str) -> Result<Self> {
        match parse_spec(s, "input")? {
            (Kind::Wav, arg) => Ok(InputSpec::Wav(PathBuf::from(arg.unwrap_or_default()))),
            (Kind::Device, arg) => Ok(InputSpec::Device(arg.map(str::to_owned))),
            (Kind::Null, _) => Err(MediaError::BadSpec {
                kind: "input",
                spec: s.into(),
                reason: "`null` is an output; inputs are `wav:PATH`, `device` or `device:NAME`"
                    .into(),
            }),
        }
    }
}

enum Kind {
    Null,
    Wav,
    Device,
}

fn parse_spec<'a>(s: &'a str, kind: &'static str) -> Result<(Kind, Option<&'a str>)> {
    let bad = |reason: &str| MediaError::BadSpec {
        kind,
        spec: s.into(),
        reason: reason.into(),
    };
    let (head, arg) = match s.split_once(':') {
        Some((h, a)) => (h, Some(a)),
        None => (s, None),
    };
    match (head, arg) {
        ("null", None) => Ok((Kind::Null, None)),
        ("wav", Some(path)) if !path.is_empty() => Ok((Kind::Wav, Some(path))),
        ("wav", _) => Err(bad("`wav` needs a path: `wav:PATH`")),
        ("device" | "default", None) => Ok((Kind::Device, None)),
        ("device", Some(name)) if !name.is_empty() => Ok((Kind::Device, Some(name))),
        _ => Err(bad(
            "expected `null`, `wav:PATH`, `device` or `device:NAME`",
        )),
    }
}

/// Discards audio, counting it.
#[derive(Debug, Default)]
pub struct NullSink {
    stats: SinkStats,
}

impl AudioSink for NullSink {
    fn write(&mut self, frame: &AudioFrame) -> Result<()> {
        self.stats.frames += 1;
        self.stats.samples += frame.samples().len() as u64;
        Ok(())
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
    fn stats(&self) -> SinkStats {
        self.stats
    }
}

/// Writes audio to a WAV file.
pub struct WavSink {
    writer: WavWriter,
    stats: SinkStats,
}

impl WavSink {
    /// Creates the file for `format`.
    pub fn create(path: impl Into<PathBuf>, format: AudioFormat) -> Result<Self> {
        Ok(WavSink {
            writer: WavWriter::create(path.into(), format)?,
            stats: SinkStats::default(),
        })
    }
}

impl AudioSink for WavSink {
    fn write(&mut self, frame: &AudioFrame) -> Result<()> {
        self.writer.write_frame(frame)?;
        self.stats.frames += 1;
        self.stats.samples += frame.samples().len() as u64;
        Ok(())
    }
    fn finish(&mut self) -> Result<()> {
        self.writer.finish()
    }
    fn stats(&self) -> SinkStats {
        self.stats
    }
}

/// Opens the output `spec` for audio in `format`.
///
/// `device` outputs need the `cpal` cargo feature; without it they are an error saying so.
pub fn open_output(spec: &OutputSpec, format: AudioFormat) -> Result<Box<dyn AudioSink>> {
    match spec {
        OutputSpec::Null => Ok(Box::new(NullSink::default())),
        OutputSpec::Wav(path) => Ok(Box::new(WavSink::create(path.clone(), format)?)),
        #[cfg(feature = "cpal")]
        OutputSpec::Device(name) => Ok(Box::new(crate::device::DeviceOutput::open(
            name.as_deref(),
            format,
        )?)),
        #[cfg(not(feature = "cpal"))]
        OutputSpec::Device(name) => Err(MediaError::Device {
            device: name.clone().unwrap_or_else(|| "default".into()),
            reason: "built without audio device support (enable the `cpal` feature)".into(),
        }),
    }
}
