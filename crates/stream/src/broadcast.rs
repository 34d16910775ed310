//! A broadcast: one publish loop per kind (video, audio) and its published track — publish,
//! mute, leave, and the counters as a stats line and a serde summary. Also the small command
//! language a broadcaster reads from stdin (`mute audio`, `toggle video`, `stats`, `quit`).

use std::sync::atomic::Ordering;
use std::time::Instant;

use serde::Serialize;
use wavecast_session::{LocalParticipant, PublishedTrack, SessionError, VideoOptions};
use wavecast_session::{TrackOptions, TrackSource};

use crate::error::{Result, StreamError};
use crate::publish::{Capture, Control};

/// Which tracks a command is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kinds {
    /// The audio track.
    Audio,
    /// The video track.
    Video,
    /// Both.
    Both,
}

/// A broadcast command (what a broadcaster reads from stdin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Mute (`true`) or unmute.
    Mute(Kinds, bool),
    /// Flip the mute state.
    Toggle(Kinds),
    /// Print the stats line.
    Stats,
    /// Leave.
    Quit,
    /// Print the commands.
    Help,
}

/// The commands, for `help` and errors.
pub const COMMANDS_HELP: &str = "commands: mute [audio|video], unmute [audio|video], \
                                 toggle [audio|video], stats, quit";

impl std::str::FromStr for Command {
    type Err = String;

    fn from_str(line: &str) -> std::result::Result<Self, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let kinds = |w: Option<&&str>| match w.copied() {
            None | Some("all") | Some("both") => Ok(Kinds::Both),
            Some("audio") | Some("a") | Some("mic") => Ok(Kinds::Audio),
            Some("video") | Some("v") | Some("camera") => Ok(Kinds::Video),
            Some(other) => Err(format!("unknown track {other:?}: audio, video or all")),
        };
        match words.first().copied() {
            Some("mute" | "m") => Ok(Command::Mute(kinds(words.get(1))?, true)),
            Some("unmute" | "u") => Ok(Command::Mute(kinds(words.get(1))?, false)),
            Some("toggle" | "t") => Ok(Command::Toggle(kinds(words.get(1))?)),
            Some("stats" | "s") => Ok(Command::Stats),
            Some("quit" | "q" | "exit") => Ok(Command::Quit),
            Some("help" | "h" | "?") => Ok(Command::Help),
            Some(other) => Err(format!("unknown command {other:?}; {COMMANDS_HELP}")),
            None => Err(COMMANDS_HELP.into()),
        }
    }
}

/// One kind's publish loop and track.
#[derive(Debug)]
struct Kind {
    name: &'static str,
    capture: Capture,
    track: Option<PublishedTrack>,
    muted: bool,
}

/// What the video track is, for the server.
#[derive(Debug, Clone, Copy)]
pub struct VideoTrackInfo {
    /// Picture size.
    pub size: (u32, u32),
    /// A screen share (else a camera).
    pub screen: bool,
    /// How it is encoded and published (codec, simulcast, bitrate range); `None`: one VP8
    /// layer written by the loop's own encoder.
    pub publish: Option<VideoOptions>,
}

/// The publish loops of one participant and their tracks.
#[derive(Debug)]
pub struct Broadcast {
    kinds: Vec<Kind>,
    video: Option<VideoTrackInfo>,
    rates: (Instant, [(u64, u64); 2]),
}

