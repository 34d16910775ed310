//! What a load test does: who joins where, what is published, for how long. Validated before
//! anything connects.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use wavecast_token::Keys;

use crate::error::LoadTestError;

/// The synthetic video every publisher sends: colour bars, a moving box and the frame stamp
/// (frame number + capture time) that subscribers read back for delivery and latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VideoSettings {
    /// Width in pixels (even, at least 96 so the stamp fits).
    pub width: u32,
    /// Height in pixels (even).
    pub height: u32,
    /// Frames per second (1..=60).
    pub fps: u32,
    /// VP8 target bitrate, bits per second.
    pub bitrate: u32,
}

impl Default for VideoSettings {
    /// 640x360 at 30 fps, 600 kbit/s.
    fn default() -> Self {
        Self {
            width: 640,
            height: 360,
            fps: 30,
            bitrate: 600_000,
        }
    }
}

/// Everything a load test needs. Build with [`LoadTestConfig::new`], adjust the public fields,
/// then [`LoadTestConfig::validate`] (which [`crate::LoadTest::new`] calls).
#[derive(Clone)]
#[non_exhaustive]
pub struct LoadTestConfig {
    /// The LiveKit server URL (`ws`, `wss`, `http` or `https`); clients join here.
    pub url: String,
    /// More URLs of the same deployment (other nodes of a cluster): joins go round-robin over
    /// `url` and these.
    pub extra_urls: Vec<String>,
    /// API key and secret that mint every participant's token.
    pub keys: Keys,
    /// Publishers, spread round-robin over the rooms (at least one per room).
    pub publishers: usize,
    /// Subscribers, spread round-robin over the rooms (at least one per room).
    pub subscribers: usize,
    /// Rooms.
    pub rooms: usize,
    /// Room names are `<room_prefix>-<n>`.
    pub room_prefix: String,
    /// How long the measurement runs once every participant has joined (or failed to).
    pub duration: Duration,
    /// Joins per second (publishers first, then subscribers); `None` joins everybody at once.
    pub ramp: Option<f64>,
    /// The video each publisher sends.
    pub video: VideoSettings,
    /// Whether each publisher also sends a 440 Hz tone (Opus, mono, 32 kbit/s).
    pub audio: bool,
    /// How long one join (signal + both media connections) may take before it counts as failed.
    pub join_timeout: Duration,
    /// Latency samples of each track's first `warmup` after its first frame are not recorded
    /// (the first frames wait for a keyframe and the jitter settles).
    pub warmup: Duration,
    /// Frames captured less than this before the end are not expected to have arrived.
    pub in_flight_allowance: Duration,
}

impl fmt::Debug for LoadTestConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadTestConfig")
            .field("url", &self.url)
            .field("extra_urls", &self.extra_urls)
            .field("keys", &self.keys)
            .field("publishers", &self.publishers)
            .field("subscribers", &self.subscribers)
            .field("rooms", &self.rooms)
            .field("duration", &self.duration)
            .field("ramp", &self.ramp)
            .field("video", &self.video)
            .field("audio", &self.audio)
            .finish_non_exhaustive()
    }
}

impl LoadTestConfig {
    /// One publisher and ten subscribers in one room for 30 s, 640x360p30 + tone, everybody
    /// joining at once.
    pub fn new(url: impl Into<String>, keys: Keys) -> Self {
        Self {
            url: url.into(),
            extra_urls: Vec::new(),
            keys,
            publishers: 1,
            subscribers: 10,
            rooms: 1,
            room_prefix: "load".into(),
            duration: Duration::from_secs(30),
            ramp: None,
            video: VideoSettings::default(),
            audio: true,
            join_timeout: Duration::from_secs(15),
            warmup: Duration::from_secs(1),
            in_flight_allowance: Duration::from_secs(1),
        }
    }

