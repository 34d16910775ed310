//! Handles to published (local) and subscribed (remote) tracks.
//!
//! Both sides carry *encoded* frames: encoding and decoding happen on the caller's threads (see
//! [`crate::media`]), never on the engine task that drives the network.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::mpsc;

use crate::sansio::Command;

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackKind {
    /// Opus audio, 48 kHz RTP clock.
    Audio,
    /// VP8 video, 90 kHz RTP clock.
    Video,
}

impl TrackKind {
    /// The RTP clock rate of the codec this engine uses for the kind.
    pub fn clock_rate(self) -> u32 {
        match self {
            TrackKind::Audio => 48_000,
            TrackKind::Video => 90_000,
        }
    }
}

/// The codec of a track's RTP stream, as negotiated (the payload type of each packet names it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MediaCodec {
    /// Opus audio.
    Opus,
    /// VP8 video.
    Vp8,
    /// VP9 video.
    Vp9,
    /// H.264 video (Annex B frames: start codes before each NAL unit).
    H264,
}

impl MediaCodec {
    /// The codec's MIME type as WebRTC and LiveKit name it (`audio/opus`, `video/VP8`, …).
    pub fn mime(self) -> &'static str {
        match self {
            MediaCodec::Opus => "audio/opus",
            MediaCodec::Vp8 => "video/VP8",
            MediaCodec::Vp9 => "video/VP9",
            MediaCodec::H264 => "video/H264",
        }
    }

    /// The codec a MIME type names (`video/H264`, `audio/opus`; case does not matter).
    pub fn from_mime(mime: &str) -> Option<Self> {
        let sub = mime.rsplit('/').next()?;
        [
            MediaCodec::Opus,
            MediaCodec::Vp8,
            MediaCodec::Vp9,
            MediaCodec::H264,
        ]
        .into_iter()
        .find(|c| c.to_string().eq_ignore_ascii_case(sub))
    }

    pub(crate) fn from_str0m(c: str0m::format::Codec) -> Option<Self> {
        use str0m::format::Codec;
        match c {
            Codec::Opus => Some(MediaCodec::Opus),
            Codec::Vp8 => Some(MediaCodec::Vp8),
            Codec::Vp9 => Some(MediaCodec::Vp9),
            Codec::H264 => Some(MediaCodec::H264),
            _ => None,
        }
    }

    #[allow(dead_code)] // used by the publish side next
    pub(crate) fn to_str0m(self) -> str0m::format::Codec {
        use str0m::format::Codec;
        match self {
            MediaCodec::Opus => Codec::Opus,
            MediaCodec::Vp8 => Codec::Vp8,
            MediaCodec::Vp9 => Codec::Vp9,
            MediaCodec::H264 => Codec::H264,
        }
    }
}

impl MediaCodec {
    /// Its short name, as LiveKit's `SimulcastCodec` and our configs spell it: `opus`, `vp8`,
    /// `vp9`, `h264`.
    pub fn name(self) -> &'static str {
        match self {
            MediaCodec::Opus => "opus",
            MediaCodec::Vp8 => "vp8",
            MediaCodec::Vp9 => "vp9",
            MediaCodec::H264 => "h264",
        }
    }
}

impl std::fmt::Display for MediaCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A simulcast layer's place, as LiveKit names them (the rids `q`, `h`, `f`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VideoQuality {
    /// The smallest layer (rid `q`).
    Low,
    /// The middle layer (rid `h`).
    Medium,
    /// The full-size layer (rid `f`; also a track's only layer).
    High,
}

impl VideoQuality {
    /// All three, smallest first.
    pub const ALL: [VideoQuality; 3] =
        [VideoQuality::Low, VideoQuality::Medium, VideoQuality::High];

    /// Its index, smallest first (0..=2).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The rid LiveKit's SDKs give the layer.
    pub fn rid(self) -> &'static str {
        match self {
            VideoQuality::Low => "q",
            VideoQuality::Medium => "h",
            VideoQuality::High => "f",
        }
    }

    pub(crate) fn to_proto(self) -> livekit_protocol::VideoQuality {
        match self {
            VideoQuality::Low => livekit_protocol::VideoQuality::Low,
            VideoQuality::Medium => livekit_protocol::VideoQuality::Medium,
            VideoQuality::High => livekit_protocol::VideoQuality::High,
        }
    }

    pub(crate) fn from_proto(v: i32) -> Option<Self> {
        match livekit_protocol::VideoQuality::try_from(v) {
            Ok(livekit_protocol::VideoQuality::Low) => Some(VideoQuality::Low),
            Ok(livekit_protocol::VideoQuality::Medium) => Some(VideoQuality::Medium),
            Ok(livekit_protocol::VideoQuality::High) => Some(VideoQuality::High),
            _ => None,
        }
    }
}

