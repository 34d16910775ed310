//! The configuration values and their validation rules.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// All of wavecast's settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where and as whom to connect.
    pub connection: ConnectionConfig,
    /// How to reconnect after the connection drops.
    pub reconnect: ReconnectPolicy,
    /// Audio capture and playback format.
    pub audio: AudioConfig,
    /// Video format and encoding.
    pub video: VideoConfig,
    /// The token service (`wavecast serve`).
    pub service: crate::service::ServiceConfig,
}

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionConfig {
    /// The LiveKit server URL (`ws`, `wss`, `http` or `https`).
    pub url: String,
    /// API key used to mint tokens (optional when a token is given directly).
    pub api_key: Option<String>,
    /// API secret paired with `api_key`.
    pub api_secret: Option<Secret>,
    /// Room to join.
    pub room: String,
    /// Participant identity (apps pick one when unset).
    pub identity: Option<String>,
    /// How long one connection attempt may take (1ms..=5m).
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How media reaches the server: `auto` (UDP, falling back to ICE over TCP), `udp`, `tcp`.
    pub transport: Transport,
}

/// How the media connections reach the server (`connection.transport`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// UDP; ICE over TCP too when UDP does not connect within 2 s.
    #[default]
    Auto,
    /// UDP only.
    Udp,
    /// ICE over TCP only (networks that drop UDP; the server's `rtc.tcp_port` must be open).
    Tcp,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Auto => "auto",
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        })
    }
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            url: "ws://127.0.0.1:7880".into(),
            api_key: None,
            api_secret: None,
            room: "wavecast".into(),
            identity: None,
            connect_timeout: Duration::from_secs(10),
            transport: Transport::Auto,
        }
    }
}

/// Reconnect policy: exponential backoff with jitter, up to a number of attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconnectPolicy {
    /// Delay before the first retry (1ms..=5m).
    #[serde(with = "humantime_serde")]
    pub initial_delay: Duration,
    /// Upper bound of any delay (1ms..=1h, at least `initial_delay`).
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
    /// Growth factor between attempts (finite, 1..=10).
    pub multiplier: f64,
    /// Random spread as a fraction of the delay (0 = none, 0.2 = ±20%; finite, 0..=1).
    pub jitter: f64,
    /// Attempts before giving up (0 = never retry).
    pub max_attempts: u32,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            multiplier: 2.0,
            jitter: 0.2,
            max_attempts: 10,
        }
    }
}

impl ReconnectPolicy {
    /// The delay before retry number `attempt` (1-based). `unit_random` in `[0, 1)` picks the
    /// jitter, so callers own the randomness and tests can pin it.
    ///
    /// Total for any field values, including ones [`crate::Loader`] would refuse (NaN or
    /// infinite factors, huge durations): the result never exceeds `max_delay` and this never
    /// panics.
    pub fn delay(&self, attempt: u32, unit_random: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(64) as i32;
        let max = self.max_delay.as_secs_f64();
        let base = self.initial_delay.as_secs_f64() * self.multiplier.powi(exp);
        // `f64::min` ignores a NaN operand, so a NaN base (NaN multiplier) falls back to `max`.
        let capped = base.min(max);
        let unit = if unit_random.is_nan() {
            0.5
        } else {
            unit_random.clamp(0.0, 1.0)
        };
        let spread = 1.0 + self.jitter * (2.0 * unit - 1.0);
        let secs = capped * spread;
        let secs = if secs.is_nan() {
            capped
        } else {
            secs.clamp(0.0, max)
        };
        // `as_secs_f64` of a huge `max_delay` rounds up past `Duration::MAX`: never convert back
        // beyond what we started from.
        Duration::try_from_secs_f64(secs)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }
}

/// Audio format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AudioConfig {
    /// Sample rate in Hz (8000, 16000, 24000 or 48000).
    pub sample_rate: u32,
    /// Channels (1 or 2).
    pub channels: u16,
}

impl Default for AudioConfig {
    fn default() -> Self {
        Self {
            sample_rate: 48_000,
            channels: 1,
        }
    }
}

/// Video codecs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoCodec {
    /// VP8 (libvpx).
    Vp8,
    /// VP9 (libvpx; one layer: LiveKit takes VP9 as one scalable stream).
    Vp9,
    /// H.264 (OpenH264, constrained baseline).
    H264,
}

impl fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VideoCodec::Vp8 => "vp8",
            VideoCodec::Vp9 => "vp9",
            VideoCodec::H264 => "h264",
        })
    }
}

