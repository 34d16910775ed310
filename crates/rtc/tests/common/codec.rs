//! The codec around the engine's track handles, for the engine's tests: `wavecast-codec`'s Opus
//! and VP8 directly (the users' publishers and subscribers are `wavecast-session`'s).

use std::time::Instant;

use wavecast_codec::{
    I420, MAX_OPUS_DECODED, MAX_OPUS_PACKET, OPUS_FRAME_SAMPLES, OpusDecoder, OpusEncoder,
    Vp8Config, Vp8Decoder, Vp8Encoder,
};
use wavecast_rtc::{LocalTrack, RemoteTrack};

/// Encodes mono 48 kHz PCM into 20 ms Opus packets on a published track.
pub struct AudioSender {
    track: LocalTrack,
    encoder: OpusEncoder,
    pending: Vec<i16>,
    packet: Vec<u8>,
    rtp: u64,
    /// Packets the engine took.
    pub sent: u64,
}

impl AudioSender {
    /// Mono Opus at `bitrate` bits per second on `track`.
    pub fn new(track: LocalTrack, bitrate: u32) -> Self {
        Self {
            track,
            encoder: OpusEncoder::new(1, bitrate).expect("opus encoder"),
            pending: Vec::with_capacity(OPUS_FRAME_SAMPLES),
            packet: vec![0; MAX_OPUS_PACKET],
            rtp: 0,
            sent: 0,
        }
    }

    /// Queue `pcm` (any length); every whole 20 ms goes out as one packet.
    pub fn push(&mut self, pcm: &[i16], capture: Instant) {
        for &s in pcm {
            self.pending.push(s);
            if self.pending.len() < OPUS_FRAME_SAMPLES {
                continue;
            }
            let len = self
                .encoder
                .encode(&self.pending, &mut self.packet)
                .expect("opus encode");
            self.pending.clear();
            if self
                .track
                .write(self.packet[..len].to_vec(), self.rtp, capture)
                .is_ok()
            {
                self.sent += 1;
            }
            self.rtp += OPUS_FRAME_SAMPLES as u64;
        }
    }
}

/// Encodes pictures to VP8 on a published track; answers keyframe requests.
pub struct VideoSender {
    track: LocalTrack,
    encoder: Vp8Encoder,
    start: Option<Instant>,
    /// Frames the engine took, and how many of them were keyframes.
    pub sent: (u64, u64),
}

impl VideoSender {
    /// A VP8 encoder of `config` on `track`.
    pub fn new(track: LocalTrack, config: Vp8Config) -> Self {
        Self {
            track,
            encoder: Vp8Encoder::new(config).expect("vp8 encoder"),
            start: None,
            sent: (0, 0),
        }
    }

    /// Encode and queue one picture captured at `capture`.
    pub fn push(&mut self, image: &I420<'_>, capture: Instant) {
        if self.track.take_keyframe_request() {
            self.encoder.force_keyframe();
        }
        let start = *self.start.get_or_insert(capture);
        let rtp = capture.duration_since(start).as_micros() as u64 * 9 / 100;
        let Some(frame) = self.encoder.encode(image, rtp as i64).expect("vp8 encode") else {
            return;
        };
        let keyframe = frame.keyframe;
        if self.track.write(frame.data.to_vec(), rtp, capture).is_ok() {
            self.sent.0 += 1;
            self.sent.1 += u64::from(keyframe);
        }
    }
}

/// Decodes a subscribed Opus track to mono 48 kHz PCM.
pub struct AudioReader {
    track: RemoteTrack,
    decoder: OpusDecoder,
    out: Vec<i16>,
}

impl AudioReader {
    /// Read `track`.
    pub fn new(track: RemoteTrack) -> Self {
        Self {
            track,
            decoder: OpusDecoder::new(1).expect("opus decoder"),
            out: vec![0; MAX_OPUS_DECODED],
        }
    }

    /// The next decoded packet's samples (undecodable packets skipped); `None` when the track
    /// ended.
    pub async fn recv(&mut self) -> Option<&[i16]> {
        loop {
            let frame = self.track.recv().await?;
            if let Ok(n) = self.decoder.decode(&frame.data, &mut self.out) {
                return Some(&self.out[..n]);
            }
        }
    }
}

/// One decoded picture's RTP time and size.
#[derive(Debug, Clone, Copy)]
pub struct Picture {
    /// RTP time (90 kHz).
    pub rtp_time: u64,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// Decodes a subscribed VP8 track; asks for a keyframe after a decode error.
pub struct VideoReader {
    track: RemoteTrack,
    decoder: Vp8Decoder,
    errors: u64,
}

impl VideoReader {
    /// Read `track`.
    pub fn new(track: RemoteTrack) -> Self {
        Self {
            track,
            decoder: Vp8Decoder::new().expect("vp8 decoder"),
            errors: 0,
        }
    }

    /// The next decoded picture; `None` when the track ended.
    pub async fn recv(&mut self) -> Option<Picture> {
        loop {
            let frame = self.track.recv().await?;
            match self.decoder.decode(&frame.data) {
                Ok(Some(img)) => {
                    return Some(Picture {
                        rtp_time: frame.rtp_time,
                        width: img.image.width,
                        height: img.image.height,
                    });
                }
                Ok(None) => {}
                Err(_) => {
                    self.errors += 1;
                    self.track.request_keyframe();
                }
            }
        }
    }

    /// Pictures decoded and frames that failed to decode.
    pub fn counts(&self) -> (u64, u64) {
        (self.decoder.frames(), self.errors)
    }

    /// The track.
    pub fn track(&self) -> &RemoteTrack {
        &self.track
    }
}