/// How the server forwards a subscribed track to us (LiveKit's `UpdateTrackSettings`): on or
/// paused, and for video which layer — by quality, or by the size of the picture we show
/// (the server picks the smallest layer at least that large), at most `fps` frames a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackSettings {
    /// Forward it (false: paused, still subscribed).
    pub enabled: bool,
    /// The layer to receive (used when `width`/`height` are 0).
    pub quality: VideoQuality,
    /// The width we show it at, pixels (0: go by `quality`).
    pub width: u32,
    /// The height we show it at, pixels (0: go by `quality`).
    pub height: u32,
    /// The frame rate we want at most (0: any).
    pub fps: u32,
}

impl Default for TrackSettings {
    /// Enabled, the top layer.
    fn default() -> Self {
        Self {
            enabled: true,
            quality: VideoQuality::High,
            width: 0,
            height: 0,
            fps: 0,
        }
    }
}

impl TrackSettings {
    pub(crate) fn to_proto(self, track_sid: String) -> livekit_protocol::UpdateTrackSettings {
        livekit_protocol::UpdateTrackSettings {
            track_sids: vec![track_sid],
            disabled: !self.enabled,
            // Without width/height the server goes by `quality`, whose default (0) is LOW:
            // it is always sent.
            quality: self.quality.to_proto() as i32,
            width: self.width,
            height: self.height,
            fps: self.fps,
            ..Default::default()
        }
    }
}

/// One simulcast layer of a published video track: its size and target bitrate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoLayer {
    /// Which layer.
    pub quality: VideoQuality,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Target bitrate, bits per second.
    pub bitrate: u32,
}

/// Where a track comes from, as LiveKit labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TrackSource {
    /// Not stated.
    #[default]
    Unknown,
    /// A camera.
    Camera,
    /// A microphone.
    Microphone,
    /// A screen share.
    ScreenShare,
}

impl TrackSource {
    pub(crate) fn to_proto(self) -> livekit_protocol::TrackSource {
        match self {
            TrackSource::Unknown => livekit_protocol::TrackSource::Unknown,
            TrackSource::Camera => livekit_protocol::TrackSource::Camera,
            TrackSource::Microphone => livekit_protocol::TrackSource::Microphone,
            TrackSource::ScreenShare => livekit_protocol::TrackSource::ScreenShare,
        }
    }

    pub(crate) fn from_proto(v: i32) -> Self {
        match livekit_protocol::TrackSource::try_from(v) {
            Ok(livekit_protocol::TrackSource::Camera) => TrackSource::Camera,
            Ok(livekit_protocol::TrackSource::Microphone) => TrackSource::Microphone,
            Ok(livekit_protocol::TrackSource::ScreenShare) => TrackSource::ScreenShare,
            _ => TrackSource::Unknown,
        }
    }
}

/// What to publish.
#[derive(Debug, Clone)]
pub struct TrackOptions {
    /// Track name other participants see.
    pub name: String,
    /// Audio or video.
    pub kind: TrackKind,
    /// Source label.
    pub source: TrackSource,
    /// Video width in pixels (0 for audio).
    pub width: u32,
    /// Video height in pixels (0 for audio).
    pub height: u32,
    /// Start muted.
    pub muted: bool,
    /// Announce the track as end-to-end encrypted (AES-GCM frames, `Encryption.Type.GCM`): the
    /// frames written into it must already be encrypted (the session does it).
    pub encrypted: bool,
    /// The codec of its frames: Opus for audio; VP8 (the default), VP9 or H.264 for video. The
    /// publisher offer lists it first (as the SDKs' `videoCodec` option does) and the server's
    /// answer must include it, else publishing fails.
    pub codec: MediaCodec,
    /// Simulcast: the layers, each written with [`LocalTrack::write_layer`] (at most one per
    /// [`VideoQuality`]). Empty: one layer of `width`×`height`, written with
    /// [`LocalTrack::write`].
    pub layers: Vec<VideoLayer>,
}