/// One kind's totals (the summary).
#[derive(Debug, Clone, Serialize)]
pub struct KindSummary {
    /// Frames or packets produced by the source.
    pub captured: u64,
    /// Accepted by the track.
    pub sent: u64,
    /// Bytes accepted.
    pub bytes: u64,
    /// Keyframes sent.
    pub keyframes: u64,
    /// Dropped (track full, reconnecting, capture late).
    pub dropped: u64,
    /// Captured while there was no track.
    pub offline: u64,
    /// Frame number of the last frame sent (video).
    pub last_frame_number: u64,
    /// Why the loop ended, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Broadcast {
    /// Takes over running publish loops (`video` with its track info, `audio`), muted as given.
    pub fn new(
        video: Option<(Capture, VideoTrackInfo, bool)>,
        audio: Option<(Capture, bool)>,
    ) -> Self {
        let mut kinds = Vec::new();
        let info = video.as_ref().map(|(_, i, _)| *i);
        if let Some((capture, _, muted)) = video {
            kinds.push(Kind {
                name: "video",
                capture,
                track: None,
                muted,
            });
        }
        if let Some((capture, muted)) = audio {
            kinds.push(Kind {
                name: "audio",
                capture,
                track: None,
                muted,
            });
        }
        for k in &kinds {
            k.capture.send(Control::Mute(k.muted));
            tracing::info!("{}: {}", k.name, k.capture.describe);
        }
        Self {
            kinds,
            video: info,
            rates: (Instant::now(), [(0, 0); 2]),
        }
    }

    /// Publishes a track per kind as `me` (keeping the mute state) and points the loops at
    /// them. The room publishes them again by itself after a rejoin.
    ///
    /// # Errors
    /// [`StreamError::Publish`] naming the track the server refused.
    pub async fn publish(&mut self, me: &LocalParticipant) -> Result<()> {
        for k in &mut self.kinds {
            if let (
                "video",
                Some(VideoTrackInfo {
                    publish: Some(mut options),
                    screen,
                    ..
                }),
            ) = (k.name, self.video)
            {
                if screen {
                    options.source = TrackSource::ScreenShare;
                }
                let name = if screen { "screen" } else { "camera" };
                let publisher =
                    me.publish_video(name, options)
                        .await
                        .map_err(|source: SessionError| StreamError::Publish {
                            track: k.name.to_owned(),
                            source: Box::new(source),
                        })?;
                let track = publisher.track().clone();
                if k.muted
                    && let Err(e) = me.set_track_muted(&track, true).await
                {
                    tracing::warn!("could not tell the server video is muted: {e}");
                }
                let layers = options.layers();
                tracing::info!(
                    "publishing video as track {} in {} ({} layer{}: {}){}",
                    track.sid().unwrap_or_default(),
                    options.codec,
                    layers.len(),
                    if layers.len() == 1 { "" } else { "s" },
                    layers
                        .iter()
                        .map(|l| format!("{}x{}", l.width, l.height))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if k.muted { " (muted)" } else { "" }
                );
                k.capture
                    .send(Control::Publisher(Some(Box::new(publisher))));
                k.track = Some(track);
                continue;
            }
            let mut opts = match (k.name, self.video) {
                ("video", Some(v)) if v.screen => {
                    let mut o = TrackOptions::video("screen", v.size.0, v.size.1);
                    o.source = TrackSource::ScreenShare;
                    o
                }
                ("video", Some(v)) => TrackOptions::video("camera", v.size.0, v.size.1),
                _ => TrackOptions::audio("microphone"),
            };
            opts.muted = k.muted;
            let track = me
                .publish_track(opts)
                .await
                .map_err(|source: SessionError| StreamError::Publish {
                    track: k.name.to_owned(),
                    source: Box::new(source),
                })?;
            tracing::info!(
                "publishing {} as track {}{}",
                k.name,
                track.sid().unwrap_or_default(),
                if k.muted { " (muted)" } else { "" }
            );
            k.capture.send(Control::Sink(Some(Box::new(track.clone()))));
            k.track = Some(track);
        }
        Ok(())
    }

