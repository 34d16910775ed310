//! Captions under the speakers' tiles: chat (`lk.chat`) and transcriptions (`lk.transcription`)
//! kept per speaker in a [`CaptionBook`] — pure logic on the time its caller gives it — and
//! filled from a room's streams ([`crate::chat::listen`], then [`show`]).
//!
//! A caption is keyed by [`TextMessage::caption_key`]: the next text of the same transcription
//! segment (or more text of the same chat stream) replaces it in place; other texts add a line.
//! Each speaker keeps at most [`CaptionConfig::max_lines`] lines of at most
//! [`CaptionConfig::max_chars`] characters; a line fades out over [`CaptionConfig::fade`] and
//! is gone [`CaptionConfig::ttl`] after its last change. At most [`CaptionConfig::max_speakers`]
//! speakers are kept (the longest quiet is dropped first), so a flood of texts holds bounded
//! memory.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use wavecast_session::{ParticipantIdentity, Room, TextStreamReader};

use crate::chat::TextMessage;

/// How many captions, how long and how wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptionConfig {
    /// Lines kept per speaker (the oldest goes first).
    pub max_lines: usize,
    /// Characters kept per line (chat keeps its start, a transcription its newest words).
    pub max_chars: usize,
    /// How long a line stays after its last change.
    pub ttl: Duration,
    /// The last part of `ttl` over which a line fades out.
    pub fade: Duration,
    /// Speakers kept at once.
    pub max_speakers: usize,
}

impl Default for CaptionConfig {
    fn default() -> Self {
        Self {
            max_lines: 3,
            max_chars: 140,
            ttl: Duration::from_secs(6),
            fade: Duration::from_millis(1500),
            max_speakers: 64,
        }
    }
}

/// What kind of text a caption shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptionKind {
    /// A chat message.
    Chat,
    /// A transcription segment.
    Transcription,
}

#[derive(Debug, Clone)]
struct Line {
    key: String,
    kind: CaptionKind,
    text: String,
    order: u64,
    changed: Instant,
}

/// One line to draw: its text and its opacity (1 → 0 while it fades).
#[derive(Debug, Clone, PartialEq)]
pub struct Caption {
    /// The text (one line, bounded).
    pub text: String,
    /// Opacity, 0..=1.
    pub alpha: f32,
    /// Chat or transcription.
    pub kind: CaptionKind,
}

/// Every speaker's recent captions.
#[derive(Debug, Clone, Default)]
pub struct CaptionBook {
    config: CaptionConfig,
    speakers: HashMap<String, VecDeque<Line>>,
}

impl CaptionBook {
    /// An empty book.
    pub fn new(config: CaptionConfig) -> Self {
        Self {
            config: CaptionConfig {
                max_lines: config.max_lines.max(1),
                max_chars: config.max_chars.max(1),
                max_speakers: config.max_speakers.max(1),
                fade: config.fade.min(config.ttl),
                ttl: config.ttl,
            },
            speakers: HashMap::new(),
        }
    }

    /// The bounds in force.
    pub fn config(&self) -> CaptionConfig {
        self.config
    }