impl TrackOptions {
    /// An Opus microphone track.
    pub fn audio(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind: TrackKind::Audio,
            source: TrackSource::Microphone,
            width: 0,
            height: 0,
            muted: false,
            encrypted: false,
            codec: MediaCodec::Opus,
            layers: Vec::new(),
        }
    }

    /// A VP8 camera track of the given size.
    pub fn video(name: impl Into<String>, width: u32, height: u32) -> Self {
        Self {
            name: name.into(),
            kind: TrackKind::Video,
            source: TrackSource::Camera,
            width,
            height,
            muted: false,
            encrypted: false,
            codec: MediaCodec::Vp8,
            layers: Vec::new(),
        }
    }

    /// Whether the options hold together: Opus for audio, a video codec for video, at most one
    /// layer per quality with a size, none for audio.
    pub(crate) fn check(&self) -> Result<(), crate::EngineError> {
        let bad = |problem: String| {
            Err(crate::EngineError::BadTrackOptions {
                name: self.name.clone(),
                problem,
            })
        };
        match (self.kind, self.codec) {
            (TrackKind::Audio, MediaCodec::Opus) => {}
            (TrackKind::Audio, c) => return bad(format!("audio in {c} (audio is Opus)")),
            (TrackKind::Video, MediaCodec::Opus) => return bad("video in Opus".into()),
            (TrackKind::Video, _) => {}
        }
        if self.kind == TrackKind::Audio && !self.layers.is_empty() {
            return bad("simulcast layers on an audio track".into());
        }
        for (i, l) in self.layers.iter().enumerate() {
            if l.width == 0 || l.height == 0 {
                return bad(format!("layer {:?} is {}x{}", l.quality, l.width, l.height));
            }
            if self.layers[..i].iter().any(|o| o.quality == l.quality) {
                return bad(format!("two layers of quality {:?}", l.quality));
            }
        }
        Ok(())
    }

    /// In this video codec instead of VP8.
    pub fn with_codec(mut self, codec: MediaCodec) -> Self {
        self.codec = codec;
        self
    }

    /// Simulcast with these layers (see [`TrackOptions::layers`]).
    pub fn with_layers(mut self, layers: Vec<VideoLayer>) -> Self {
        self.layers = layers;
        self
    }
}

/// State shared between a local track handle and the engine task.
#[derive(Debug)]
pub(crate) struct LocalShared {
    /// Set by the engine on PLI/FIR; taken by the encoder.
    pub keyframe_requested: AtomicBool,
    /// Frames dropped because the engine's media queue was full.
    pub dropped: AtomicU64,
    /// Frames accepted into the queue.
    pub written: AtomicU64,
    /// Target bitrate from the engine's estimate (0 = none yet), bits per second.
    pub target_bitrate: AtomicU64,
    /// Keyframe requests per simulcast layer (index [`VideoQuality::index`]).
    pub layer_keyframe: [AtomicBool; 3],
    /// Layers somebody receives (bit [`VideoQuality::index`]), from the server's
    /// `SubscribedQualityUpdate` (dynacast); all until it says otherwise.
    pub active_layers: std::sync::atomic::AtomicU8,
}

impl LocalShared {
    pub(crate) fn new() -> Self {
        Self {
            keyframe_requested: AtomicBool::new(true),
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
            target_bitrate: AtomicU64::new(0),
            layer_keyframe: [
                AtomicBool::new(true),
                AtomicBool::new(true),
                AtomicBool::new(true),
            ],
            active_layers: std::sync::atomic::AtomicU8::new(0b111),
        }
    }
}

/// Why a non-blocking queue took nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueueError {
    /// No room.
    Full,
    /// Nobody reads it any more.
    Closed,
}

/// The engine core's end of a subscribed track's frame queue (never waits).
#[derive(Debug)]
pub(crate) struct FrameQueue(mpsc::Sender<EncodedFrame>);

impl FrameQueue {
    /// Queue a frame if there is room.
    pub(crate) fn push(&self, frame: EncodedFrame) -> Result<(), QueueError> {
        self.0.try_send(frame).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => QueueError::Full,
            mpsc::error::TrySendError::Closed(_) => QueueError::Closed,
        })
    }

    /// Whether the track's handle still exists.
    pub(crate) fn reader_alive(&self) -> bool {
        !self.0.is_closed()
    }

    /// Free slots.
    pub(crate) fn free(&self) -> usize {
        self.0.capacity()
    }
}

