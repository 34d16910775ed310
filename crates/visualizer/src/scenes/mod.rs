//! Reusable scenes: what the apps show, fed by pipeline sinks (a video mailbox, audio queues)
//! and a plain status struct the scene polls once per update — so any source of frames and
//! state (a room, a loopback, a file) can drive them, in a window or headless.
//!
//! - [`ParticipantScene`]: one participant's video, waveform, meter and stats overlay;
//! - [`RoomGridScene`]: every participant of a room in a grid.
//!
//! Both draw [`CaptionLine`]s (chat, transcriptions) under the speaker: word-wrapped, newest at
//! the bottom, on dark boxes, fading with their opacity.

mod participant;
mod room_grid;

use crate::Rect;
use crate::geom::palette;
use crate::shapes::ShapeRenderer;
use crate::text::{Align, TextLayer};

pub use participant::{ParticipantFeeds, ParticipantScene, ParticipantStatus, ViewerLayout};
pub use room_grid::{RoomGridScene, RoomStatus, TileFeed, TileReport, TileSizes};

/// How a scene gets its status: called once per update on the rendering thread (keep it
/// cheap: read atomics and watch channels, copy a few strings).
pub type StatusFn<T> = Box<dyn Fn() -> T>;

/// Where the connection stands, as scenes show it.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum LinkStatus {
    /// Joining.
    #[default]
    Connecting,
    /// In the room.
    Connected {
        /// The room's name.
        room: String,
    },
    /// Waiting to retry after a failed attempt or a lost connection.
    Reconnecting {
        /// Attempt number (0: the connection was just lost).
        attempt: u32,
        /// Attempts allowed.
        max: u32,
        /// Why we are offline.
        cause: String,
    },
    /// Gave up or left.
    Disconnected {
        /// Why.
        reason: String,
    },
}

/// One caption under a participant (a chat message or a transcription), as a scene draws it.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionLine {
    /// The text (wrapped to the caption area by the scene).
    pub text: String,
    /// Opacity, 0..=1 (captions fade out).
    pub alpha: f32,
}

/// Lines shown at most under one participant, after wrapping.
pub const MAX_CAPTION_LINES: usize = 3;

/// Line height of captions drawn at `font` pixels.
pub fn caption_line_height(font: f32) -> f32 {
    (font * 1.45).ceil()
}

/// `text` broken into lines of at most `width` characters, at spaces where it can (a longer
/// word is cut).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut len = 0;
    for word in text.split_whitespace() {
        let mut chars: Vec<char> = word.chars().collect();
        while !chars.is_empty() {
            let room = if len == 0 { width } else { width - len - 1 };
            if chars.len() <= room {
                if len > 0 {
                    line.push(' ');
                    len += 1;
                }
                line.extend(chars.iter());
                len += chars.len();
                chars.clear();
            } else if len > 0 {
                lines.push(std::mem::take(&mut line));
                len = 0;
            } else {
                line.extend(chars.drain(..width));
                lines.push(std::mem::take(&mut line));
            }
        }
        if len >= width {
            lines.push(std::mem::take(&mut line));
            len = 0;
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Draws `captions` at the bottom of `area`, centred, newest at the bottom: each wrapped to the
/// area's width (characters estimated from `font`), at most [`MAX_CAPTION_LINES`] lines in all
/// (the newest), each on a dark box. Returns the lines drawn.
pub(crate) fn draw_captions(
    shapes: &mut ShapeRenderer,
    text: &mut TextLayer,
    captions: &[CaptionLine],
    area: Rect,
    font: f32,
) -> Vec<String> {
    let line_h = caption_line_height(font);
    let pad = (font * 0.4).ceil();
    // DejaVu Sans averages ~0.55 em per character; a wide glyph is clipped by the area.
    let per_line = ((area.w - 2.0 * pad) / (font * 0.58)).floor().max(4.0) as usize;
    let max_lines = MAX_CAPTION_LINES.min((area.h / line_h).floor() as usize);
    let mut lines: Vec<(String, f32)> = Vec::new();
    for c in captions {
        for l in wrap(&c.text, per_line) {
            lines.push((l, c.alpha.clamp(0.0, 1.0)));
        }
    }
    let skip = lines.len().saturating_sub(max_lines);
    let lines = &lines[skip..];
    let (cx, _) = area.center();
    let mut y = area.bottom() - line_h * lines.len() as f32;
    let mut drawn = Vec::with_capacity(lines.len());
    for (line, alpha) in lines {
        let w = text.label(
            line,
            cx,
            y,
            font,
            Align::Center,
            palette::WHITE.with_alpha(*alpha),
            area,
        );
        let bw = (w + 2.0 * pad).min(area.w);
        let bg = palette::LABEL_BG;
        let bg = bg.with_alpha(bg.to_array()[3] * alpha);
        shapes.rect(
            Rect::new(cx - bw * 0.5, y, bw, line_h),
            bg,
            (line_h * 0.25).min(6.0),
        );
        text.move_last(cx, y + (line_h - font * 1.2) * 0.5, Align::Center, area);
        drawn.push(line.clone());
        y += line_h;
    }
    drawn
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wrap_breaks_at_spaces_and_cuts_long_words() {
        assert_eq!(wrap("hello big world", 9), ["hello big", "world"]);
        assert_eq!(wrap("  a   b  ", 9), ["a b"]);
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap("ab abcdefgh", 4), ["ab", "abcd", "efgh"]);
        assert_eq!(wrap("abcd efgh", 4), ["abcd", "efgh"]);
        assert!(wrap("", 4).is_empty());
        assert_eq!(wrap("█████", 2), ["██", "██", "█"]);
        for l in wrap(&"word ".repeat(50), 17) {
            assert!(l.chars().count() <= 17, "{l}");
        }
    }
}