    /// Shows `text` under `speaker`'s tile as caption `key` at `now`: replaces the line with
    /// that key, else adds one (dropping the speaker's oldest past the limit). An empty text
    /// removes the line. `order` is the text's place in arrival order (its stream's): a text
    /// older than the one shown for the key is ignored, so streams read concurrently never
    /// bring back an earlier interim text.
    pub fn set(
        &mut self,
        speaker: &str,
        key: &str,
        kind: CaptionKind,
        text: &str,
        order: u64,
        now: Instant,
    ) {
        let text = one_line(text, self.config.max_chars, kind);
        let newer = |l: &Line| l.key == key && l.order > order;
        if self
            .speakers
            .get(speaker)
            .is_some_and(|lines| lines.iter().any(newer))
        {
            return;
        }
        if text.is_empty() {
            if let Some(lines) = self.speakers.get_mut(speaker) {
                lines.retain(|l| l.key != key);
                if lines.is_empty() {
                    self.speakers.remove(speaker);
                }
            }
            return;
        }
        if !self.speakers.contains_key(speaker) && self.speakers.len() >= self.config.max_speakers {
            // Make room: forget the speaker whose newest line is the oldest.
            if let Some(quietest) = self
                .speakers
                .iter()
                .min_by_key(|(_, lines)| lines.iter().map(|l| l.changed).max())
                .map(|(s, _)| s.clone())
            {
                self.speakers.remove(&quietest);
            }
        }
        let lines = self.speakers.entry(speaker.to_owned()).or_default();
        match lines.iter_mut().find(|l| l.key == key) {
            Some(line) => {
                line.text = text;
                line.kind = kind;
                line.order = order;
                line.changed = now;
            }
            None => {
                lines.push_back(Line {
                    key: key.to_owned(),
                    kind,
                    text,
                    order,
                    changed: now,
                });
                while lines.len() > self.config.max_lines {
                    lines.pop_front();
                }
            }
        }
    }

    /// Forgets the lines older than the time to live at `now`.
    pub fn expire(&mut self, now: Instant) {
        let ttl = self.config.ttl;
        self.speakers.retain(|_, lines| {
            lines.retain(|l| now.saturating_duration_since(l.changed) < ttl);
            !lines.is_empty()
        });
    }

    /// `speaker`'s lines at `now`, oldest first, with their opacity (expired ones left out).
    pub fn lines(&self, speaker: &str, now: Instant) -> Vec<Caption> {
        let Some(lines) = self.speakers.get(speaker) else {
            return Vec::new();
        };
        let (ttl, fade) = (self.config.ttl, self.config.fade);
        lines
            .iter()
            .filter_map(|l| {
                let age = now.saturating_duration_since(l.changed);
                let left = ttl.checked_sub(age).filter(|d| !d.is_zero())?;
                let alpha = if left >= fade || fade.is_zero() {
                    1.0
                } else {
                    left.as_secs_f32() / fade.as_secs_f32()
                };
                Some(Caption {
                    text: l.text.clone(),
                    alpha,
                    kind: l.kind,
                })
            })
            .collect()
    }

    /// Speakers with at least one line (expired or not).
    pub fn speakers(&self) -> usize {
        self.speakers.len()
    }
}

/// `text` on one line (whitespace runs, newlines and control characters become one space),
/// cut to `max` characters with an ellipsis: a chat message keeps its start, a transcription
/// its end (the newest words).
fn one_line(text: &str, max: usize, kind: CaptionKind) -> String {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect();
    let line = words.join(" ");
    let n = line.chars().count();
    if n <= max {
        return line;
    }
    let keep = max.saturating_sub(1);
    match kind {
        CaptionKind::Chat => {
            let mut s: String = line.chars().take(keep).collect();
            s.push('…');
            s
        }
        CaptionKind::Transcription => {
            let mut s = String::from("…");
            s.extend(line.chars().skip(n - keep));
            s
        }
    }
}

/// A caption book shared by the room's task (which writes) and a scene's status (which reads).
#[derive(Debug, Clone, Default)]
pub struct Captions {
    book: Arc<Mutex<CaptionBook>>,
    /// Streams shown so far (each stream's place in arrival order).
    streams: Arc<AtomicU64>,
}

impl Captions {
    /// A shared book with `config`.
    pub fn new(config: CaptionConfig) -> Self {
        Self {
            book: Arc::new(Mutex::new(CaptionBook::new(config))),
            streams: Arc::default(),
        }
    }

    /// The book (a poisoned lock is taken over: the book is consistent after every call).
    pub fn lock(&self) -> MutexGuard<'_, CaptionBook> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `speaker`'s lines now (expired ones dropped first).
    pub fn now_for(&self, speaker: &str) -> Vec<Caption> {
        let now = Instant::now();
        let mut book = self.lock();
        book.expire(now);
        book.lines(speaker, now)
    }
}

