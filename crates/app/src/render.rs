//! Flags and helpers of the apps that render (the viewer, the room visualizer): window or
//! headless, PNG dumps, the stats file, the window's options.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use wavecast_config::{Config, Loader};
use wavecast_visualizer::headless::LoopOptions;
use wavecast_visualizer::window::WindowOptions;

/// The flags every app that watches a room and renders it shares (flattened into its own):
/// where to connect, how to render, and the bounds against hostile publishers.
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Where to connect and as whom.
    #[command(flatten)]
    pub conn: crate::ConnectArgs,
    /// Window or headless, dumps, the stats file.
    #[command(flatten)]
    pub render: RenderArgs,
    /// Largest picture, most tracks decoded.
    #[command(flatten)]
    pub limits: crate::limits::LimitArgs,
}

impl WatchArgs {
    /// Loads the configuration from `loader` ([`crate::loader`] of [`Self::conn`], with the
    /// app's own layers) and checks the render flags against the app's `--frames`.
    ///
    /// # Errors
    /// The configuration's problems (each naming its key and source), or the render flags that
    /// do not go together.
    pub fn load(&self, loader: Loader, frames: Option<u64>) -> anyhow::Result<Config> {
        let config = loader
            .load()
            .map_err(|e| anyhow::anyhow!(crate::config_error_message(&e)))?;
        self.render.validate(frames).map_err(anyhow::Error::msg)?;
        Ok(config)
    }
}

/// How to render (flattened into an app's flags).
#[derive(Debug, Clone, Args)]
pub struct RenderArgs {
    /// Render offscreen instead of opening a window (no display needed).
    #[arg(long)]
    pub headless: bool,
    /// Headless: write rendered frames as PNG and stats.json into DIR.
    #[arg(long, value_name = "DIR")]
    pub dump: Option<PathBuf>,
    /// Headless: write every Nth rendered frame with --dump.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub dump_every: u64,
    /// Write the statistics JSON here [default: DIR/stats.json with --dump].
    #[arg(long, value_name = "FILE")]
    pub stats: Option<PathBuf>,
    /// Give up when --frames are not reached within this time.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Window: write the last frame as PNG here (with --frames).
    #[arg(long, value_name = "FILE")]
    pub screenshot: Option<PathBuf>,
}

impl RenderArgs {
    /// Checks the combinations (`frames`: the app's `--frames`).
    ///
    /// # Errors
    /// A sentence naming the flags that do not go together.
    pub fn validate(&self, frames: Option<u64>) -> Result<(), String> {
        if self.dump.is_some() && !self.headless {
            return Err(
                "--dump needs --headless (in a window use --frames N --screenshot FILE)".into(),
            );
        }
        if self.screenshot.is_some() && (self.headless || frames.is_none()) {
            return Err("--screenshot is for windowed runs with --frames N".into());
        }
        if self.dump_every == 0 {
            return Err("--dump-every must be at least 1".into());
        }
        Ok(())
    }

    /// The headless run loop's options: PNG dumps, and a deadline when `frames` are wanted
    /// (`--timeout`; one beyond the clock's range never expires instead of overflowing).
    pub fn loop_options(
        &self,
        size: (u32, u32),
        frames: Option<u64>,
        min_interval: Duration,
    ) -> LoopOptions {
        LoopOptions {
            size,
            dump: self.dump.clone(),
            dump_every: self.dump_every,
            deadline: frames.and_then(|_| std::time::Instant::now().checked_add(self.timeout)),
            min_interval,
        }
    }

    /// Where the stats file goes (`--stats`, else `DIR/stats.json` with `--dump`).
    pub fn stats_path(&self) -> Option<PathBuf> {
        self.stats
            .clone()
            .or_else(|| self.dump.as_ref().map(|d| d.join("stats.json")))
    }

    /// The window's options (vsync; the timeout only matters with `frames`).
    pub fn window(&self, title: String, size: (u32, u32), frames: Option<u64>) -> WindowOptions {
        WindowOptions {
            title,
            size,
            frames,
            screenshot: self.screenshot.clone(),
            vsync: true,
            resize_script: false,
            timeout: if frames.is_some() {
                self.timeout
            } else {
                Duration::from_secs(u64::MAX / 4)
            },
        }
    }
}

/// Parses a window or image size, `WxH`, 64..7680 × 64..4320.
///
/// # Errors
/// A sentence saying what is wrong.
pub fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once('x')
        .ok_or_else(|| format!("{s:?}: expected WxH, e.g. 960x540"))?;
    let w: u32 = w.parse().map_err(|_| format!("{s:?}: bad width"))?;
    let h: u32 = h.parse().map_err(|_| format!("{s:?}: bad height"))?;
    if !(64..=7680).contains(&w) || !(64..=4320).contains(&h) {
        return Err(format!(
            "{s:?}: width and height must be 64..7680 and 64..4320"
        ));
    }
    Ok((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("960x540"), Ok((960, 540)));
        assert_eq!(parse_size("1280x720"), Ok((1280, 720)));
        assert!(parse_size("960").is_err());
        assert!(parse_size("big").is_err());
        assert!(parse_size("1x1").is_err());
    }
}
