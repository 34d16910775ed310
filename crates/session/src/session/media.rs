//! The workspace's one set of media types: encode-and-publish and receive-and-decode on the
//! session's track handles, across rejoins.
//!
//! The engine carries encoded frames only; these types hold the codec's encoder or decoder
//! (`wavecast-codec`) themselves. When the session rejoins and re-publishes, a publisher moves to
//! the new engine track by itself (a new RTP time line; video starts with a keyframe); a
//! subscriber keeps its decoder and reads the new track's frames. They run on the caller's
//! thread (a capture or decoder thread), never on the engine task.
//!
//! A subscriber decodes in one step per frame ([`VideoSubscriber::decode`],
//! [`AudioSubscriber::decode`]); [`recv`](VideoSubscriber::recv) reads its track and takes that
//! step. A subscriber made [`without_track`](VideoSubscriber::without_track) is fed frames by its
//! caller (an in-process link, a reader of its own), and so is the stream crate's receive path,
//! which wraps this step with its statistics, pools and recordings instead of decoding again.

use std::time::Instant;

use wavecast_codec::{
    CodecError, DecodedImage, MAX_OPUS_PACKET, OPUS_FRAME_SAMPLES, OPUS_SAMPLE_RATE, OpusEncoder,
    OpusStreamDecoder, StreamStats, VideoCodec, VideoDecoder,
};
use wavecast_pipeline::AudioFrame;
use wavecast_rtc::{EncodedFrame, LocalTrack, TrackKind, WriteError};

use super::error::SessionError;
use super::tracks::{LocalSlot, PublishedTrack, SubscribedTrack};

pub(super) fn codec_error(operation: impl Into<String>) -> impl FnOnce(CodecError) -> SessionError {
    move |source| SessionError::Codec {
        operation: operation.into(),
        source,
    }
}

pub(super) fn check_kind(name: &str, have: TrackKind, want: TrackKind) -> Result<(), SessionError> {
    if have == want {
        return Ok(());
    }
    Err(SessionError::Codec {
        operation: format!("wrap track {name:?}"),
        source: CodecError::Unsupported {
            what: format!("track {name:?} is not a {want:?} track"),
        },
    })
}

/// Where a publisher writes: the session track, the engine track it is bound to now, and the
/// pushes dropped while there was none.
#[derive(Debug)]
pub(super) struct Outlet {
    pub(super) track: PublishedTrack,
    /// The engine track and the binding (generation) it belongs to.
    bound: Option<(u64, LocalTrack)>,
    pub(super) dropped: u64,
}

impl Outlet {
    pub(super) fn new(track: PublishedTrack) -> Self {
        let mut o = Self {
            track,
            bound: None,
            dropped: 0,
        };
        o.bind();
        o
    }

    /// The engine track to write to now, the track's name, and whether the engine track is a
    /// new one since the last call (a new RTP stream); `None` while the session is reconnecting
    /// (the push is counted as dropped).
    pub(super) fn bind(&mut self) -> Option<(&LocalTrack, &str, bool)> {
        let generation = self.track.generation();
        let new = self.bound.as_ref().is_none_or(|(g, _)| *g != generation);
        if new {
            self.bound = self.track.engine_track().map(|t| (generation, t));
        }
        match &self.bound {
            Some((_, t)) => Some((t, self.track.name(), new)),
            None => {
                self.dropped += 1;
                None
            }
        }
    }
}

/// Encodes 48 kHz PCM to Opus (20 ms packets) and publishes it on a session track, across
/// rejoins.
#[derive(Debug)]
pub struct AudioPublisher {
    outlet: Outlet,
    /// Encrypts end to end when the session has keys.
    slot: std::sync::Arc<LocalSlot>,
    encoder: OpusEncoder,
    pending: Vec<i16>,
    pending_since: Option<Instant>,
    packet: Box<[u8; MAX_OPUS_PACKET]>,
    /// RTP time (48 kHz) of the next packet on the bound track.
    rtp: u64,
    sent: u64,
}

