//! Publishing video: the codec, simulcast layers (one downscale and one encoder per layer),
//! dynacast, and a bitrate that follows the engine's bandwidth estimate.
//!
//! Per picture pushed, each layer somebody receives is scaled (SIMD, into buffers the layer
//! owns: no allocation in steady state) and encoded by its own encoder, then written under its
//! rid. A layer nobody receives (the server's dynacast) is not encoded at all; it starts again
//! with a keyframe. Every 250 ms the publisher reads its share of the bandwidth estimate
//! ([`wavecast_rtc::LocalTrack::target_bitrate`]), keeps it within the floor and ceiling of
//! [`VideoOptions`], and hands it out smallest layer first: each layer gets up to its nominal
//! bitrate, and a layer that would get less than half of it is paused until the estimate
//! recovers — so on a weak uplink the viewers get fewer, smaller layers at full frame rate
//! rather than lost frames.

use std::time::{Duration, Instant};

use wavecast_codec::{I420, I420Scaler, VideoCodec, VideoEncoder, VideoEncoderConfig, Vp8Config};
use wavecast_pipeline::VideoFrame;
use wavecast_rtc::{MediaCodec, TrackOptions, TrackSource, VideoLayer, VideoQuality, WriteError};

use super::error::SessionError;
use super::media::{Outlet, check_kind, codec_error};
use super::tracks::{LocalSlot, PublishedTrack};

/// How often the encoders' bitrates follow the estimate.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// Smallest simulcast layer made: narrower or lower layers are left out.
const MIN_LAYER: (u32, u32) = (120, 66);

/// The engine's name of a codec.
pub fn media_codec(codec: VideoCodec) -> MediaCodec {
    match codec {
        VideoCodec::Vp8 => MediaCodec::Vp8,
        VideoCodec::Vp9 => MediaCodec::Vp9,
        VideoCodec::H264 => MediaCodec::H264,
    }
}

/// The codec library's name of a video codec the engine received (`None` for audio).
pub fn video_codec(codec: MediaCodec) -> Option<VideoCodec> {
    match codec {
        MediaCodec::Vp8 => Some(VideoCodec::Vp8),
        MediaCodec::Vp9 => Some(VideoCodec::Vp9),
        MediaCodec::H264 => Some(VideoCodec::H264),
        _ => None,
    }
}

/// How a video track is published: codec, picture size and rate, simulcast, and the range its
/// bitrate moves in as the bandwidth estimate changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct VideoOptions {
    /// The codec.
    pub codec: VideoCodec,
    /// Width of the pictures pushed, pixels.
    pub width: u32,
    /// Height of the pictures pushed, pixels.
    pub height: u32,
    /// Nominal frame rate.
    pub fps: u32,
    /// Publish up to three layers (full, half and quarter size; those smaller than 120×66 are
    /// left out) instead of one. VP9 stays one layer (see [`VideoOptions::layers`]).
    pub simulcast: bool,
    /// The bitrate floor, bits per second: the smallest layer never gets less, whatever the
    /// estimate says.
    pub min_bitrate: u32,
    /// The bitrate ceiling over all layers, bits per second (the layers' nominal bitrates are
    /// scaled to fit it).
    pub max_bitrate: u32,
    /// A keyframe at least every this many frames.
    pub keyframe_interval: u32,
    /// Encoder threads per layer.
    pub threads: u32,
    /// Camera or screen share.
    pub source: TrackSource,
}

impl VideoOptions {
    /// One layer of `width`×`height` at `fps` in `codec`, its bitrate by pixel rate (about
    /// 1.9 Mbit/s at 720p30) with a floor of 100 kbit/s.
    pub fn new(codec: VideoCodec, width: u32, height: u32, fps: u32) -> Self {
        let c = VideoEncoderConfig::new(codec, width, height, fps);
        Self {
            codec,
            width,
            height,
            fps: c.fps,
            simulcast: false,
            min_bitrate: 100_000,
            max_bitrate: c.bitrate,
            keyframe_interval: c.keyframe_interval,
            threads: c.threads,
            source: TrackSource::Camera,
        }
    }

