//! Encode-and-publish and receive-and-decode helpers that survive a rejoin.
//!
//! They wrap the engine's helpers ([`wavecast_rtc::AudioPublisher`] and friends) around the
//! session's track handles: when the session rejoins and re-publishes, a publisher builds a fresh
//! engine helper (a new encoder, whose first video frame is a keyframe) on the new track; a
//! subscriber keeps its decoder and reads the new track's frames (the engine passes video on only
//! from a keyframe). Like the engine's helpers they run on the caller's thread.

use std::time::Instant;

use wavecast_codec::{I420, OpusStreamDecoder, StreamStats, Vp8Config, Vp8Decoder};
use wavecast_pipeline::{AudioFrame, VideoFrame};
use wavecast_rtc::{DecodedAudio, DecodedVideo, EngineError, TrackKind};

use super::error::SessionError;
use super::tracks::{PublishedTrack, SubscribedTrack};

fn codec_error(operation: String, source: impl Into<EngineError>) -> SessionError {
    SessionError::Engine {
        operation,
        source: source.into(),
    }
}

fn wrong_kind(name: &str, want: TrackKind) -> SessionError {
    codec_error(
        format!("wrap track {name:?}"),
        EngineError::Codec(wavecast_codec::CodecError::Unsupported {
            what: format!("track {name:?} is not a {want:?} track"),
        }),
    )
}

/// Encodes 48 kHz PCM to Opus and publishes it on a session track, across rejoins.
#[derive(Debug)]
pub struct AudioPublisher {
    track: PublishedTrack,
    channels: u16,
    bitrate: u32,
    bound: Option<(u64, wavecast_rtc::AudioPublisher)>,
    /// Packets sent by helpers of earlier bindings.
    sent_before: u64,
    /// Pushes dropped while reconnecting.
    dropped: u64,
}

impl AudioPublisher {
    /// Wrap a published audio track; `channels` 1 or 2, `bitrate` in bits per second.
    pub fn new(track: PublishedTrack, channels: u16, bitrate: u32) -> Result<Self, SessionError> {
        if track.kind() != TrackKind::Audio {
            return Err(wrong_kind(track.name(), TrackKind::Audio));
        }
        let mut p = Self {
            track,
            channels,
            bitrate,
            bound: None,
            sent_before: 0,
            dropped: 0,
        };
        p.bind()?;
        Ok(p)
    }

    /// The session track.
    pub fn track(&self) -> &PublishedTrack {
        &self.track
    }

    fn bind(&mut self) -> Result<bool, SessionError> {
        let generation = self.track.generation();
        if self.bound.as_ref().is_some_and(|(g, _)| *g == generation) {
            return Ok(true);
        }
        if let Some((_, old)) = self.bound.take() {
            self.sent_before += old.packets_sent();
        }
        let Some(engine_track) = self.track.engine_track() else {
            return Ok(false);
        };
        let p = wavecast_rtc::AudioPublisher::new(engine_track, self.channels, self.bitrate)
            .map_err(|e| codec_error(format!("start Opus on {:?}", self.track.name()), e))?;
        self.bound = Some((generation, p));
        Ok(true)
    }

    /// Change the Opus bitrate (kept across rejoins).
    pub fn set_bitrate(&mut self, bitrate: u32) -> Result<(), SessionError> {
        self.bitrate = bitrate;
        if let Some((_, p)) = self.bound.as_mut() {
            p.set_bitrate(bitrate)
                .map_err(|e| codec_error("set Opus bitrate".into(), e))?;
        }
        Ok(())
    }

    /// Packets handed to the engine over all bindings.
    pub fn packets_sent(&self) -> u64 {
        self.sent_before + self.bound.as_ref().map_or(0, |(_, p)| p.packets_sent())
    }

    /// Pushes dropped because the session was reconnecting.
    pub fn dropped_while_reconnecting(&self) -> u64 {
        self.dropped
    }

    /// Push interleaved 48 kHz samples (any length). While the session is reconnecting the
    /// samples are dropped and counted; encoding resumes on the new track after the rejoin.
    pub fn push(&mut self, pcm: &[i16], capture: Instant) -> Result<(), SessionError> {
        if !self.bind()? {
            self.dropped += 1;
            return Ok(());
        }
        let Some((_, p)) = self.bound.as_mut() else {
            return Ok(());
        };
        match p.push(pcm, capture) {
            Ok(()) => Ok(()),
            Err(EngineError::Closed) => {
                // The engine ended under us: the session rebinds the track after its rejoin.
                self.dropped += 1;
                Ok(())
            }
            Err(e) => Err(codec_error(
                format!("encode audio for {:?}", self.track.name()),
                e,
            )),
        }
    }