impl AudioPublisher {
    /// Wrap a published audio track; `channels` 1 or 2, `bitrate` in bits per second.
    pub fn new(track: PublishedTrack, channels: u16, bitrate: u32) -> Result<Self, SessionError> {
        check_kind(track.name(), track.kind(), TrackKind::Audio)?;
        let encoder = OpusEncoder::new(channels, bitrate)
            .map_err(codec_error(format!("start Opus on {:?}", track.name())))?;
        Ok(Self {
            slot: track.slot.clone(),
            outlet: Outlet::new(track),
            encoder,
            pending: Vec::with_capacity(OPUS_FRAME_SAMPLES * usize::from(channels) * 2),
            pending_since: None,
            packet: Box::new([0; MAX_OPUS_PACKET]),
            rtp: 0,
            sent: 0,
        })
    }

    /// The session track.
    pub fn track(&self) -> &PublishedTrack {
        &self.outlet.track
    }

    /// Change the Opus bitrate (kept across rejoins).
    pub fn set_bitrate(&mut self, bitrate: u32) -> Result<(), SessionError> {
        self.encoder
            .set_bitrate(bitrate)
            .map_err(codec_error("set Opus bitrate"))
    }

    /// Packets handed to the engine over all bindings.
    pub fn packets_sent(&self) -> u64 {
        self.sent
    }

    /// Pushes dropped because the session was reconnecting.
    pub fn dropped_while_reconnecting(&self) -> u64 {
        self.outlet.dropped
    }

    /// Push interleaved 48 kHz samples captured at `capture` (any length): every whole 20 ms is
    /// encoded and queued; a full engine queue drops the packet (counted on the track). While
    /// the session is reconnecting the samples are dropped and counted; encoding resumes on the
    /// new track after the rejoin.
    pub fn push(&mut self, pcm: &[i16], capture: Instant) -> Result<(), SessionError> {
        let Some((track, name, new)) = self.outlet.bind() else {
            return Ok(());
        };
        if new {
            // A new RTP stream: its own time line, no samples left from before the gap.
            self.rtp = 0;
            self.pending.clear();
        }
        let frame_len = OPUS_FRAME_SAMPLES * usize::from(self.encoder.channels());
        if self.pending.is_empty() {
            self.pending_since = Some(capture);
        }
        let mut input = pcm;
        while !input.is_empty() {
            let take = (frame_len - self.pending.len()).min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.pending.len() < frame_len {
                continue;
            }
            let len = self
                .encoder
                .encode(&self.pending, &mut self.packet[..])
                .map_err(|source| SessionError::Codec {
                    operation: format!("encode audio for {name:?}"),
                    source,
                })?;
            self.pending.clear();
            let at = self.pending_since.take().unwrap_or(capture);
            let sealed = self.slot.seal(self.packet[..len].to_vec(), self.rtp);
            match sealed.map(|p| track.write(p, self.rtp, at)) {
                // No key to encrypt with: dropped (counted in the session's e2ee stats).
                None => {}
                Some(Ok(())) => self.sent += 1,
                Some(Err(WriteError::Full)) => {}
                Some(Err(_)) => {
                    // Closed: the engine ended under us; the session rebinds the track after
                    // its rejoin.
                    self.outlet.dropped += 1;
                    return Ok(());
                }
            }
            self.rtp += OPUS_FRAME_SAMPLES as u64;
            self.pending_since = Some(capture);
        }
        Ok(())
    }

