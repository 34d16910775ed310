//! The video codecs wavecast speaks, by name and by RTP/SDP MIME type.

use std::fmt;
use std::str::FromStr;

/// A video codec: what a track is encoded with.
///
/// ```
/// use wavecast_codec::VideoCodec;
/// let c: VideoCodec = "H264".parse()?;
/// assert_eq!(c, VideoCodec::H264);
/// assert_eq!(c.mime(), "video/H264");
/// assert_eq!(VideoCodec::from_mime("video/vp9"), Some(VideoCodec::Vp9));
/// assert_eq!(VideoCodec::Vp8.to_string(), "vp8");
/// # Ok::<(), wavecast_codec::UnknownCodec>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VideoCodec {
    /// VP8 (RFC 6386), over libvpx.
    Vp8,
    /// VP9, over libvpx.
    Vp9,
    /// H.264 constrained baseline (packetization-mode 1), over OpenH264.
    H264,
}

impl VideoCodec {
    /// Every codec, in order of preference of nothing in particular.
    pub const ALL: [VideoCodec; 3] = [VideoCodec::Vp8, VideoCodec::Vp9, VideoCodec::H264];

    /// The short lower-case name: `vp8`, `vp9`, `h264`.
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => "vp8",
            VideoCodec::Vp9 => "vp9",
            VideoCodec::H264 => "h264",
        }
    }

    /// The MIME type as LiveKit and SDP write it: `video/VP8`, `video/VP9`, `video/H264`.
    pub fn mime(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => "video/VP8",
            VideoCodec::Vp9 => "video/VP9",
            VideoCodec::H264 => "video/H264",
        }
    }

    /// The codec of a MIME type (ASCII case-insensitive, as SDP compares them); `None` for
    /// anything else.
    pub fn from_mime(mime: &str) -> Option<VideoCodec> {
        VideoCodec::ALL
            .into_iter()
            .find(|c| c.mime().eq_ignore_ascii_case(mime))
    }
}

impl fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A codec name that is not one of `vp8`, `vp9`, `h264`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown video codec {given:?}: expected one of vp8, vp9, h264")]
pub struct UnknownCodec {
    /// What was given.
    pub given: String,
}

impl FromStr for VideoCodec {
    type Err = UnknownCodec;

    /// `vp8`, `vp9` or `h264`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VideoCodec::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownCodec {
                given: s.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_mimes_and_parsing() {
        for c in VideoCodec::ALL {
            assert_eq!(c.name().parse::<VideoCodec>(), Ok(c));
            assert_eq!(c.name().to_uppercase().parse::<VideoCodec>(), Ok(c));
            assert_eq!(c.to_string(), c.name());
            assert_eq!(VideoCodec::from_mime(c.mime()), Some(c));
            assert_eq!(VideoCodec::from_mime(&c.mime().to_lowercase()), Some(c));
            assert_eq!(VideoCodec::from_mime(&c.mime().to_uppercase()), Some(c));
        }
        assert_eq!(VideoCodec::Vp8.mime(), "video/VP8");
        assert_eq!(VideoCodec::Vp9.mime(), "video/VP9");
        assert_eq!(VideoCodec::H264.mime(), "video/H264");
        assert_eq!("Vp9".parse(), Ok(VideoCodec::Vp9));
        assert_eq!(VideoCodec::from_mime("video/AV1"), None);
        assert_eq!(VideoCodec::from_mime("vp8"), None);
        assert_eq!(VideoCodec::from_mime("audio/opus"), None);
    }

    #[test]
    fn a_bad_name_is_named_in_the_error_with_the_choices() {
        let e = "h265".parse::<VideoCodec>().unwrap_err();
        assert_eq!(e.given, "h265");
        let msg = e.to_string();
        assert!(msg.contains("\"h265\""), "{msg}");
        for c in VideoCodec::ALL {
            assert!(msg.contains(c.name()), "{msg}");
        }
        assert!("".parse::<VideoCodec>().is_err());
        assert!(" vp8".parse::<VideoCodec>().is_err());
        assert!("video/VP8".parse::<VideoCodec>().is_err());
    }
}
