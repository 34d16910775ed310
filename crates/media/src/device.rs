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
                if d.description()
                    .map(|desc| desc.name() == wanted)
                    .unwrap_or(false)
                {
                    return Ok(d);
                }
            }
            Err(device_err(name, "no such device"))
        }
    }
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
    stream: cpal::Stream,
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
        let stream = device
            .build_output_stream(
                stream_config(format),
                move |out: &mut [i16], _| {
                    consumer.pop(out);
                },
                move |e| tracing::warn!(device = %label, error = %e, "audio output error"),
                None,
            )
            .map_err(|e| device_err(name, e))?;
        stream.play().map_err(|e| device_err(name, e))?;
        Ok(DeviceOutput {
            stream,
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
        let written = self.producer.push(frame)?;
        self.stats.frames += 1;
        self.stats.samples += written as u64;
        self.stats.dropped_samples += (frame.samples().len() - written) as u64;
        Ok(())
    }
    fn finish(&mut self) -> Result<()> {
        self.stream.pause().map_err(|e| device_err(None, e))
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

/// Names of the output devices cpal sees (empty on a headless machine).
pub fn output_device_names() -> Vec<String> {
    cpal::default_host()
        .output_devices()
        .map(|devices| {
            devices
                .filter_map(|d| d.description().ok().map(|desc| desc.name().to_string()))
                .collect()
        })
        .unwrap_or_default()
}