    /// Push a pipeline frame (48 kHz, the encoder's channel count).
    pub fn push_frame(&mut self, frame: &AudioFrame, capture: Instant) -> Result<(), SessionError> {
        let channels = self.encoder.channels();
        if frame.sample_rate() != OPUS_SAMPLE_RATE || frame.channels() != channels {
            return Err(SessionError::Codec {
                operation: format!("encode audio for {:?}", self.track().name()),
                source: CodecError::BadFrame {
                    what: format!(
                        "{} Hz × {} channels given to a 48000 Hz × {channels} Opus encoder",
                        frame.sample_rate(),
                        frame.channels(),
                    ),
                },
            });
        }
        self.push(frame.samples(), capture)
    }
}

/// One decoded audio packet, preceded by the filled-in audio of any packets lost before it.
#[derive(Debug)]
pub struct DecodedAudio<'a> {
    /// Interleaved 48 kHz samples: the lost audio filled in first, then the packet's.
    pub samples: &'a [i16],
    /// Channels.
    pub channels: u16,
    /// Samples per channel of the packet itself (the last ones in `samples`; 0 when the packet
    /// did not decode and only the gap before it was filled).
    pub packet_samples: usize,
    /// RTP time (48 kHz) of the first sample.
    pub rtp_time: u64,
    /// When the packet arrived.
    pub received_at: Instant,
    /// What loss cost the stream so far, this packet included ([`AudioSubscriber::loss_stats`]).
    pub loss: &'a StreamStats,
}

/// Receives a subscribed audio track across rejoins and decodes it to 48 kHz PCM.
///
/// Lost packets are filled in before the packet that follows them (rebuilt from its in-band FEC
/// or concealed, see [`OpusStreamDecoder`]), so the samples stay continuous through loss; late
/// and duplicate packets are dropped.
#[derive(Debug)]
pub struct AudioSubscriber {
    track: Option<SubscribedTrack>,
    /// [`SubscribedTrack::streams`] when the decoder last started.
    stream: u64,
    decoder: OpusStreamDecoder,
    out: Vec<i16>,
}

impl AudioSubscriber {
    /// Decode `track` to `channels` (1 or 2).
    pub fn new(track: SubscribedTrack, channels: u16) -> Result<Self, SessionError> {
        check_kind(&track.key().name, track.kind(), TrackKind::Audio)?;
        let mut s = Self::without_track(channels)?;
        s.stream = track.streams();
        s.track = Some(track);
        Ok(s)
    }

    /// A subscriber whose caller hands it the encoded frames ([`AudioSubscriber::decode`]):
    /// an in-process link, or a reader of its own. [`AudioSubscriber::recv`] answers `None`.
    pub fn without_track(channels: u16) -> Result<Self, SessionError> {
        let decoder =
            OpusStreamDecoder::new(channels).map_err(codec_error("start Opus decoder"))?;
        Ok(Self {
            track: None,
            stream: 0,
            out: vec![0; decoder.output_len()],
            decoder,
        })
    }

    /// The session track (`None` for [`AudioSubscriber::without_track`]).
    pub fn track(&self) -> Option<&SubscribedTrack> {
        self.track.as_ref()
    }

    /// Channels decoded to.
    pub fn channels(&self) -> u16 {
        self.decoder.channels()
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

    /// The packets that follow come from a new RTP stream (the sender rejoined): the decoder
    /// starts over at the next one instead of dropping it as late against the old stream.
    /// [`AudioSubscriber::recv`] does this by itself when its track moves.
    pub fn new_stream(&mut self) {
        self.decoder.new_stream();
    }

    /// Decodes one packet, after filling the gap before it when packets were lost. `None` when
    /// it gave nothing to play: late, a duplicate, or a bad packet with no gap before it.
    pub fn decode(&mut self, frame: &EncodedFrame) -> Option<DecodedAudio<'_>> {
        let (samples, packet) = self.step(frame)?;
        Some(self.output(frame, samples, packet))
    }

