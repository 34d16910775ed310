//! Encode-and-publish and receive-and-decode helpers over the track handles.
//!
//! These run on the caller's thread (a capture or decoder thread), never on the engine task.

use std::time::Instant;

use wavecast_codec::{
    CodecError, DecodedImage, I420, MAX_OPUS_DECODED, MAX_OPUS_PACKET, OPUS_FRAME_SAMPLES,
    OPUS_SAMPLE_RATE, OpusDecoder, OpusEncoder, Vp8Config, Vp8Decoder, Vp8Encoder,
};
use wavecast_pipeline::{AudioFrame, VideoFrame};

use crate::error::EngineError;
use crate::track::{EncodedFrame, LocalTrack, RemoteTrack, TrackKind, WriteError};

fn wrong_kind(track: &str, want: TrackKind) -> EngineError {
    EngineError::Codec(CodecError::Unsupported {
        what: format!("track {track} is not a {want:?} track"),
    })
}

/// Encodes 48 kHz PCM to Opus (20 ms packets) and writes it to a published audio track.
#[derive(Debug)]
pub struct AudioPublisher {
    track: LocalTrack,
    encoder: OpusEncoder,
    pending: Vec<i16>,
    pending_since: Option<Instant>,
    packet: Box<[u8; MAX_OPUS_PACKET]>,
    /// RTP time (48 kHz) of the next packet.
    rtp: u64,
    sent: u64,
}

impl AudioPublisher {
    /// Wrap a published audio track; `channels` is 1 or 2, `bitrate` in bits per second.
    pub fn new(track: LocalTrack, channels: u16, bitrate: u32) -> Result<Self, EngineError> {
        if track.kind() != TrackKind::Audio {
            return Err(wrong_kind(track.sid(), TrackKind::Audio));
        }
        Ok(Self {
            track,
            encoder: OpusEncoder::new(channels, bitrate)?,
            pending: Vec::with_capacity(OPUS_FRAME_SAMPLES * usize::from(channels) * 2),
            pending_since: None,
            packet: Box::new([0; MAX_OPUS_PACKET]),
            rtp: 0,
            sent: 0,
        })
    }

    /// The track.
    pub fn track(&self) -> &LocalTrack {
        &self.track
    }

    /// Change the Opus bitrate.
    pub fn set_bitrate(&mut self, bitrate: u32) -> Result<(), EngineError> {
        Ok(self.encoder.set_bitrate(bitrate)?)
    }

    /// Packets handed to the engine.
    pub fn packets_sent(&self) -> u64 {
        self.sent
    }

    /// Push interleaved 48 kHz samples captured at `capture` (any length): every whole 20 ms is
    /// encoded and queued. A full engine queue drops the packet (counted on the track).
    pub fn push(&mut self, pcm: &[i16], capture: Instant) -> Result<(), EngineError> {
        let ch = usize::from(self.encoder.channels());
        let frame_len = OPUS_FRAME_SAMPLES * ch;
        if self.pending.is_empty() {
            self.pending_since = Some(capture);
        }
        let mut input = pcm;
        while !input.is_empty() {
            let take = (frame_len - self.pending.len()).min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.pending.len() == frame_len {
                let len = self.encoder.encode(&self.pending, &mut self.packet[..])?;
                self.pending.clear();
                let at = self.pending_since.take().unwrap_or(capture);
                match self.track.write(self.packet[..len].to_vec(), self.rtp, at) {
                    Ok(()) => self.sent += 1,
                    Err(WriteError::Full) => {}
                    Err(WriteError::Closed) => return Err(EngineError::Closed),
                }
                self.rtp += OPUS_FRAME_SAMPLES as u64;
                self.pending_since = Some(capture);
            }
        }
        Ok(())
    }

    /// Push a pipeline frame (must be 48 kHz with the encoder's channel count).
    pub fn push_frame(&mut self, frame: &AudioFrame, capture: Instant) -> Result<(), EngineError> {
        if frame.sample_rate() != OPUS_SAMPLE_RATE || frame.channels() != self.encoder.channels() {
            return Err(EngineError::Codec(CodecError::BadFrame {
                what: format!(
                    "{} Hz × {} channels given to a 48000 Hz × {} Opus encoder",
                    frame.sample_rate(),
                    frame.channels(),
                    self.encoder.channels()
                ),
            }));
        }
        self.push(frame.samples(), capture)
    }
}