/// Video format and encoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VideoConfig {
    /// Width in pixels (even, 16..=3840).
    pub width: u32,
    /// Height in pixels (even, 16..=2160).
    pub height: u32,
    /// Frames per second (1..=120).
    pub fps: u32,
    /// Codec.
    pub codec: VideoCodec,
    /// Target bitrate in kbit/s (50..=50000): the ceiling over all simulcast layers; the
    /// bandwidth estimate moves the encoders below it.
    pub bitrate: u32,
    /// The bitrate floor in kbit/s (20..=50000, at most `bitrate`): the smallest layer never
    /// gets less, whatever the bandwidth estimate says.
    pub min_bitrate: u32,
    /// Publish up to three simulcast layers (full, half, quarter size) instead of one.
    pub simulcast: bool,
}

impl Default for VideoConfig {
    fn default() -> Self {
        Self {
            width: 1280,
            height: 720,
            fps: 30,
            codec: VideoCodec::Vp8,
            bitrate: 1500,
            min_bitrate: 100,
            simulcast: false,
        }
    }
}

/// A secret string: shown as `[redacted]` in `Debug` and `Display`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// One rule broken by a value: the key and why. The loader adds value and source.
pub(crate) struct Violation {
    pub key: &'static str,
    pub value: String,
    pub message: String,
    /// For a missing value: the key whose presence requires it (its source is reported instead).
    pub required_by: Option<&'static str>,
}

/// Longest `reconnect.initial_delay`.
pub(crate) const MAX_INITIAL_DELAY: Duration = Duration::from_secs(5 * 60);
/// Longest `reconnect.max_delay`.
pub(crate) const MAX_MAX_DELAY: Duration = Duration::from_secs(60 * 60);
/// Longest `connection.connect_timeout`.
pub(crate) const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// A duration between 1 ms and `hi` (zero would make a busy retry loop; huge values overflow
/// clock arithmetic such as `Instant + duration`).
fn duration_range(out: &mut Vec<Violation>, key: &'static str, v: Duration, hi: Duration) {
    if v < Duration::from_millis(1) || v > hi {
        out.push(Violation {
            key,
            value: humantime::format_duration(v).to_string(),
            message: format!("must be between 1ms and {}", humantime::format_duration(hi)),
            required_by: None,
        });
    }
}

/// A finite float between `lo` and `hi` (NaN compares false with everything, so it needs its
/// own check; TOML and the environment both accept `nan` and `inf`).
fn float_range(out: &mut Vec<Violation>, key: &'static str, v: f64, lo: f64, hi: f64) {
    if !v.is_finite() {
        out.push(Violation {
            key,
            value: v.to_string(),
            message: format!("must be a finite number between {lo} and {hi}"),
            required_by: None,
        });
    } else {
        range(out, key, v, lo, hi);
    }
}

fn range<T: PartialOrd + fmt::Display + Copy>(
    out: &mut Vec<Violation>,
    key: &'static str,
    v: T,
    lo: T,
    hi: T,
) {
    if v < lo || v > hi {
        out.push(Violation {
            key,
            value: v.to_string(),
            message: format!("must be between {lo} and {hi}"),
            required_by: None,
        });
    }
}