    /// With simulcast on or off; the ceiling becomes the layers' bitrates added up.
    pub fn with_simulcast(mut self, simulcast: bool) -> Self {
        self.simulcast = simulcast;
        self.max_bitrate = self
            .ladder()
            .iter()
            .map(|&(_, w, h)| VideoEncoderConfig::new(self.codec, w, h, self.fps).bitrate)
            .sum();
        self
    }

    /// With this floor and ceiling, bits per second.
    pub fn with_bitrate_range(mut self, min: u32, max: u32) -> Self {
        self.min_bitrate = min;
        self.max_bitrate = max.max(min);
        self
    }

    /// The sizes of the layers, smallest first. VP9 has one: LiveKit reads VP9 as one
    /// scalable (SVC) stream, not as rid simulcast, and SVC is not ours to send (str0m's VP9
    /// packetiser numbers every frame spatial layer 0).
    fn ladder(&self) -> Vec<(VideoQuality, u32, u32)> {
        if !self.simulcast || self.codec == VideoCodec::Vp9 {
            return vec![(VideoQuality::High, self.width, self.height)];
        }
        let even = |v: u32| (v & !1).max(2);
        let mut layers: Vec<_> = [
            (VideoQuality::Low, 4),
            (VideoQuality::Medium, 2),
            (VideoQuality::High, 1),
        ]
        .into_iter()
        .map(|(q, d)| {
            let (w, h) = if d == 1 {
                (self.width, self.height)
            } else {
                (even(self.width / d), even(self.height / d))
            };
            (q, w, h)
        })
        .filter(|&(q, w, h)| q == VideoQuality::High || (w >= MIN_LAYER.0 && h >= MIN_LAYER.1))
        .collect();
        layers.dedup_by_key(|l| (l.1, l.2));
        layers
    }

    /// The layers with their nominal bitrates (by pixel rate, scaled to fit the ceiling),
    /// smallest first. Without simulcast, and for VP9: one layer of the full size (LiveKit
    /// takes VP9 as one scalable stream, whose spatial layers str0m cannot number).
    pub fn layers(&self) -> Vec<VideoLayer> {
        let ladder = self.ladder();
        let rates: Vec<u64> = ladder
            .iter()
            .map(|&(_, w, h)| {
                u64::from(VideoEncoderConfig::new(self.codec, w, h, self.fps).bitrate)
            })
            .collect();
        let total: u64 = rates.iter().sum::<u64>().max(1);
        let ceiling = u64::from(self.max_bitrate.max(self.min_bitrate));
        ladder
            .iter()
            .zip(rates)
            .map(|(&(quality, width, height), rate)| VideoLayer {
                quality,
                width,
                height,
                bitrate: (rate * ceiling / total).max(30_000) as u32,
            })
            .collect()
    }

    /// What the engine publishes.
    pub fn track_options(&self, name: &str) -> TrackOptions {
        let mut o =
            TrackOptions::video(name, self.width, self.height).with_codec(media_codec(self.codec));
        o.source = self.source;
        let layers = self.layers();
        if layers.len() > 1 {
            o = o.with_layers(layers);
        }
        o
    }

    fn check(&self, name: &str) -> Result<(), SessionError> {
        let bad = |reason: String| {
            Err(SessionError::Unsupported {
                operation: format!("publish video {name:?}"),
                reason,
            })
        };
        if self.width < 2 || self.height < 2 || self.width > 8192 || self.height > 8192 {
            return bad(format!(
                "a {}x{} picture (2 to 8192 pixels each way)",
                self.width, self.height
            ));
        }
        if self.fps == 0 || self.fps > 240 {
            return bad(format!("{} frames a second (1 to 240)", self.fps));
        }
        if self.min_bitrate == 0 {
            return bad("a bitrate floor of 0".into());
        }
        Ok(())
    }
}