/// Encodes pictures to VP8 and writes them to a published video track; answers the remote
/// side's keyframe requests.
#[derive(Debug)]
pub struct VideoPublisher {
    track: LocalTrack,
    encoder: Vp8Encoder,
    start: Option<Instant>,
    last_rtp: Option<u64>,
    sent: u64,
    keyframes: u64,
}

impl VideoPublisher {
    /// Wrap a published video track with an encoder of `config`.
    pub fn new(track: LocalTrack, config: Vp8Config) -> Result<Self, EngineError> {
        if track.kind() != TrackKind::Video {
            return Err(wrong_kind(track.sid(), TrackKind::Video));
        }
        Ok(Self {
            track,
            encoder: Vp8Encoder::new(config)?,
            start: None,
            last_rtp: None,
            sent: 0,
            keyframes: 0,
        })
    }

    /// The track.
    pub fn track(&self) -> &LocalTrack {
        &self.track
    }

    /// Change the target bitrate (bits per second).
    pub fn set_bitrate(&mut self, bitrate: u32) -> Result<(), EngineError> {
        Ok(self.encoder.set_bitrate(bitrate)?)
    }

    /// Frames handed to the engine, and how many of them were keyframes.
    pub fn frames_sent(&self) -> (u64, u64) {
        (self.sent, self.keyframes)
    }

    /// Encode and queue one picture captured at `capture`. Returns whether a frame was queued.
    pub fn push(&mut self, image: &I420<'_>, capture: Instant) -> Result<bool, EngineError> {
        if self.track.take_keyframe_request() {
            self.encoder.force_keyframe();
        }
        let start = *self.start.get_or_insert(capture);
        let mut rtp = (capture.saturating_duration_since(start).as_micros() as u64) * 9 / 100;
        if let Some(last) = self.last_rtp
            && rtp <= last
        {
            rtp = last + 1; // strictly increasing even for same-instant captures
        }
        let Some(frame) = self.encoder.encode(image, rtp as i64)? else {
            return Ok(false);
        };
        let keyframe = frame.keyframe;
        match self.track.write(frame.data.to_vec(), rtp, capture) {
            Ok(()) => {
                self.last_rtp = Some(rtp);
                self.sent += 1;
                self.keyframes += u64::from(keyframe);
                Ok(true)
            }
            Err(WriteError::Full) => Ok(false),
            Err(WriteError::Closed) => Err(EngineError::Closed),
        }
    }

    /// Encode and queue an I420 pipeline frame.
    pub fn push_frame(
        &mut self,
        frame: &VideoFrame,
        capture: Instant,
    ) -> Result<bool, EngineError> {
        let image = wavecast_codec::pipeline::i420_of(frame)?;
        self.push(&image, capture)
    }
}

/// Receives a subscribed audio track and decodes it to 48 kHz PCM.
#[derive(Debug)]
pub struct AudioSubscriber {
    track: RemoteTrack,
    decoder: OpusDecoder,
    out: Vec<i16>,
    decoded: u64,
    errors: u64,
}

/// One decoded audio packet.
#[derive(Debug)]
pub struct DecodedAudio<'a> {
    /// Interleaved 48 kHz samples.
    pub samples: &'a [i16],
    /// Channels.
    pub channels: u16,
    /// RTP time of the packet (48 kHz).
    pub rtp_time: u64,
    /// When it arrived.
    pub received_at: Instant,
}

impl AudioSubscriber {
    /// Decode `track` to `channels` (1 or 2).
    pub fn new(track: RemoteTrack, channels: u16) -> Result<Self, EngineError> {
        if track.kind() != TrackKind::Audio {
            return Err(wrong_kind(track.sid(), TrackKind::Audio));
        }
        Ok(Self {
            track,
            decoder: OpusDecoder::new(channels)?,
            out: vec![0; MAX_OPUS_DECODED * usize::from(channels)],
            decoded: 0,
            errors: 0,
        })
    }

    /// The track.
    pub fn track(&self) -> &RemoteTrack {
        &self.track
    }

