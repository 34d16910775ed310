//! Sound devices through cpal, on ALSA's `null` device (present on any Linux with alsa-lib, no
//! sound card needed): `cargo test -p wavecast-media --features cpal --test device`.
#![cfg(all(feature = "cpal", target_os = "linux"))]

use std::time::{Duration, Instant};

use wavecast_media::device::{DeviceInput, DeviceOutput, input_devices, output_devices};
use wavecast_media::{AudioSink, MediaError, OutputSpec, open_output};
use wavecast_pipeline::{AudioFormat, AudioFrameMut};

const FORMAT: AudioFormat = AudioFormat::STEREO_48K;

#[test]
fn alsa_null_device_is_listed() {
    let outputs = output_devices();
    assert!(outputs.iter().any(|d| d.id == "alsa:null"), "{outputs:?}");
    assert!(input_devices().iter().any(|d| d.id == "alsa:null"));
}

#[test]
fn output_device_callback_drains_the_ring() {
    let mut out = DeviceOutput::open(Some("null"), FORMAT).unwrap();
    let stats = out.ring_stats();
    let frame = AudioFrameMut::from_samples(FORMAT, &[1000; 960]).freeze();
    let start = Instant::now();
    for i in 0..30u32 {
        out.write(&frame).unwrap();
        // Pace like a live source (10 ms per frame).
        let due = start + Duration::from_millis(10 * u64::from(i + 1));
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while stats.stats().samples_read == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = stats.stats();
    assert_eq!(s.samples_written, 30 * 960, "{s:?}");
    assert!(
        s.samples_read > 0,
        "the device callback consumed audio: {s:?}"
    );
    assert_eq!(out.stats().frames, 30);
    out.finish().unwrap();
}

#[test]
fn input_device_fills_the_ring() {
    let (input, mut consumer) = DeviceInput::open(Some("null"), FORMAT).unwrap();
    let mut buf = [1i16; 960];
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut got = 0;
    while got == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        got = consumer.pop(&mut buf);
    }
    assert_eq!(got, 960, "{:?}", input.ring_stats().stats());
    assert!(buf.iter().all(|&s| s == 0), "ALSA null captures silence");
}

#[test]
fn unknown_device_is_a_clear_error() {
    let err = open_output(&OutputSpec::Device(Some("no-such-card".into())), FORMAT)
        .err()
        .unwrap();
    assert!(matches!(err, MediaError::Device { .. }), "{err}");
    assert!(
        err.to_string().contains("no-such-card: no such device"),
        "{err}"
    );
}