    /// Every URL joins go to, in round-robin order.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.url.as_str()).chain(self.extra_urls.iter().map(String::as_str))
    }

    /// Check every value; the error names the setting, the value and the allowed range.
    pub fn validate(&self) -> Result<(), LoadTestError> {
        let bad = |setting: &'static str, value: String, allowed: String| {
            Err(LoadTestError::InvalidConfig {
                setting,
                value,
                allowed,
            })
        };
        for url in self.urls() {
            let scheme = url.split_once("://").map(|(s, _)| s);
            if !matches!(scheme, Some("ws" | "wss" | "http" | "https")) {
                return bad(
                    "url",
                    url.to_owned(),
                    "a ws://, wss://, http:// or https:// URL".into(),
                );
            }
        }
        if self.keys.key().is_empty() {
            return bad(
                "api_key",
                "(empty)".into(),
                "the API key of the server".into(),
            );
        }
        if self.rooms == 0 {
            return bad("rooms", "0".into(), "at least 1".into());
        }
        if self.publishers == 0 {
            return bad("publishers", "0".into(), "at least 1".into());
        }
        if self.subscribers == 0 {
            return bad("subscribers", "0".into(), "at least 1".into());
        }
        if self.publishers < self.rooms {
            return bad(
                "publishers",
                self.publishers.to_string(),
                format!(
                    "at least the number of rooms ({}): every room needs a publisher",
                    self.rooms
                ),
            );
        }
        if self.subscribers < self.rooms {
            return bad(
                "subscribers",
                self.subscribers.to_string(),
                format!(
                    "at least the number of rooms ({}): every room needs a subscriber",
                    self.rooms
                ),
            );
        }
        let floor = self.in_flight_allowance + Duration::from_secs(1);
        if self.duration < floor {
            return bad(
                "duration",
                format!("{:?}", self.duration),
                format!("at least {floor:?}"),
            );
        }
        if let Some(r) = self.ramp
            && !(r.is_finite() && r > 0.0)
        {
            return bad(
                "ramp",
                r.to_string(),
                "a positive number of joins per second".into(),
            );
        }
        let v = self.video;
        if v.width < wavecast_media::stamp::MIN_WIDTH
            || v.width > 3840
            || !v.width.is_multiple_of(2)
        {
            return bad(
                "video width",
                v.width.to_string(),
                format!(
                    "an even number from {} to 3840",
                    wavecast_media::stamp::MIN_WIDTH
                ),
            );
        }
        let band = wavecast_media::stamp::band_height(v.width);
        if v.height < band.max(2) || v.height > 2160 || !v.height.is_multiple_of(2) {
            return bad(
                "video height",
                v.height.to_string(),
                format!("an even number from {} to 2160", band.max(2)),
            );
        }
        if !(1..=60).contains(&v.fps) {
            return bad("fps", v.fps.to_string(), "1 to 60".into());
        }
        if !(50_000..=20_000_000).contains(&v.bitrate) {
            return bad(
                "video bitrate",
                format!("{} bit/s", v.bitrate),
                "50 kbit/s to 20 Mbit/s".into(),
            );
        }
        if self.join_timeout.is_zero() {
            return bad("join_timeout", "0s".into(), "more than 0s".into());
        }
        if self.room_prefix.is_empty()
            || !self
                .room_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return bad(
                "room_prefix",
                format!("{:?}", self.room_prefix),
                "letters, digits, '-' and '_'".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LoadTestConfig {
        LoadTestConfig::new("ws://127.0.0.1:7880", Keys::new("devkey", "secret"))
    }

    fn setting_of(c: &LoadTestConfig) -> &'static str {
        match c.validate() {
            Err(LoadTestError::InvalidConfig { setting, .. }) => setting,
            other => panic!("expected an invalid config, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_valid() {
        config().validate().unwrap();
    }

    #[test]
    fn zero_and_too_few_participants_are_refused() {
        let mut c = config();
        c.subscribers = 0;
        assert_eq!(setting_of(&c), "subscribers");
        let mut c = config();
        c.publishers = 0;
        assert_eq!(setting_of(&c), "publishers");
        let mut c = config();
        c.rooms = 3;
        c.publishers = 2;
        assert_eq!(setting_of(&c), "publishers");
        c.publishers = 3;
        c.subscribers = 2;
        assert_eq!(setting_of(&c), "subscribers");
    }

    #[test]
    fn bad_values_name_their_setting() {
        let mut c = config();
        c.duration = Duration::from_millis(500);
        assert_eq!(setting_of(&c), "duration");
        let mut c = config();
        c.ramp = Some(-1.0);
        assert_eq!(setting_of(&c), "ramp");
        let mut c = config();
        c.video.width = 50;
        assert_eq!(setting_of(&c), "video width");
        let mut c = config();
        c.video.fps = 0;
        assert_eq!(setting_of(&c), "fps");
        let mut c = config();
        c.url = "127.0.0.1:7880".into();
        assert_eq!(setting_of(&c), "url");
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("url") && err.contains("127.0.0.1:7880"),
            "{err}"
        );
    }

    #[test]
    fn debug_does_not_show_the_secret() {
        let c = LoadTestConfig::new("ws://x", Keys::new("k", "super-secret-value"));
        assert!(!format!("{c:?}").contains("super-secret-value"));
    }
}