    fn step(&mut self, frame: &EncodedFrame) -> Option<(usize, usize)> {
        match self
            .decoder
            .decode(frame.rtp_time, &frame.data, &mut self.out)
        {
            Ok(d) => {
                if let Some(e) = &d.error {
                    tracing::debug!("opus decode on {}: {e}", self.name());
                }
                (d.samples > 0).then_some((d.samples, d.packet))
            }
            // Only an output buffer too small, which the constructor rules out.
            Err(e) => {
                tracing::error!("opus decode on {}: {e}", self.name());
                None
            }
        }
    }

    fn output(&self, frame: &EncodedFrame, samples: usize, packet: usize) -> DecodedAudio<'_> {
        let channels = self.decoder.channels();
        let filled = (samples - packet) as u64;
        DecodedAudio {
            samples: &self.out[..samples * usize::from(channels)],
            channels,
            packet_samples: packet,
            rtp_time: frame.rtp_time.saturating_sub(filled),
            received_at: frame.received_at,
            loss: self.decoder.stats(),
        }
    }

    fn name(&self) -> String {
        self.track
            .as_ref()
            .map_or_else(|| "an untracked stream".into(), |t| t.key().to_string())
    }

    /// The next decoded packet, preceded by the filled-in audio of any packets lost before it;
    /// `None` once the track ended for good (at once without a track).
    pub async fn recv(&mut self) -> Option<DecodedAudio<'_>> {
        loop {
            let track = self.track.as_mut()?;
            let frame = track.recv().await?;
            if track.streams() != self.stream {
                // Rejoined: a new RTP stream, judged on its own times.
                self.stream = track.streams();
                self.decoder.new_stream();
            }
            if let Some((samples, packet)) = self.step(&frame) {
                return Some(self.output(&frame, samples, packet));
            }
        }
    }
}

/// One decoded picture.
#[derive(Debug)]
pub struct DecodedVideo<'a> {
    /// The picture (borrowed from the decoder until its next frame).
    pub image: DecodedImage<'a>,
    /// RTP time of the frame (90 kHz).
    pub rtp_time: u64,
    /// When it arrived.
    pub received_at: Instant,
    /// Whether it was a keyframe.
    pub keyframe: bool,
}

/// What [`VideoSubscriber::decode`] made of one encoded frame.
#[derive(Debug)]
#[non_exhaustive]
pub enum VideoDecode<'a> {
    /// A picture.
    Picture(DecodedVideo<'a>),
    /// Decoded, but no picture came out of it.
    NoPicture,
    /// Skipped: the decoder waits for a keyframe (the first one, or the one after an error or a
    /// refused keyframe). `ask_keyframe`: ask the sender for one now (every 15th skipped frame,
    /// and never after a refused keyframe — the sender would only send the same size again).
    WaitingForKeyframe {
        /// Ask the sender for a keyframe.
        ask_keyframe: bool,
    },
    /// A keyframe announcing a picture larger than the subscriber accepts
    /// ([`VideoSubscriber::with_max_pixels`]): refused before any allocation; frames are
    /// skipped until a keyframe that fits.
    Refused {
        /// Announced width.
        width: u32,
        /// Announced height.
        height: u32,
        /// The limit, pixels.
        max_pixels: u64,
    },
    /// The frame did not decode: ask the sender for a keyframe; frames are skipped until it.
    Failed(CodecError),
}

/// Receives a subscribed video track across rejoins and decodes it; asks for a keyframe after
/// decode errors and while waiting for one.
#[derive(Debug)]
pub struct VideoSubscriber {
    track: Option<SubscribedTrack>,
    /// A decoder for the codec of the frames that arrive (a new one when it changes).
    decoder: VideoDecoder,
    need_key: bool,
    /// Whether to ask for keyframes while waiting for one (not after refusing one).
    ask: bool,
    skipped: u64,
    errors: u64,
    /// Keyframes refused for their size.
    refused: u64,
}

impl VideoSubscriber {
    /// Decode `track`.
    pub fn new(track: SubscribedTrack) -> Result<Self, SessionError> {
        check_kind(&track.key().name, track.kind(), TrackKind::Video)?;
        let mut s = Self::without_track()?;
        s.track = Some(track);
        Ok(s)
    }