/// Longest text kept while a stream is read (its tail): a caption shows far less, and a stream
/// that never ends must not grow without bound here.
const MAX_STREAM_TEXT: usize = 4096;

/// Whose tile a message goes under: for a transcription the participant whose track it names
/// (when that is a remote participant here), else the sender.
pub fn speaker_of(room: &Room, message: &TextMessage) -> String {
    if let Some(track) = message.segment.as_ref().and_then(|s| s.track_id.as_deref())
        && let Some(owner) = room
            .remote_participants()
            .into_iter()
            .find(|p| p.track_publication(track).is_some())
    {
        return owner.identity().to_string();
    }
    message.sender.clone()
}

/// Shows the stream `reader` from `sender` in `captions` under its speaker's tile (see
/// [`speaker_of`]), as its text grows, on a task of the current runtime.
pub fn show(
    room: &Room,
    captions: &Captions,
    reader: TextStreamReader,
    sender: ParticipantIdentity,
) {
    let message = TextMessage::new(
        reader.info(),
        sender.as_str(),
        String::new(),
        SystemTime::now(),
    );
    let speaker = speaker_of(room, &message);
    let order = captions.streams.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(follow_stream(
        reader,
        message,
        speaker,
        order,
        captions.clone(),
    ));
}

async fn follow_stream(
    mut reader: TextStreamReader,
    mut message: TextMessage,
    speaker: String,
    order: u64,
    captions: Captions,
) {
    let kind = if message.is_chat() {
        CaptionKind::Chat
    } else {
        CaptionKind::Transcription
    };
    while let Some(piece) = reader.next().await {
        match piece {
            Ok(piece) => {
                message.text.push_str(&piece);
                if message.text.len() > MAX_STREAM_TEXT {
                    let mut cut = message.text.len() - MAX_STREAM_TEXT;
                    while !message.text.is_char_boundary(cut) {
                        cut += 1;
                    }
                    message.text.drain(..cut);
                }
                captions.lock().set(
                    &speaker,
                    message.caption_key(),
                    kind,
                    &message.text,
                    order,
                    Instant::now(),
                );
            }
            Err(e) => {
                tracing::debug!(
                    "{} stream from {} ended: {e}",
                    message.topic,
                    message.sender
                );
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book() -> (CaptionBook, Instant) {
        (CaptionBook::new(CaptionConfig::default()), Instant::now())
    }

    fn texts(book: &CaptionBook, who: &str, now: Instant) -> Vec<String> {
        book.lines(who, now).into_iter().map(|c| c.text).collect()
    }

    const T: CaptionKind = CaptionKind::Transcription;
    const C: CaptionKind = CaptionKind::Chat;

    #[test]
    fn a_segment_is_replaced_by_its_next_text() {
        let (mut b, t0) = book();
        b.set("ada", "SG_1", T, "hel", 1, t0);
        b.set(
            "ada",
            "SG_1",
            T,
            "hello wor",
            2,
            t0 + Duration::from_millis(200),
        );
        b.set("ada", "SG_2", T, "next", 3, t0 + Duration::from_millis(300));
        b.set(
            "ada",
            "SG_1",
            T,
            "hello world",
            4,
            t0 + Duration::from_millis(400),
        );
        // Replaced in place: still before the newer segment.
        assert_eq!(
            texts(&b, "ada", t0 + Duration::from_secs(1)),
            ["hello world", "next"]
        );
        assert!(b.lines("bob", t0).is_empty());
        // A text of an older stream arriving late changes nothing.
        b.set("ada", "SG_1", T, "hel", 1, t0 + Duration::from_millis(500));
        assert_eq!(
            texts(&b, "ada", t0 + Duration::from_secs(1)),
            ["hello world", "next"]
        );
        // An empty text takes the line away.
        b.set("ada", "SG_2", T, "  ", 5, t0 + Duration::from_secs(1));
        assert_eq!(
            texts(&b, "ada", t0 + Duration::from_secs(1)),
            ["hello world"]
        );
    }

    #[test]
    fn lines_fade_then_expire() {
        let (mut b, t0) = book();
        b.set("ada", "m1", C, "hi", 6, t0);
        b.set("ada", "m2", C, "later", 7, t0 + Duration::from_secs(3));
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        let alphas = |now| -> Vec<f32> { b.lines("ada", now).iter().map(|c| c.alpha).collect() };
        assert_eq!(alphas(at(1.0)), [1.0, 1.0]);
        // m1 fades between 4.5 s and 6 s.
        let a = alphas(at(5.25));
        assert!((a[0] - 0.5).abs() < 1e-3 && a[1] == 1.0, "{a:?}");
        assert_eq!(texts(&b, "ada", at(6.0)), ["later"]);
        // A change restarts the clock.
        b.set("ada", "m2", C, "later, edited", 8, at(8.0));
        assert_eq!(texts(&b, "ada", at(13.0)), ["later, edited"]);
        b.expire(at(13.0));
        assert_eq!(b.speakers(), 1);
        b.expire(at(14.0));
        assert_eq!(b.speakers(), 0);
    }

    #[test]
    fn lines_and_characters_are_bounded() {
        let (mut b, t0) = book();
        for i in 0..10 {
            b.set("ada", &format!("m{i}"), C, &format!("line {i}"), 9, t0);
        }
        assert_eq!(texts(&b, "ada", t0), ["line 7", "line 8", "line 9"]);

        let long = "word ".repeat(100);
        b.set("bob", "chat", C, &long, 10, t0);
        let chat = &texts(&b, "bob", t0)[0];
        assert_eq!(chat.chars().count(), 140);
        assert!(chat.starts_with("word word") && chat.ends_with('…'));
        let speech: String = (0..100).map(|i| format!("w{i} ")).collect();
        b.set("bob", "SG", T, &speech, 11, t0);
        let caption = &texts(&b, "bob", t0)[1];
        assert_eq!(caption.chars().count(), 140);
        assert!(
            caption.starts_with('…') && caption.ends_with("w99"),
            "{caption}"
        );
        // Newlines and control characters become single spaces.
        b.set("eve", "x", C, "a\n\n b\u{1b}[2J\tc", 12, t0);
        assert_eq!(texts(&b, "eve", t0), ["a b [2J c"]);
    }

    #[test]
    fn speakers_are_bounded_quietest_first() {
        let mut b = CaptionBook::new(CaptionConfig {
            max_speakers: 3,
            ..CaptionConfig::default()
        });
        let t0 = Instant::now();
        for (i, who) in ["a", "b", "c"].iter().enumerate() {
            b.set(who, "k", C, who, 13, t0 + Duration::from_millis(i as u64));
        }
        b.set("a", "k", C, "a again", 14, t0 + Duration::from_millis(10));
        b.set("d", "k", C, "d", 15, t0 + Duration::from_millis(20));
        assert_eq!(b.speakers(), 3);
        let now = t0 + Duration::from_millis(30);
        assert!(b.lines("b", now).is_empty(), "b was the quietest");
        assert_eq!(texts(&b, "a", now), ["a again"]);
        assert_eq!(texts(&b, "d", now), ["d"]);
    }

    #[test]
    fn a_bad_config_is_made_usable() {
        let b = CaptionBook::new(CaptionConfig {
            max_lines: 0,
            max_chars: 0,
            ttl: Duration::from_secs(1),
            fade: Duration::from_secs(5),
            max_speakers: 0,
        });
        let c = b.config();
        assert_eq!((c.max_lines, c.max_chars, c.max_speakers), (1, 1, 1));
        assert_eq!(c.fade, c.ttl);
    }
}