impl From<Vp8Config> for VideoOptions {
    /// One VP8 layer with the config's size, rate and bitrate (as ceiling), keyframe interval
    /// and threads.
    fn from(c: Vp8Config) -> Self {
        let mut o = VideoOptions::new(VideoCodec::Vp8, c.width, c.height, c.fps);
        o.max_bitrate = c.bitrate.max(o.min_bitrate);
        o.keyframe_interval = c.keyframe_interval;
        o.threads = c.threads;
        o
    }
}

/// Hand out `estimate` (within floor and ceiling) smallest layer first: each layer up to its
/// nominal bitrate; a layer above the smallest that would get less than half of it is starved
/// (paused) until the estimate recovers.
fn allocate(
    layers: &mut [Layer],
    options: &VideoOptions,
    estimate: u64,
) -> Result<(), SessionError> {
    let floor = u64::from(options.min_bitrate);
    let ceiling = u64::from(options.max_bitrate);
    // Headroom for retransmissions and packet headers.
    let mut left = (estimate.saturating_mul(9) / 10).clamp(floor, ceiling.max(floor));
    let simulcast = layers.len() > 1;
    for (i, layer) in layers.iter_mut().enumerate() {
        let nominal = u64::from(layer.nominal);
        let give = if !simulcast {
            left
        } else if i == 0 {
            nominal.min(left).max(floor.min(nominal))
        } else if left >= nominal / 2 {
            nominal.min(left)
        } else {
            0
        };
        layer.starved = give == 0;
        left = left.saturating_sub(give);
        if give == 0 {
            continue;
        }
        let give = give as u32;
        let now = layer.stats.bitrate;
        if give.abs_diff(now) > now / 10 {
            layer
                .encoder
                .set_bitrate(give)
                .map_err(codec_error(format!(
                    "set the {:?} layer's bitrate",
                    layer.quality
                )))?;
            layer.stats.bitrate = give;
        }
    }
    Ok(())
}

/// One layer's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerStats {
    /// Which layer.
    pub quality: VideoQuality,
    /// Its picture size.
    pub width: u32,
    /// Its picture height.
    pub height: u32,
    /// Frames encoded.
    pub encoded: u64,
    /// Keyframes among them.
    pub keyframes: u64,
    /// Pictures not encoded because nobody received the layer (dynacast).
    pub paused: u64,
    /// Pictures not encoded because the bandwidth estimate left the layer too little.
    pub starved: u64,
    /// Times the encoder stopped (dynacast or bandwidth) and started again with a keyframe.
    pub resumed: u64,
    /// Bytes of the frames handed to the engine.
    pub bytes: u64,
    /// The encoder's bitrate now, bits per second.
    pub bitrate: u32,
}

#[derive(Debug)]
struct Layer {
    quality: VideoQuality,
    nominal: u32,
    encoder: VideoEncoder,
    /// Scales the pushed picture to this layer (`None` for the full-size layer).
    scaler: Option<I420Scaler>,
    /// Encoded the last picture (a layer that starts again opens with a keyframe).
    running: bool,
    /// Paused by the bandwidth estimate.
    starved: bool,
    stats: LayerStats,
}

/// Encodes pictures and publishes them on a session track, across rejoins: one layer, or up
/// to three simulcast layers, in VP8, VP9 or H.264 (see the [module docs](self)). Answers
/// keyframe requests per layer.
#[derive(Debug)]
pub struct VideoPublisher {
    outlet: Outlet,
    /// Encrypts end to end when the session has keys.
    slot: std::sync::Arc<LocalSlot>,
    options: VideoOptions,
    layers: Vec<Layer>,
    /// Capture time of the bound track's first picture (its RTP time 0).
    start: Option<Instant>,
    last_rtp: Option<u64>,
    last_follow: Option<Instant>,
    estimate: Option<u64>,
    sent: u64,
    keyframes: u64,
}