    /// A subscriber whose caller hands it the encoded frames ([`VideoSubscriber::decode`]) and
    /// asks for keyframes when told to: an in-process link, or a reader of its own.
    /// [`VideoSubscriber::recv`] answers `None`.
    pub fn without_track() -> Result<Self, SessionError> {
        Ok(Self {
            track: None,
            decoder: VideoDecoder::new(VideoCodec::Vp8)
                .map_err(codec_error("start the VP8 decoder"))?,
            need_key: true,
            ask: true,
            skipped: 0,
            errors: 0,
            refused: 0,
        })
    }

    /// Refuse keyframes larger than `max_pixels` (width × height; 3840×2160 by default)
    /// before any allocation.
    pub fn with_max_pixels(mut self, max_pixels: u64) -> Self {
        self.decoder = self.decoder.with_max_pixels(max_pixels);
        self
    }

    /// The session track (`None` for [`VideoSubscriber::without_track`]).
    pub fn track(&self) -> Option<&SubscribedTrack> {
        self.track.as_ref()
    }

    /// Pictures decoded and frames that failed to decode.
    pub fn counts(&self) -> (u64, u64) {
        (self.decoder.frames(), self.errors)
    }

    /// Frames skipped while waiting for a keyframe.
    pub fn skipped_before_keyframe(&self) -> u64 {
        self.skipped
    }

    /// Decodes one encoded frame (skipping it while waiting for a keyframe).
    pub fn decode(&mut self, frame: &EncodedFrame) -> VideoDecode<'_> {
        match self.step(frame) {
            Step::Picture => self.picture(frame),
            Step::Other(d) => d,
        }
    }

    fn step(&mut self, frame: &EncodedFrame) -> Step {
        let codec = super::video::video_codec(frame.codec);
        if let Some(codec) = codec
            && codec != self.decoder.codec()
        {
            // Another codec (a publisher that changed it, or the first frame): a decoder for
            // it, which starts at a keyframe.
            match VideoDecoder::new(codec) {
                Ok(d) => {
                    let max = self.decoder.max_pixels();
                    self.decoder = d.with_max_pixels(max);
                    self.need_key = true;
                }
                Err(e) => {
                    self.errors += 1;
                    return Step::Other(VideoDecode::Failed(e));
                }
            }
        }
        if codec.is_none() {
            self.errors += 1;
            return Step::Other(VideoDecode::Failed(CodecError::Unsupported {
                what: format!("{} frames on a video track", frame.codec),
            }));
        }
        if self.need_key && !frame.keyframe {
            let ask_keyframe = self.ask && self.skipped.is_multiple_of(15);
            self.skipped += 1;
            return Step::Other(VideoDecode::WaitingForKeyframe { ask_keyframe });
        }
        match self.decoder.decode_frame(&frame.data) {
            Ok(true) => {
                self.need_key = false;
                self.ask = true;
                Step::Picture
            }
            Ok(false) => {
                self.need_key = false;
                self.ask = true;
                Step::Other(VideoDecode::NoPicture)
            }
            Err(CodecError::TooLarge {
                width,
                height,
                max_pixels,
            }) => {
                self.refused += 1;
                self.need_key = true;
                self.ask = false;
                Step::Other(VideoDecode::Refused {
                    width,
                    height,
                    max_pixels,
                })
            }
            Err(e) => {
                self.errors += 1;
                self.need_key = true;
                Step::Other(VideoDecode::Failed(e))
            }
        }
    }

    fn picture(&self, frame: &EncodedFrame) -> VideoDecode<'_> {
        match self.decoder.image() {
            Some(image) => VideoDecode::Picture(decoded(image, frame)),
            None => VideoDecode::NoPicture,
        }
    }

    /// The next decoded picture; `None` once the track ended for good (at once without a
    /// track). Asks the publisher for keyframes as [`VideoDecode`] says.
    pub async fn recv(&mut self) -> Option<DecodedVideo<'_>> {
        loop {
            let frame = self.track.as_mut()?.recv().await?;
            let ask = match self.step(&frame) {
                Step::Picture if self.decoder.image().is_some() => {
                    return self.decoder.image().map(|image| decoded(image, &frame));
                }
                Step::Picture => false,
                Step::Other(VideoDecode::WaitingForKeyframe { ask_keyframe }) => ask_keyframe,
                Step::Other(VideoDecode::Failed(e)) => {
                    tracing::debug!(
                        "{} decode on {}: {e}; asking for a keyframe",
                        self.decoder.codec(),
                        self.name()
                    );
                    true
                }
                Step::Other(VideoDecode::Refused { width, height, .. }) => {
                    if self.refused == 1 {
                        tracing::warn!(
                            "{} keyframe of {width}x{height} on {} refused: too large (said once)",
                            self.decoder.codec(),
                            self.name()
                        );
                    }
                    false
                }
                Step::Other(_) => false,
            };
            if ask && let Some(t) = &self.track {
                t.request_keyframe();
            }
        }
    }

    fn name(&self) -> String {
        self.track
            .as_ref()
            .map_or_else(|| "an untracked stream".into(), |t| t.key().to_string())
    }
}