    /// Mutes (`Some(true)`), unmutes or toggles (`None`) the chosen tracks, locally and on the
    /// server.
    pub async fn set_muted(&mut self, me: &LocalParticipant, which: Kinds, to: Option<bool>) {
        for k in &mut self.kinds {
            let hit = match which {
                Kinds::Both => true,
                Kinds::Audio => k.name == "audio",
                Kinds::Video => k.name == "video",
            };
            if !hit {
                continue;
            }
            let m = to.unwrap_or(!k.muted);
            k.muted = m;
            k.capture.send(Control::Mute(m));
            if let Some(t) = &k.track {
                match me.set_track_muted(t, m).await {
                    Ok(()) => tracing::info!("{} {}", k.name, if m { "muted" } else { "unmuted" }),
                    Err(e) => tracing::warn!("could not tell the server {} is muted: {e}", k.name),
                }
            }
        }
    }

    /// Points the loops at no track (they keep their clocks) and forgets the tracks.
    pub fn detach(&mut self) {
        for k in &mut self.kinds {
            k.track = None;
            k.capture.send(Control::Publisher(None));
            k.capture.send(Control::Sink(None));
        }
    }

    /// Whether a loop ended (an error, or the end of a non-looping source).
    pub fn any_finished(&self) -> bool {
        self.kinds.iter().any(|k| k.capture.is_finished())
    }

    /// Rates since the last call, one part per kind: `video 29.8 fps 1180 kbit/s (…)`.
    pub fn stats_parts(&mut self) -> Vec<String> {
        let secs = self.rates.0.elapsed().as_secs_f64().max(1e-3);
        self.rates.0 = Instant::now();
        let mut parts = Vec::new();
        for (i, k) in self.kinds.iter().enumerate().take(2) {
            let (sent, bytes, key, dropped) = k.capture.stats.snapshot();
            let (s0, b0) = self.rates.1[i];
            self.rates.1[i] = (sent, bytes);
            let rate = (sent - s0) as f64 / secs;
            let kbps = (bytes - b0) as f64 * 8.0 / secs / 1000.0;
            let muted = if k.capture.stats.muted.load(Ordering::Relaxed) {
                " muted"
            } else {
                ""
            };
            if k.name == "video" {
                let enc = k.capture.stats.encode_us.load(Ordering::Relaxed) as f64
                    / sent.max(1) as f64
                    / 1000.0;
                parts.push(format!(
                    "video {rate:.1} fps {kbps:.0} kbit/s (sent {sent}, key {key}, dropped \
                     {dropped}, encode {enc:.1} ms){muted}"
                ));
            } else {
                parts.push(format!(
                    "audio {rate:.1} pkt/s {kbps:.0} kbit/s (sent {sent}, dropped {dropped}){muted}"
                ));
            }
        }
        parts
    }

    /// Stops the loops and returns each kind's totals by name (`video`, `audio`).
    pub fn stop(self) -> Vec<(&'static str, KindSummary)> {
        self.kinds
            .into_iter()
            .map(|k| {
                let s = &k.capture.stats;
                let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
                let mut summary = KindSummary {
                    captured: load(&s.captured),
                    sent: load(&s.sent),
                    bytes: load(&s.bytes),
                    keyframes: load(&s.keyframes),
                    dropped: load(&s.dropped),
                    offline: load(&s.offline),
                    last_frame_number: load(&s.last_frame_number),
                    error: None,
                };
                let name = k.name;
                if let Err(e) = k.capture.stop() {
                    tracing::error!("{name} capture: {e}");
                    summary.error = Some(e.to_string());
                }
                (name, summary)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        let p = |s: &str| s.parse::<Command>();
        assert_eq!(p("mute audio"), Ok(Command::Mute(Kinds::Audio, true)));
        assert_eq!(p("unmute video\n"), Ok(Command::Mute(Kinds::Video, false)));
        assert_eq!(p("mute"), Ok(Command::Mute(Kinds::Both, true)));
        assert_eq!(p("t a"), Ok(Command::Toggle(Kinds::Audio)));
        assert_eq!(p("quit"), Ok(Command::Quit));
        assert!(p("mute screen").unwrap_err().contains("screen"));
        assert!(p("dance").unwrap_err().contains("commands:"));
    }
}