    /// Push a pipeline frame (48 kHz, the encoder's channel count).
    pub fn push_frame(&mut self, frame: &AudioFrame, capture: Instant) -> Result<(), SessionError> {
        if frame.channels() != self.channels {
            return Err(codec_error(
                format!("encode audio for {:?}", self.track.name()),
                EngineError::Codec(wavecast_codec::CodecError::BadFrame {
                    what: format!(
                        "{} channels given to a {}-channel Opus encoder",
                        frame.channels(),
                        self.channels
                    ),
                }),
            ));
        }
        if !self.bind()? {
            self.dropped += 1;
            return Ok(());
        }
        let Some((_, p)) = self.bound.as_mut() else {
            return Ok(());
        };
        match p.push_frame(frame, capture) {
            Ok(()) | Err(EngineError::Closed) => Ok(()),
            Err(e) => Err(codec_error(
                format!("encode audio for {:?}", self.track.name()),
                e,
            )),
        }
    }
}

/// Encodes pictures to VP8 and publishes them on a session track, across rejoins; answers
/// keyframe requests.
#[derive(Debug)]
pub struct VideoPublisher {
    track: PublishedTrack,
    config: Vp8Config,
    bound: Option<(u64, wavecast_rtc::VideoPublisher)>,
    sent_before: (u64, u64),
    dropped: u64,
}

impl VideoPublisher {
    /// Wrap a published video track with a VP8 encoder of `config`.
    pub fn new(track: PublishedTrack, config: Vp8Config) -> Result<Self, SessionError> {
        if track.kind() != TrackKind::Video {
            return Err(wrong_kind(track.name(), TrackKind::Video));
        }
        let mut p = Self {
            track,
            config,
            bound: None,
            sent_before: (0, 0),
            dropped: 0,
        };
        p.bind()?;
        Ok(p)
    }

    /// The session track.
    pub fn track(&self) -> &PublishedTrack {
        &self.track
    }

    fn bind(&mut self) -> Result<bool, SessionError> {
        let generation = self.track.generation();
        if self.bound.as_ref().is_some_and(|(g, _)| *g == generation) {
            return Ok(true);
        }
        if let Some((_, old)) = self.bound.take() {
            let (f, k) = old.frames_sent();
            self.sent_before.0 += f;
            self.sent_before.1 += k;
        }
        let Some(engine_track) = self.track.engine_track() else {
            return Ok(false);
        };
        let p = wavecast_rtc::VideoPublisher::new(engine_track, self.config)
            .map_err(|e| codec_error(format!("start VP8 on {:?}", self.track.name()), e))?;
        self.bound = Some((generation, p));
        Ok(true)
    }

    /// Change the target bitrate (bits per second; kept across rejoins).
    pub fn set_bitrate(&mut self, bitrate: u32) -> Result<(), SessionError> {
        self.config.bitrate = bitrate;
        if let Some((_, p)) = self.bound.as_mut() {
            p.set_bitrate(bitrate)
                .map_err(|e| codec_error("set VP8 bitrate".into(), e))?;
        }
        Ok(())
    }

    /// Frames handed to the engine over all bindings, and how many were keyframes.
    pub fn frames_sent(&self) -> (u64, u64) {
        let (f, k) = self.bound.as_ref().map_or((0, 0), |(_, p)| p.frames_sent());
        (self.sent_before.0 + f, self.sent_before.1 + k)
    }

    /// Pictures dropped because the session was reconnecting.
    pub fn dropped_while_reconnecting(&self) -> u64 {
        self.dropped
    }

    /// Encode and queue one picture; `Ok(false)` when no frame was queued (encoder skipped it,
    /// queue full, or the session is reconnecting).
    pub fn push(&mut self, image: &I420<'_>, capture: Instant) -> Result<bool, SessionError> {
        if !self.bind()? {
            self.dropped += 1;
            return Ok(false);
        }
        let Some((_, p)) = self.bound.as_mut() else {
            return Ok(false);
        };
        match p.push(image, capture) {
            Ok(sent) => Ok(sent),
            Err(EngineError::Closed) => {
                self.dropped += 1;
                Ok(false)
            }
            Err(e) => Err(codec_error(
                format!("encode video for {:?}", self.track.name()),
                e,
            )),
        }
    }

    /// Encode and queue an I420 pipeline frame.
    pub fn push_frame(
        &mut self,
        frame: &VideoFrame,
        capture: Instant,
    ) -> Result<bool, SessionError> {
        let image = wavecast_codec::pipeline::i420_of(frame)
            .map_err(|e| codec_error(format!("encode video for {:?}", self.track.name()), e))?;
        self.push(&image, capture)
    }
}