fn decoded<'a>(image: DecodedImage<'a>, frame: &EncodedFrame) -> DecodedVideo<'a> {
    DecodedVideo {
        image,
        rtp_time: frame.rtp_time,
        received_at: frame.received_at,
        keyframe: frame.keyframe,
    }
}

/// [`VideoSubscriber::step`]'s outcome, before a picture is borrowed from the decoder.
enum Step {
    Picture,
    Other(VideoDecode<'static>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use wavecast_codec::{I420, Vp8Config, Vp8Encoder};

    fn frame(data: &[u8], rtp_time: u64, keyframe: bool) -> EncodedFrame {
        EncodedFrame {
            codec: wavecast_rtc::MediaCodec::Vp8,
            data: data.into(),
            rtp_time,
            received_at: Instant::now(),
            keyframe,
            contiguous: true,
        }
    }

    /// Ten 160x120 VP8 frames of a moving bar, the first a keyframe.
    fn vp8_frames() -> Vec<(Vec<u8>, bool)> {
        let (w, h) = (160usize, 120usize);
        let mut enc = Vp8Encoder::new(Vp8Config::new(w as u32, h as u32, 30)).unwrap();
        let (u, v) = (vec![90u8; w * h / 4], vec![160u8; w * h / 4]);
        (0..10)
            .map(|n| {
                let y: Vec<u8> = (0..w * h)
                    .map(|i| if (i % w) / 8 == n { 235 } else { 60 })
                    .collect();
                let img = I420 {
                    width: w as u32,
                    height: h as u32,
                    planes: [&y, &u, &v],
                    strides: [w, w / 2, w / 2],
                };
                let f = enc.encode(&img, n as i64 * 3000).unwrap().unwrap();
                (f.data.to_vec(), f.keyframe)
            })
            .collect()
    }

    #[test]
    fn video_waits_for_a_keyframe_asks_every_15th_frame_and_decodes_from_it() {
        let frames = vp8_frames();
        let mut sub = VideoSubscriber::without_track().unwrap();
        assert!(sub.track().is_none());
        let mut asked = Vec::new();
        for i in 0..31 {
            match sub.decode(&frame(&frames[1].0, i, false)) {
                VideoDecode::WaitingForKeyframe { ask_keyframe } => asked.push(ask_keyframe),
                other => panic!("an inter frame before any keyframe gave {other:?}"),
            }
        }
        let asks: Vec<usize> = (0..31).filter(|i| asked[*i]).collect();
        assert_eq!(asks, [0, 15, 30]);
        assert_eq!(sub.skipped_before_keyframe(), 31);
        for (n, (data, key)) in frames.iter().enumerate() {
            match sub.decode(&frame(data, 100 + n as u64, *key)) {
                VideoDecode::Picture(p) => {
                    assert_eq!((p.image.image.width, p.image.image.height), (160, 120));
                    assert_eq!((p.rtp_time, p.keyframe), (100 + n as u64, n == 0));
                }
                other => panic!("frame {n} gave {other:?}"),
            }
        }
        assert_eq!(sub.counts(), (10, 0));
    }

    #[test]
    fn a_bad_frame_fails_then_inter_frames_wait_for_the_next_keyframe() {
        let frames = vp8_frames();
        let mut sub = VideoSubscriber::without_track().unwrap();
        assert!(matches!(
            sub.decode(&frame(&frames[0].0, 0, true)),
            VideoDecode::Picture(_)
        ));
        // A keyframe-flagged frame that is no VP8 at all.
        assert!(matches!(
            sub.decode(&frame(&[0xff; 40], 1, true)),
            VideoDecode::Failed(_)
        ));
        assert!(matches!(
            sub.decode(&frame(&frames[1].0, 2, false)),
            VideoDecode::WaitingForKeyframe { ask_keyframe: true }
        ));
        assert!(matches!(
            sub.decode(&frame(&frames[0].0, 3, true)),
            VideoDecode::Picture(_)
        ));
        assert_eq!(sub.counts(), (2, 1));
    }

    #[test]
    fn a_keyframe_over_the_pixel_limit_is_refused_and_not_asked_for_again() {
        let frames = vp8_frames();
        let mut sub = VideoSubscriber::without_track()
            .unwrap()
            .with_max_pixels(160 * 120 - 1);
        match sub.decode(&frame(&frames[0].0, 0, true)) {
            VideoDecode::Refused {
                width,
                height,
                max_pixels,
            } => assert_eq!((width, height, max_pixels), (160, 120, 160 * 120 - 1)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            sub.decode(&frame(&frames[1].0, 1, false)),
            VideoDecode::WaitingForKeyframe {
                ask_keyframe: false
            }
        ));
        assert_eq!(sub.counts(), (0, 0));
    }

    #[test]
    fn audio_fills_a_lost_packet_and_drops_a_duplicate() {
        let mut enc = OpusEncoder::new(1, 32_000).unwrap();
        let mut packet = vec![0u8; MAX_OPUS_PACKET];
        let pcm: Vec<i16> = (0..OPUS_FRAME_SAMPLES)
            .map(|i| ((i as f64 * 0.05).sin() * 8000.0) as i16)
            .collect();
        let packets: Vec<Vec<u8>> = (0..4)
            .map(|_| {
                let n = enc.encode(&pcm, &mut packet).unwrap();
                packet[..n].to_vec()
            })
            .collect();
        let mut sub = AudioSubscriber::without_track(1).unwrap();
        let at = |i: u64| 1_000 + i * OPUS_FRAME_SAMPLES as u64;
        let d = sub.decode(&frame(&packets[0], at(0), false)).unwrap();
        assert_eq!((d.samples.len(), d.packet_samples), (960, 960));
        assert_eq!(d.rtp_time, at(0));
        // Packet 1 is lost: packet 2 comes with its 20 ms filled in first.
        let d = sub.decode(&frame(&packets[2], at(2), false)).unwrap();
        assert_eq!((d.samples.len(), d.packet_samples), (1920, 960));
        assert_eq!(d.rtp_time, at(1));
        assert_eq!(d.loss.fec_frames + d.loss.plc_frames, 1);
        assert!(sub.decode(&frame(&packets[2], at(2), false)).is_none());
        assert_eq!(sub.loss_stats().late, 1);
        assert_eq!(sub.counts(), (2, 0));
    }
}