impl VideoPublisher {
    /// Wrap a published video track with the encoders `options` asks for (the track must have
    /// been published with [`VideoOptions::track_options`]).
    pub fn new(
        track: PublishedTrack,
        options: impl Into<VideoOptions>,
    ) -> Result<Self, SessionError> {
        let options = options.into();
        check_kind(track.name(), track.kind(), wavecast_rtc::TrackKind::Video)?;
        options.check(track.name())?;
        let mut layers = Vec::new();
        for l in options.layers() {
            let mut config = VideoEncoderConfig::new(options.codec, l.width, l.height, options.fps);
            config.bitrate = l.bitrate;
            config.keyframe_interval = options.keyframe_interval;
            config.threads = options.threads;
            let encoder = VideoEncoder::new(config).map_err(codec_error(format!(
                "start {} {:?} layer {}x{} on {:?}",
                options.codec,
                l.quality,
                l.width,
                l.height,
                track.name()
            )))?;
            let scaler = if (l.width, l.height) == (options.width, options.height) {
                None
            } else {
                Some(
                    I420Scaler::new(l.width, l.height).map_err(codec_error(format!(
                        "scaler to {}x{} for {:?}",
                        l.width,
                        l.height,
                        track.name()
                    )))?,
                )
            };
            layers.push(Layer {
                quality: l.quality,
                nominal: l.bitrate,
                encoder,
                scaler,
                running: false,
                starved: false,
                stats: LayerStats {
                    quality: l.quality,
                    width: l.width,
                    height: l.height,
                    encoded: 0,
                    keyframes: 0,
                    paused: 0,
                    starved: 0,
                    resumed: 0,
                    bytes: 0,
                    bitrate: l.bitrate,
                },
            });
        }
        Ok(Self {
            slot: track.slot.clone(),
            outlet: Outlet::new(track),
            options,
            layers,
            start: None,
            last_rtp: None,
            last_follow: None,
            estimate: None,
            sent: 0,
            keyframes: 0,
        })
    }

    /// The session track.
    pub fn track(&self) -> &PublishedTrack {
        &self.outlet.track
    }

    /// How it publishes.
    pub fn options(&self) -> &VideoOptions {
        &self.options
    }

    /// Change the ceiling (bits per second over all layers; kept across rejoins). The layers'
    /// bitrates are scaled to it at once and follow the estimate within it.
    pub fn set_bitrate(&mut self, bitrate: u32) -> Result<(), SessionError> {
        self.options.max_bitrate = bitrate.max(self.options.min_bitrate);
        let layers = self.options.layers();
        for (layer, spec) in self.layers.iter_mut().zip(layers) {
            layer.nominal = spec.bitrate;
        }
        self.last_follow = None;
        self.allocate(self.estimate.unwrap_or(u64::MAX))
    }

    /// Pictures that went out in at least one layer, over all bindings, and how many of them
    /// carried a keyframe.
    pub fn frames_sent(&self) -> (u64, u64) {
        (self.sent, self.keyframes)
    }

    /// Bytes handed to the engine over all layers and bindings.
    pub fn bytes_sent(&self) -> u64 {
        self.layers.iter().map(|l| l.stats.bytes).sum()
    }

    /// Each layer's figures, smallest first.
    pub fn layer_stats(&self) -> Vec<LayerStats> {
        self.layers.iter().map(|l| l.stats).collect()
    }

    /// The last bandwidth estimate the publisher followed, bits per second.
    pub fn estimate(&self) -> Option<u64> {
        self.estimate
    }

    /// Pictures dropped because the session was reconnecting.
    pub fn dropped_while_reconnecting(&self) -> u64 {
        self.outlet.dropped
    }

    /// Hand out `estimate` (within floor and ceiling) smallest layer first.
    fn allocate(&mut self, estimate: u64) -> Result<(), SessionError> {
        allocate(&mut self.layers, &self.options, estimate)
    }

