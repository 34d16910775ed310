//! Sound devices through cpal (feature `cpal`).
//!
//! Both directions run the device callback on cpal's thread against one half of a
//! [`wavecast_pipeline::audio_ring`]: the callback never locks or allocates, and the ring's
//! counters tell overflow and underflow.

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use wavecast_pipeline::{
    AudioFormat, AudioFrame, AudioRingConfig, AudioRingConsumer, AudioRingStatsHandle, Timestamp,
    audio_ring,
};

use crate::error::{MediaError, Result};
use crate::output::{AudioSink, SinkStats};

fn device_err(name: Option<&str>, reason: impl std::fmt::Display) -> MediaError {
    MediaError::Device {
        device: name.unwrap_or("default").to_string(),
        reason: reason.to_string(),
    }
}

fn find_device(name: Option<&str>, output: bool) -> Result<cpal::Device> {
    let host = cpal::default_host();
    match name {
        None => if output {
            host.default_output_device()
        } else {
            host.default_input_device()
        }
        .ok_or_else(|| device_err(None, "no default device")),
        Some(wanted) => {
            let devices = if output {
                host.output_devices()
            } else {
                host.input_devices()
            }
            .map_err(|e| device_err(name, e))?;
            for d in devices {
                if device_matches(&d, wanted) {
                    return Ok(d);
                }
            }
            Err(device_err(name, "no such device"))
        }
    }
}

/// A device answers to its id (`alsa:null`), the id without the host (`null`) or its
/// description (`Discard all samples ...`).
fn device_matches(device: &cpal::Device, wanted: &str) -> bool {
    let id = device.id().map(|id| id.to_string()).unwrap_or_default();
    let bare = id.split_once(':').map(|(_, rest)| rest).unwrap_or(&id);
    id == wanted || bare == wanted || device.description().is_ok_and(|d| d.name() == wanted)
}

fn stream_config(format: AudioFormat) -> cpal::StreamConfig {
    cpal::StreamConfig {
        channels: format.channels,
        sample_rate: format.sample_rate,
        buffer_size: cpal::BufferSize::Default,
    }
}

/// Plays audio on a device. [`write`](AudioSink::write) pushes into the ring; the device
/// callback pulls with a 40 ms target latency.
pub struct DeviceOutput {
    stream: Option<cpal::Stream>,
    label: String,
    producer: wavecast_pipeline::AudioRingProducer,
    stats: SinkStats,
}

impl DeviceOutput {
    /// Opens device `name` (or the default) for `format` and starts playing (silence until
    /// audio arrives).
    pub fn open(name: Option<&str>, format: AudioFormat) -> Result<Self> {
        let device = find_device(name, true)?;
        let (producer, mut consumer) = audio_ring(AudioRingConfig::new(format))?;
        let label = name.unwrap_or("default").to_string();
        let callback_label = label.clone();
        let stream = device
            .build_output_stream(
                stream_config(format),
                move |out: &mut [i16], _| {
                    consumer.pop(out);
                },
                move |e| tracing::warn!(device = %callback_label, error = %e, "audio output error"),
                None,
            )
            .map_err(|e| device_err(name, e))?;
        stream.play().map_err(|e| device_err(name, e))?;
        Ok(DeviceOutput {
            stream: Some(stream),
            label,
            producer,
            stats: SinkStats::default(),
        })
    }

    /// The ring's counters (underflow, overflow, buffered latency).
    pub fn ring_stats(&self) -> AudioRingStatsHandle {
        self.producer.stats_handle()
    }
}

impl AudioSink for DeviceOutput {
    fn write(&mut self, frame: &AudioFrame) -> Result<()> {
        if self.stream.is_none() {
            return Err(device_err(Some(&self.label), "output already finished"));
        }
        let written = self.producer.push(frame)?;
        self.stats.frames += 1;
        self.stats.samples += written as u64;
        self.stats.dropped_samples += (frame.samples().len() - written) as u64;
        Ok(())
    }
    /// Lets the device play what is buffered (up to the ring's size, while the callback keeps
    /// reading), then closes the stream. Idempotent.
    fn finish(&mut self) -> Result<()> {
        if self.stream.is_none() {
            return Ok(());
        }
        // Play out what is buffered: wait while the callback keeps reading (a remainder below
        // the ring's target latency is never started, so "no progress for 50 ms" ends the wait).
        use std::time::{Duration, Instant};
        let stats = self.producer.stats_handle();
        let deadline = Instant::now() + Duration::from_millis(500);
        let (mut last, mut progressed) = (stats.stats().samples_read, Instant::now());
        while stats.stats().buffered_samples > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            let read = stats.stats().samples_read;
            if read != last {
                (last, progressed) = (read, Instant::now());
            } else if progressed.elapsed() > Duration::from_millis(50) {
                break;
            }
        }
        self.stream = None;
        Ok(())
    }
    fn stats(&self) -> SinkStats {
        self.stats
    }
}

/// Captures audio from a device into a ring; read it with the returned consumer.
pub struct DeviceInput {
    _stream: cpal::Stream,
    stats: AudioRingStatsHandle,
}

impl DeviceInput {
    /// Opens capture device `name` (or the default) in `format`. Samples arrive in the returned
    /// consumer, timestamped with the callback time.
    pub fn open(name: Option<&str>, format: AudioFormat) -> Result<(Self, AudioRingConsumer)> {
        let device = find_device(name, false)?;
        let (mut producer, consumer) = audio_ring(AudioRingConfig::new(format))?;
        let stats = producer.stats_handle();
        let label = name.unwrap_or("default").to_string();
        let stream = device
            .build_input_stream(
                stream_config(format),
                move |data: &[i16], _| {
                    producer.push_samples(data, Timestamp::now());
                },
                move |e| tracing::warn!(device = %label, error = %e, "audio input error"),
                None,
            )
            .map_err(|e| device_err(name, e))?;
        stream.play().map_err(|e| device_err(name, e))?;
        Ok((
            DeviceInput {
                _stream: stream,
                stats,
            },
            consumer,
        ))
    }

    /// The ring's counters.
    pub fn ring_stats(&self) -> AudioRingStatsHandle {
        self.stats.clone()
    }
}

/// An audio device as cpal lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Stable id, e.g. `alsa:null`; `device:ID` (with or without the host prefix) selects it.
    pub id: String,
    /// Human-readable description.
    pub name: String,
}

fn list(devices: impl Iterator<Item = cpal::Device>) -> Vec<DeviceInfo> {
    devices
        .map(|d| DeviceInfo {
            id: d.id().map(|id| id.to_string()).unwrap_or_default(),
            name: d
                .description()
                .map(|desc| desc.name().to_string())
                .unwrap_or_default(),
        })
        .collect()
}

/// The output devices cpal sees (on a headless Linux box usually only ALSA's `null`).
pub fn output_devices() -> Vec<DeviceInfo> {
    cpal::default_host()
        .output_devices()
        .map(list)
        .unwrap_or_default()
}

/// The capture devices cpal sees.
pub fn input_devices() -> Vec<DeviceInfo> {
    cpal::default_host()
        .input_devices()
        .map(list)
        .unwrap_or_default()
}