/// Receives a subscribed audio track across rejoins and decodes it to 48 kHz PCM.
///
/// Lost packets are filled in before the packet that follows them (rebuilt from its in-band FEC
/// or concealed, see [`OpusStreamDecoder`]), so the samples stay continuous through loss; late
/// and duplicate packets are dropped.
#[derive(Debug)]
pub struct AudioSubscriber {
    track: SubscribedTrack,
    /// [`SubscribedTrack::streams`] when the decoder last started.
    stream: u64,
    decoder: OpusStreamDecoder,
    out: Vec<i16>,
}

impl AudioSubscriber {
    /// Decode `track` to `channels` (1 or 2).
    pub fn new(track: SubscribedTrack, channels: u16) -> Result<Self, SessionError> {
        if track.kind() != TrackKind::Audio {
            return Err(wrong_kind(&track.key().name, TrackKind::Audio));
        }
        let decoder = OpusStreamDecoder::new(channels)
            .map_err(|e| codec_error("start Opus decoder".into(), e))?;
        Ok(Self {
            stream: track.streams(),
            track,
            out: vec![0; decoder.output_len()],
            decoder,
        })
    }

    /// The session track.
    pub fn track(&self) -> &SubscribedTrack {
        &self.track
    }

    /// Packets decoded and packets that failed to decode.
    pub fn counts(&self) -> (u64, u64) {
        let s = self.decoder.stats();
        (s.packets, s.errors)
    }

    /// What loss cost so far: packets rebuilt from FEC, concealed, late, gaps left unfilled.
    pub fn loss_stats(&self) -> &StreamStats {
        self.decoder.stats()
    }

    /// The next decoded packet, preceded by the filled-in audio of any packets lost before it
    /// (`rtp_time` is that of the first sample); `None` once the track ended for good.
    pub async fn recv(&mut self) -> Option<DecodedAudio<'_>> {
        loop {
            let frame = self.track.recv().await?;
            if self.track.streams() != self.stream {
                // Rejoined: a new RTP stream, judged on its own times.
                self.stream = self.track.streams();
                self.decoder.new_stream();
            }
            match self
                .decoder
                .decode(frame.rtp_time, &frame.data, &mut self.out)
            {
                Ok(d) => {
                    if let Some(e) = &d.error {
                        tracing::debug!("opus decode on {}: {e}", self.track.key());
                    }
                    if d.samples == 0 {
                        continue; // late, a duplicate, or a bad packet with no gap before it
                    }
                    let ch = self.decoder.channels();
                    let filled = (d.samples - d.packet) as u64;
                    return Some(DecodedAudio {
                        samples: &self.out[..d.samples * usize::from(ch)],
                        channels: ch,
                        rtp_time: frame.rtp_time.saturating_sub(filled),
                        received_at: frame.received_at,
                    });
                }
                // Only an output buffer too small, which `new` rules out.
                Err(e) => tracing::error!("opus decode on {}: {e}", self.track.key()),
            }
        }
    }
}

/// Receives a subscribed video track across rejoins and decodes it; asks for a keyframe after
/// decode errors.
#[derive(Debug)]
pub struct VideoSubscriber {
    track: SubscribedTrack,
    decoder: Vp8Decoder,
    errors: u64,
}

impl VideoSubscriber {
    /// Decode `track`.
    pub fn new(track: SubscribedTrack) -> Result<Self, SessionError> {
        if track.kind() != TrackKind::Video {
            return Err(wrong_kind(&track.key().name, TrackKind::Video));
        }
        Ok(Self {
            track,
            decoder: Vp8Decoder::new().map_err(|e| codec_error("start VP8 decoder".into(), e))?,
            errors: 0,
        })
    }

    /// The session track.
    pub fn track(&self) -> &SubscribedTrack {
        &self.track
    }

    /// Pictures decoded and frames that failed to decode.
    pub fn counts(&self) -> (u64, u64) {
        (self.decoder.frames(), self.errors)
    }

    /// The next decoded picture; `None` once the track ended for good.
    pub async fn recv(&mut self) -> Option<DecodedVideo<'_>> {
        let frame = loop {
            let frame = self.track.recv().await?;
            match self.decoder.decode_frame(&frame.data) {
                Ok(true) => break frame,
                Ok(false) => {}
                Err(e) => {
                    self.errors += 1;
                    tracing::debug!(
                        "vp8 decode on {}: {e}; asking for a keyframe",
                        self.track.key()
                    );
                    self.track.request_keyframe();
                }
            }
        };
        let image = self.decoder.image()?;
        Some(DecodedVideo {
            image,
            rtp_time: frame.rtp_time,
            received_at: frame.received_at,
            keyframe: frame.keyframe,
        })
    }
}