/// Where handles send their commands to the engine (never waits).
#[derive(Debug, Clone)]
pub(crate) struct CommandSender(pub(crate) mpsc::Sender<Command>);

impl CommandSender {
    pub(crate) fn try_send(&self, c: Command) -> Result<(), QueueError> {
        self.0.try_send(c).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => QueueError::Full,
            mpsc::error::TrySendError::Closed(_) => QueueError::Closed,
        })
    }
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

/// Where published tracks queue their frames for the engine (never waits).
#[derive(Debug, Clone)]
pub(crate) struct MediaSender(pub(crate) mpsc::Sender<MediaWrite>);

/// What a subscribed track is.
pub(crate) struct RemoteTrackInfo {
    pub sid: String,
    pub participant_sid: String,
    pub participant_identity: String,
    pub name: String,
    pub kind: TrackKind,
    pub encrypted: bool,
}

/// One encoded frame on its way to the engine.
#[derive(Debug)]
pub(crate) struct MediaWrite {
    pub cid: Arc<str>,
    /// The simulcast layer (`None`: a track of one layer).
    pub layer: Option<VideoQuality>,
    pub rtp_time: u64,
    pub capture: Instant,
    pub data: Vec<u8>,
}

/// A published track: write encoded frames into it.
///
/// Cloneable; the track stays published until [`crate::Engine::unpublish_track`].
#[derive(Debug, Clone)]
pub struct LocalTrack {
    pub(crate) sid: String,
    pub(crate) cid: Arc<str>,
    pub(crate) kind: TrackKind,
    pub(crate) name: String,
    pub(crate) media: MediaSender,
    pub(crate) shared: Arc<LocalShared>,
}

/// Why a frame was not queued.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteError {
    /// The media queue is full: the frame was dropped (counted in [`LocalTrack::dropped`]).
    #[error("media queue full, frame dropped")]
    Full,
    /// The engine has ended.
    #[error("the engine is closed")]
    Closed,
}

impl LocalTrack {
    /// The server's track sid (`TR_…`).
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// Our client track id (also the msid track id in the publisher offer).
    pub fn cid(&self) -> &str {
        &self.cid
    }

    /// Audio or video.
    pub fn kind(&self) -> TrackKind {
        self.kind
    }

    /// The track name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Queue one encoded frame (an Opus packet, or a whole VP8 frame) with its RTP timestamp in
    /// the codec clock ([`TrackKind::clock_rate`]) and its capture instant.
    ///
    /// Never blocks: when the engine's bounded queue is full the frame is dropped and counted
    /// (newest dropped; a dropped video frame also asks the encoder for a keyframe).
    pub fn write(&self, data: Vec<u8>, rtp_time: u64, capture: Instant) -> Result<(), WriteError> {
        self.queue(None, data, rtp_time, capture)
    }

    /// Queue one encoded frame of a simulcast layer (see [`LocalTrack::write`]). A layer the
    /// track was not published with is dropped by the engine.
    pub fn write_layer(
        &self,
        layer: VideoQuality,
        data: Vec<u8>,
        rtp_time: u64,
        capture: Instant,
    ) -> Result<(), WriteError> {
        self.queue(Some(layer), data, rtp_time, capture)
    }