    /// Packets decoded and packets that failed to decode.
    pub fn counts(&self) -> (u64, u64) {
        (self.decoded, self.errors)
    }

    fn decode_one(&mut self, frame: &EncodedFrame) -> Option<usize> {
        match self.decoder.decode(&frame.data, &mut self.out) {
            Ok(n) => Some(n),
            Err(e) => {
                self.errors += 1;
                tracing::debug!("opus decode on {}: {e}", self.track.sid());
                None
            }
        }
    }

    fn output(&mut self, n: usize, frame: &EncodedFrame) -> DecodedAudio<'_> {
        self.decoded += 1;
        let ch = self.decoder.channels();
        DecodedAudio {
            samples: &self.out[..n * usize::from(ch)],
            channels: ch,
            rtp_time: frame.rtp_time,
            received_at: frame.received_at,
        }
    }

    /// The next decoded packet (skipping undecodable ones); `None` when the track ended.
    pub async fn recv(&mut self) -> Option<DecodedAudio<'_>> {
        let (n, frame) = loop {
            let frame = self.track.recv().await?;
            if let Some(n) = self.decode_one(&frame) {
                break (n, frame);
            }
        };
        Some(self.output(n, &frame))
    }

    /// Blocking variant of [`AudioSubscriber::recv`] for decoder threads.
    pub fn blocking_recv(&mut self) -> Option<DecodedAudio<'_>> {
        let (n, frame) = loop {
            let frame = self.track.blocking_recv()?;
            if let Some(n) = self.decode_one(&frame) {
                break (n, frame);
            }
        };
        Some(self.output(n, &frame))
    }
}

/// Receives a subscribed video track and decodes it; asks for a keyframe after decode errors.
#[derive(Debug)]
pub struct VideoSubscriber {
    track: RemoteTrack,
    decoder: Vp8Decoder,
    errors: u64,
}

/// One decoded picture.
#[derive(Debug)]
pub struct DecodedVideo<'a> {
    /// The picture (borrowed from the decoder).
    pub image: DecodedImage<'a>,
    /// RTP time of the frame (90 kHz).
    pub rtp_time: u64,
    /// When it arrived.
    pub received_at: Instant,
    /// Whether it was a keyframe.
    pub keyframe: bool,
}

impl VideoSubscriber {
    /// Decode `track`.
    pub fn new(track: RemoteTrack) -> Result<Self, EngineError> {
        if track.kind() != TrackKind::Video {
            return Err(wrong_kind(track.sid(), TrackKind::Video));
        }
        Ok(Self {
            track,
            decoder: Vp8Decoder::new()?,
            errors: 0,
        })
    }

    /// The track.
    pub fn track(&self) -> &RemoteTrack {
        &self.track
    }

    /// Pictures decoded and frames that failed to decode.
    pub fn counts(&self) -> (u64, u64) {
        (self.decoder.frames(), self.errors)
    }

    /// The next decoded picture; `None` when the track ended.
    pub async fn recv(&mut self) -> Option<DecodedVideo<'_>> {
        let frame = loop {
            let frame = self.track.recv().await?;
            if self.decode_ok(&frame) {
                break frame;
            }
        };
        self.last(frame)
    }

    /// Blocking variant of [`VideoSubscriber::recv`] for decoder threads.
    pub fn blocking_recv(&mut self) -> Option<DecodedVideo<'_>> {
        let frame = loop {
            let frame = self.track.blocking_recv()?;
            if self.decode_ok(&frame) {
                break frame;
            }
        };
        self.last(frame)
    }

    fn decode_ok(&mut self, frame: &EncodedFrame) -> bool {
        match self.decoder.decode_frame(&frame.data) {
            Ok(got) => got,
            Err(e) => {
                self.errors += 1;
                tracing::debug!(
                    "vp8 decode on {}: {e}; asking for a keyframe",
                    self.track.sid()
                );
                self.track.request_keyframe();
                false
            }
        }
    }

    fn last(&mut self, frame: EncodedFrame) -> Option<DecodedVideo<'_>> {
        let image = self.decoder.image()?;
        Some(DecodedVideo {
            image,
            rtp_time: frame.rtp_time,
            received_at: frame.received_at,
            keyframe: frame.keyframe,
        })
    }
}