    /// Encode and queue one picture captured at `capture` in every layer that is received;
    /// `Ok(false)` when no layer queued a frame (the encoders skipped it, the layers are
    /// paused, the queue was full, or the session is reconnecting).
    pub fn push(&mut self, image: &I420<'_>, capture: Instant) -> Result<bool, SessionError> {
        let Self {
            outlet,
            slot,
            options,
            layers,
            start,
            last_rtp,
            last_follow,
            estimate,
            ..
        } = self;
        let Some((track, name, new)) = outlet.bind() else {
            return Ok(false);
        };
        if new {
            // A new RTP stream: its own time line, each layer starting with a keyframe.
            *start = None;
            *last_rtp = None;
            for l in layers.iter_mut() {
                l.running = false;
            }
        }
        if last_follow.is_none_or(|t| capture.saturating_duration_since(t) >= FOLLOW_EVERY) {
            *last_follow = Some(capture);
            if let Some(e) = track.target_bitrate() {
                *estimate = Some(e);
                allocate(layers, options, e)?;
            }
        }
        let all_keys = track.take_keyframe_request();
        let first = *start.get_or_insert(capture);
        let mut rtp = (capture.saturating_duration_since(first).as_micros() as u64) * 9 / 100;
        if let Some(last) = *last_rtp
            && rtp <= last
        {
            rtp = last + 1; // strictly increasing even for same-instant captures
        }
        let simulcast = layers.len() > 1;
        let mut wrote = false;
        let mut keyframe = false;
        let mut closed = false;
        for layer in layers.iter_mut() {
            let q = layer.quality;
            if simulcast && !track.layer_active(q) {
                layer.stats.paused += 1;
                layer.running = false;
                continue;
            }
            if layer.starved {
                layer.stats.starved += 1;
                layer.running = false;
                continue;
            }
            let asked = simulcast && track.take_layer_keyframe_request(q);
            if !layer.running || all_keys || asked {
                if !layer.running && layer.stats.encoded > 0 {
                    layer.stats.resumed += 1;
                }
                layer.encoder.force_keyframe();
                layer.running = true;
            }
            let Layer {
                encoder,
                scaler,
                stats,
                ..
            } = layer;
            let picture = match scaler {
                Some(s) => s.scale(image).map_err(codec_error(format!(
                    "scale video for {name:?} to its {q:?} layer"
                )))?,
                None => *image,
            };
            let encoded =
                encoder
                    .encode(&picture, rtp as i64)
                    .map_err(|source| SessionError::Codec {
                        operation: format!("encode video for {name:?} ({q:?} layer)"),
                        source,
                    })?;
            let Some(frame) = encoded else {
                continue;
            };
            let is_key = frame.keyframe;
            let len = frame.data.len() as u64;
            let Some(data) = slot.seal(frame.data.to_vec(), rtp) else {
                // No key to encrypt with: dropped (counted in the session's e2ee stats).
                continue;
            };
            let written = if simulcast {
                track.write_layer(q, data, rtp, capture)
            } else {
                track.write(data, rtp, capture)
            };
            match written {
                Ok(()) => {
                    stats.encoded += 1;
                    stats.bytes += len;
                    stats.keyframes += u64::from(is_key);
                    wrote = true;
                    keyframe |= is_key;
                }
                Err(WriteError::Full) => {}
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        if closed {
            // Closed: as for audio.
            self.outlet.dropped += 1;
            return Ok(false);
        }
        if wrote {
            self.last_rtp = Some(rtp);
            self.sent += 1;
            self.keyframes += u64::from(keyframe);
        }
        Ok(wrote)
    }

    /// Encode and queue an I420 pipeline frame.
    pub fn push_frame(
        &mut self,
        frame: &VideoFrame,
        capture: Instant,
    ) -> Result<bool, SessionError> {
        let image = wavecast_codec::pipeline::i420_of(frame).map_err(codec_error(format!(
            "encode video for {:?}",
            self.track().name()
        )))?;
        self.push(&image, capture)
    }
}