    fn queue(
        &self,
        layer: Option<VideoQuality>,
        data: Vec<u8>,
        rtp_time: u64,
        capture: Instant,
    ) -> Result<(), WriteError> {
        let w = MediaWrite {
            cid: self.cid.clone(),
            layer,
            rtp_time,
            capture,
            data,
        };
        match self.media.0.try_send(w) {
            Ok(()) => {
                self.shared.written.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                if self.kind == TrackKind::Video {
                    match layer {
                        Some(l) => {
                            self.shared.layer_keyframe[l.index()].store(true, Ordering::Relaxed)
                        }
                        None => self
                            .shared
                            .keyframe_requested
                            .store(true, Ordering::Relaxed),
                    }
                }
                Err(WriteError::Full)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(WriteError::Closed),
        }
    }

    /// Whether the remote side asked for a keyframe (PLI/FIR) since the last call; clears it.
    pub fn take_keyframe_request(&self) -> bool {
        self.shared.keyframe_requested.swap(false, Ordering::AcqRel)
    }

    /// [`LocalTrack::take_keyframe_request`] for one simulcast layer.
    pub fn take_layer_keyframe_request(&self, layer: VideoQuality) -> bool {
        self.shared.layer_keyframe[layer.index()].swap(false, Ordering::AcqRel)
    }

    /// Whether anybody receives this simulcast layer (dynacast: the server's
    /// `SubscribedQualityUpdate`); true until the server says otherwise. An encoder may skip
    /// the layers nobody receives.
    pub fn layer_active(&self, layer: VideoQuality) -> bool {
        self.shared.active_layers.load(Ordering::Relaxed) & (1 << layer.index()) != 0
    }

    /// The bitrate the engine's bandwidth estimate leaves this track, bits per second (`None`
    /// until there is an estimate).
    pub fn target_bitrate(&self) -> Option<u64> {
        match self.shared.target_bitrate.load(Ordering::Relaxed) {
            0 => None,
            b => Some(b),
        }
    }

    /// Frames dropped because the engine queue was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Frames queued to the engine.
    pub fn written(&self) -> u64 {
        self.shared.written.load(Ordering::Relaxed)
    }
}

/// One encoded frame received on a subscribed track, depacketised and in order.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    /// The codec payload (an Opus packet or a whole video frame: VP8, VP9 or Annex B H.264).
    pub data: Arc<[u8]>,
    /// The codec it is in.
    pub codec: MediaCodec,
    /// RTP timestamp, extended to 64 bits, in the codec clock.
    pub rtp_time: u64,
    /// When the first packet of the frame arrived.
    pub received_at: Instant,
    /// For video: whether this is a keyframe.
    pub keyframe: bool,
    /// False when packets were lost since the previous frame (the decoder may need a keyframe).
    pub contiguous: bool,
}

/// A subscribed track: receive its encoded frames.
#[derive(Debug)]
pub struct RemoteTrack {
    pub(crate) sid: String,
    pub(crate) participant_sid: String,
    pub(crate) participant_identity: String,
    pub(crate) name: String,
    pub(crate) kind: TrackKind,
    pub(crate) frames: mpsc::Receiver<EncodedFrame>,
    pub(crate) commands: CommandSender,
    pub(crate) dropped: Arc<AtomicU64>,
    pub(crate) encrypted: bool,
}

impl RemoteTrack {
    /// A handle and the engine's end of its frame queue (`capacity` frames), and its count of
    /// frames dropped for want of room.
    pub(crate) fn open(
        info: RemoteTrackInfo,
        capacity: usize,
        commands: CommandSender,
    ) -> (RemoteTrack, FrameQueue, Arc<AtomicU64>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let track = RemoteTrack {
            sid: info.sid,
            participant_sid: info.participant_sid,
            participant_identity: info.participant_identity,
            name: info.name,
            kind: info.kind,
            frames: rx,
            commands,
            dropped: dropped.clone(),
            encrypted: info.encrypted,
        };
        (track, FrameQueue(tx), dropped)
    }

    /// The track sid.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// The publishing participant's sid.
    pub fn participant_sid(&self) -> &str {
        &self.participant_sid
    }

    /// The publishing participant's identity (empty when the server has not named it yet).
    pub fn participant_identity(&self) -> &str {
        &self.participant_identity
    }

    /// The track name (empty when the server has not named it yet).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Audio or video.
    pub fn kind(&self) -> TrackKind {
        self.kind
    }

    /// Whether its publisher announced it end-to-end encrypted (its frames arrive encrypted;
    /// false also when the track was not announced before it was subscribed).
    pub fn is_encrypted(&self) -> bool {
        self.encrypted
    }

    /// The next frame; `None` once the track is unsubscribed or the engine ends.
    pub async fn recv(&mut self) -> Option<EncodedFrame> {
        self.frames.recv().await
    }

    /// The next frame, blocking the thread (for decoder threads outside any runtime).
    pub fn blocking_recv(&mut self) -> Option<EncodedFrame> {
        self.frames.blocking_recv()
    }

    /// A frame if one is waiting.
    pub fn try_recv(&mut self) -> Result<EncodedFrame, mpsc::error::TryRecvError> {
        self.frames.try_recv()
    }

    /// Ask the sender for a keyframe (PLI), e.g. after a decode error.
    pub fn request_keyframe(&self) {
        let _ = self.commands.try_send(Command::RequestKeyframe {
            track_sid: self.sid.clone(),
        });
    }

    /// Frames dropped because this handle's queue was full (the reader was too slow).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