impl Config {
    /// Check every rule; an empty list means valid.
    pub(crate) fn violations(&self) -> Vec<Violation> {
        let mut out = Vec::new();
        let c = &self.connection;
        match url::Url::parse(&c.url) {
            Ok(u)
                if matches!(u.scheme(), "ws" | "wss" | "http" | "https") && u.host().is_some() => {}
            Ok(u) if u.host().is_none() => out.push(Violation {
                key: "connection.url",
                value: format!("{:?}", c.url),
                message: "must name a host, e.g. ws://127.0.0.1:7880".into(),
                required_by: None,
            }),
            Ok(u) => out.push(Violation {
                key: "connection.url",
                value: format!("{:?}", c.url),
                message: format!(
                    "scheme {:?} is not allowed: use ws, wss, http or https",
                    u.scheme()
                ),
                required_by: None,
            }),
            Err(e) => out.push(Violation {
                key: "connection.url",
                value: format!("{:?}", c.url),
                message: format!("is not a URL ({e}): use e.g. ws://127.0.0.1:7880"),
                required_by: None,
            }),
        }
        if c.room.trim().is_empty() {
            out.push(Violation {
                key: "connection.room",
                value: "\"\"".into(),
                message: "must not be empty".into(),
                required_by: None,
            });
        }
        duration_range(
            &mut out,
            "connection.connect_timeout",
            c.connect_timeout,
            MAX_CONNECT_TIMEOUT,
        );
        match (&c.api_key, &c.api_secret) {
            (Some(_), None) => out.push(Violation {
                key: "connection.api_secret",
                value: "<missing>".into(),
                message: "is missing but connection.api_key is set: set LIVEKIT_API_SECRET, \
                          connection.api_secret in the config file, or --api-secret"
                    .into(),
                required_by: Some("connection.api_key"),
            }),
            (None, Some(_)) => out.push(Violation {
                key: "connection.api_key",
                value: "<missing>".into(),
                message: "is missing but connection.api_secret is set: set LIVEKIT_API_KEY, \
                          connection.api_key in the config file, or --api-key"
                    .into(),
                required_by: Some("connection.api_secret"),
            }),
            _ => {}
        }
        if let Some(s) = &c.api_secret
            && s.expose().is_empty()
        {
            out.push(Violation {
                key: "connection.api_secret",
                value: "\"\"".into(),
                message: "must not be empty".into(),
                required_by: None,
            });
        }

        let r = &self.reconnect;
        duration_range(
            &mut out,
            "reconnect.initial_delay",
            r.initial_delay,
            MAX_INITIAL_DELAY,
        );
        duration_range(&mut out, "reconnect.max_delay", r.max_delay, MAX_MAX_DELAY);
        if r.initial_delay > r.max_delay {
            out.push(Violation {
                key: "reconnect.initial_delay",
                value: humantime::format_duration(r.initial_delay).to_string(),
                message: format!(
                    "must not exceed reconnect.max_delay ({})",
                    humantime::format_duration(r.max_delay)
                ),
                required_by: None,
            });
        }
        float_range(&mut out, "reconnect.multiplier", r.multiplier, 1.0, 10.0);
        float_range(&mut out, "reconnect.jitter", r.jitter, 0.0, 1.0);
        range(&mut out, "reconnect.max_attempts", r.max_attempts, 0, 1000);

        let a = &self.audio;
        if ![8_000, 16_000, 24_000, 48_000].contains(&a.sample_rate) {
            out.push(Violation {
                key: "audio.sample_rate",
                value: a.sample_rate.to_string(),
                message: "must be one of 8000, 16000, 24000, 48000".into(),
                required_by: None,
            });
        }
        range(&mut out, "audio.channels", a.channels, 1, 2);

        let v = &self.video;
        range(&mut out, "video.width", v.width, 16, 3840);
        range(&mut out, "video.height", v.height, 16, 2160);
        for (key, val) in [("video.width", v.width), ("video.height", v.height)] {
            if val % 2 != 0 {
                out.push(Violation {
                    key,
                    value: val.to_string(),
                    message: "must be even (I420 chroma is subsampled 2×2)".into(),
                    required_by: None,
                });
            }
        }
        range(&mut out, "video.fps", v.fps, 1, 120);
        range(&mut out, "video.bitrate", v.bitrate, 50, 50_000);
        range(&mut out, "video.min_bitrate", v.min_bitrate, 20, 50_000);
        if v.min_bitrate > v.bitrate {
            out.push(Violation {
                key: "video.min_bitrate",
                value: v.min_bitrate.to_string(),
                message: format!("must not exceed video.bitrate ({})", v.bitrate),
                required_by: None,
            });
        }
        self.service.violations(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(Config::default().violations().is_empty());
    }

    #[test]
    fn backoff_grows_caps_and_jitters_within_bounds() {
        let p = ReconnectPolicy::default();
        assert_eq!(p.delay(1, 0.5), Duration::from_millis(500));
        assert_eq!(p.delay(2, 0.5), Duration::from_secs(1));
        assert_eq!(p.delay(3, 0.5), Duration::from_secs(2));
        assert_eq!(p.delay(30, 0.5), Duration::from_secs(10));
        let lo = p.delay(3, 0.0);
        let hi = p.delay(3, 0.999_999);
        assert!((lo.as_secs_f64() - 1.6).abs() < 1e-6, "{lo:?}");
        assert!((hi.as_secs_f64() - 2.4).abs() < 1e-3, "{hi:?}");
        assert!(
            p.delay(30, 1.0) <= p.max_delay,
            "jitter never exceeds the cap"
        );
    }

    #[test]
    fn secret_debug_and_display_are_redacted() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s}").contains("hunter2"));
        let mut c = Config::default();
        c.connection.api_secret = Some(s);
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
