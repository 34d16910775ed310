//! `--max-video-size` and `--max-tracks`: what a receiving app accepts from peers it does not
//! control.

use clap::Args;
use wavecast_stream::receive::ReceiveLimits;

/// Bounds on what remote peers can make this app decode.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Largest video picture decoded, WxH, taken as a pixel count: a keyframe announcing more
    /// pixels is refused before anything is allocated for it (the track is reported, not shown).
    #[arg(long, value_name = "WxH", default_value = "3840x2160", value_parser = parse_max_size)]
    pub max_video_size: (u32, u32),
    /// Most tracks decoded at once (one thread each); further subscriptions are refused and
    /// paused at the server.
    #[arg(long, value_name = "N", default_value_t = 32,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub max_tracks: u16,
}

impl LimitArgs {
    /// The limits the stream crate applies.
    pub fn limits(&self) -> ReceiveLimits {
        let (w, h) = self.max_video_size;
        ReceiveLimits {
            max_pixels: u64::from(w) * u64::from(h),
            max_tracks: usize::from(self.max_tracks),
        }
    }
}

/// `WxH` with each side 16..=16384 (VP8 pictures are at most 16383 wide and high).
pub fn parse_max_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once('x')
        .ok_or_else(|| format!("{s:?}: expected WxH, e.g. 3840x2160"))?;
    let side = |v: &str, what: &str| -> Result<u32, String> {
        let n: u32 = v.parse().map_err(|_| format!("{s:?}: bad {what}"))?;
        if (16..=16384).contains(&n) {
            Ok(n)
        } else {
            Err(format!("{s:?}: {what} must be 16..16384"))
        }
    };
    Ok((side(w, "width")?, side(h, "height")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_sizes_parse_and_bad_ones_are_named() {
        assert_eq!(parse_max_size("3840x2160"), Ok((3840, 2160)));
        for bad in ["", "x", "3840", "0x10", "16385x16", "ax2", "20x-1", "20×20"] {
            let e = parse_max_size(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn limits_count_pixels() {
        let l = LimitArgs {
            max_video_size: (1920, 1080),
            max_tracks: 4,
        }
        .limits();
        assert_eq!(l.max_pixels, 1920 * 1080);
        assert_eq!(l.max_tracks, 4);
    }
}
