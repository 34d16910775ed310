//! Chat and transcriptions as users see them: a received `lk.chat` or `lk.transcription` text
//! stream as a [`TextMessage`] (sender, topic, text and, for a transcription, its segment),
//! printed as a line (`HH:MM:SS sender: text`) or a JSON object — what `wavecast chat` prints
//! and what the captions of the room visualizer and the viewer are made of.
//!
//! Transcriptions follow LiveKit's agents: each segment of speech has an id
//! ([`ATTR_SEGMENT_ID`]); an interim text of a segment is replaced by the next text of the same
//! segment (a new stream carrying the whole text so far, or more text written to the same
//! stream), and the last one is marked final ([`ATTR_TRANSCRIPTION_FINAL`]). The speaker is the
//! participant whose track is named ([`ATTR_TRANSCRIBED_TRACK_ID`]), else the sender.
//!
//! [`listen`] registers a room's handlers for both topics and queues the incoming streams.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use tokio::sync::mpsc;
use wavecast_session::{
    ParticipantIdentity, Room, StreamError, TOPIC_CHAT, TOPIC_TRANSCRIPTION, TextStreamInfo,
    TextStreamReader,
};

/// Attribute of a transcription stream: the sid of the track whose speech it transcribes.
pub const ATTR_TRANSCRIBED_TRACK_ID: &str = "lk.transcribed_track_id";
/// Attribute of a transcription stream: the segment it (re)writes.
pub const ATTR_SEGMENT_ID: &str = "lk.segment_id";
/// Attribute of a transcription stream: `"true"` when the segment's text is final.
pub const ATTR_TRANSCRIPTION_FINAL: &str = "lk.transcription_final";

/// What a transcription stream's attributes say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Segment {
    /// The segment id (`lk.segment_id`), when given.
    pub id: Option<String>,
    /// The transcribed track's sid (`lk.transcribed_track_id`), when given.
    pub track_id: Option<String>,
    /// The text is final (`lk.transcription_final` is `"true"`).
    #[serde(rename = "final")]
    pub is_final: bool,
}

impl Segment {
    /// Reads the transcription attributes (absent or empty ones are `None`).
    pub fn from_attributes(attributes: &BTreeMap<String, String>) -> Self {
        let get = |k: &str| attributes.get(k).filter(|v| !v.is_empty()).cloned();
        Self {
            id: get(ATTR_SEGMENT_ID),
            track_id: get(ATTR_TRANSCRIBED_TRACK_ID),
            is_final: attributes
                .get(ATTR_TRANSCRIPTION_FINAL)
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        }
    }
}

/// One received text: a chat message or (the text so far of) a transcription segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextMessage {
    /// When it was received.
    pub received: SystemTime,
    /// The sender's identity.
    pub sender: String,
    /// The stream's topic.
    pub topic: String,
    /// The stream's id.
    pub stream_id: String,
    /// The text.
    pub text: String,
    /// For a transcription (topic `lk.transcription`): its segment.
    pub segment: Option<Segment>,
}

/// The JSON line `wavecast chat --json` prints for a [`TextMessage`].
#[derive(Debug, Serialize)]
pub struct JsonMessage<'a> {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    /// The sender's identity.
    pub sender: &'a str,
    /// The topic.
    pub topic: &'a str,
    /// The text.
    pub text: &'a str,
    /// Transcriptions: the segment id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment_id: Option<&'a str>,
    /// Transcriptions: the transcribed track's sid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track_id: Option<&'a str>,
    /// Transcriptions: whether the segment's text is final.
    #[serde(rename = "final", skip_serializing_if = "Option::is_none")]
    pub is_final: Option<bool>,
}

impl TextMessage {
    /// The message of a stream described by `info`, from `sender`, with `text`.
    pub fn new(info: &TextStreamInfo, sender: &str, text: String, received: SystemTime) -> Self {
        Self {
            received,
            sender: sender.to_owned(),
            topic: info.topic.clone(),
            stream_id: info.id.clone(),
            text,
            segment: is_transcription(&info.topic)
                .then(|| Segment::from_attributes(&info.attributes)),
        }
    }

    /// Whether this is a chat message (topic `lk.chat`).
    pub fn is_chat(&self) -> bool {
        self.topic == TOPIC_CHAT
    }

    /// What replaces what: the segment id of a transcription, else the stream id (a chat
    /// message streamed in pieces is one caption that grows).
    pub fn caption_key(&self) -> &str {
        self.segment
            .as_ref()
            .and_then(|s| s.id.as_deref())
            .unwrap_or(&self.stream_id)
    }

    /// `HH:MM:SS sender: text` (UTC); a transcription reads `sender (transcript): text`, or
    /// `(interim)` while its segment is not final. Control characters that could drive a
    /// terminal are shown as `\u{FFFD}`; continuation lines are indented.
    pub fn line(&self) -> String {
        let label = match &self.segment {
            None => String::new(),
            Some(s) if s.is_final => " (transcript)".to_owned(),
            Some(_) => " (interim)".to_owned(),
        };
        let text = printable(&self.text).replace('\n', "\n  ");
        format!(
            "{} {}{label}: {text}",
            clock(self.received),
            printable(&self.sender).replace('\n', " ")
        )
    }

    /// The JSON object of `--json` (one per line).
    pub fn json(&self) -> JsonMessage<'_> {
        JsonMessage {
            time: humantime::format_rfc3339_millis(self.received).to_string(),
            sender: &self.sender,
            topic: &self.topic,
            text: &self.text,
            segment_id: self.segment.as_ref().and_then(|s| s.id.as_deref()),
            track_id: self.segment.as_ref().and_then(|s| s.track_id.as_deref()),
            is_final: self.segment.as_ref().map(|s| s.is_final),
        }
    }
}

/// Incoming chat and transcription streams, handed from the room's handlers to whoever reads
/// them (a bounded queue: past [`Incoming::CAPACITY`] waiting streams, new ones are dropped).
#[derive(Debug)]
pub struct Incoming {
    rx: mpsc::Receiver<(TextStreamReader, ParticipantIdentity)>,
    dropped: Arc<AtomicU64>,
}

impl Incoming {
    /// Streams that may wait to be picked up ([`listen`]).
    pub const CAPACITY: usize = 64;

    /// The next stream and its sender; `None` once the room is gone.
    pub async fn recv(&mut self) -> Option<(TextStreamReader, ParticipantIdentity)> {
        self.rx.recv().await
    }

    /// Streams dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Registers `room`'s text stream handlers for [`TOPIC_CHAT`] and [`TOPIC_TRANSCRIPTION`]; the
/// streams arrive on the returned queue (read them on a task of your own, e.g. with
/// [`crate::captions::show`]).
///
/// # Errors
/// A handler for one of the topics is registered already.
pub fn listen(room: &Room) -> Result<Incoming, StreamError> {
    listen_with(room, Incoming::CAPACITY)
}

/// [`listen`] with room for `capacity` streams waiting to be picked up.
///
/// # Errors
/// A handler for one of the topics is registered already.
pub fn listen_with(room: &Room, capacity: usize) -> Result<Incoming, StreamError> {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let dropped = Arc::new(AtomicU64::new(0));
    for topic in [TOPIC_CHAT, TOPIC_TRANSCRIPTION] {
        let (tx, dropped) = (tx.clone(), dropped.clone());
        room.register_text_stream_handler(topic, move |reader, sender| {
            if tx.try_send((reader, sender)).is_err()
                && dropped.fetch_add(1, Ordering::Relaxed) == 0
            {
                tracing::warn!("text streams arrive faster than they are read: dropping some");
            }
        })?;
    }
    Ok(Incoming { rx, dropped })
}

/// The next stream of `incoming`; never ready without a queue (for `select!` loops whose
/// [`listen`] failed).
pub async fn next(
    incoming: &mut Option<Incoming>,
) -> Option<(TextStreamReader, ParticipantIdentity)> {
    match incoming {
        Some(i) => i.recv().await,
        None => std::future::pending().await,
    }
}

/// Whether `topic` carries transcriptions.
pub fn is_transcription(topic: &str) -> bool {
    topic == TOPIC_TRANSCRIPTION
}

/// `HH:MM:SS` of `t`, UTC.
pub fn clock(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let day = secs % 86_400;
    format!("{:02}:{:02}:{:02}", day / 3600, day / 60 % 60, day % 60)
}

/// `s` with control characters (escape sequences and the like) replaced by U+FFFD, except
/// newlines and tabs; `\r\n` becomes `\n`.
pub fn printable(s: &str) -> String {
    s.replace("\r\n", "\n")
        .chars()
        .map(|c| {
            if c == '\n' || c == '\t' || !c.is_control() {
                c
            } else {
                '\u{FFFD}'
            }
        })
        .collect()
}

/// A sender's reading task ends after this long without a message from them.
const SENDER_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

/// Messages of one sender waiting to be read; past it one is dropped (and logged).
const SENDER_QUEUE: usize = 4096;

/// Hands each incoming message to `deliver` once read whole, each sender's in the order they
/// were sent (one reading task per sender: a sender whose message never ends holds up only
/// their own); transcriptions are read on tasks of their own (a segment written for a long time
/// holds nobody up) and handed over as each stream ends. Runs until `incoming` ends.
pub async fn read_in_order<F>(mut incoming: Incoming, deliver: F)
where
    F: Fn(&TextMessage) + Clone + Send + Sync + 'static,
{
    let mut senders: HashMap<String, mpsc::Sender<TextStreamReader>> = HashMap::new();
    while let Some((reader, sender)) = incoming.recv().await {
        if is_transcription(&reader.info().topic) {
            let deliver = deliver.clone();
            tokio::spawn(async move {
                if let Some(m) = read_message(reader, sender.as_str()).await {
                    deliver(&m);
                }
            });
            continue;
        }
        senders.retain(|_, queue| !queue.is_closed());
        let key = sender.to_string();
        let reader = match senders.get(&key) {
            None => reader,
            Some(queue) => match queue.try_send(reader) {
                Ok(()) => continue,
                // The sender's task just ended (idle): start another.
                Err(mpsc::error::TrySendError::Closed(reader)) => reader,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!("chat from {key} arrives faster than it is read: one dropped");
                    continue;
                }
            },
        };
        let (tx, mut rx) = mpsc::channel::<TextStreamReader>(SENDER_QUEUE);
        let _ = tx.try_send(reader);
        let name = key.clone();
        let deliver = deliver.clone();
        tokio::spawn(async move {
            // Ends after a minute without messages from this sender.
            while let Ok(Some(reader)) = tokio::time::timeout(SENDER_IDLE, rx.recv()).await {
                if let Some(m) = read_message(reader, &name).await {
                    deliver(&m);
                }
            }
            // What was queued while the wait ran out is still printed.
            rx.close();
            while let Ok(reader) = rx.try_recv() {
                if let Some(m) = read_message(reader, &name).await {
                    deliver(&m);
                }
            }
        });
        senders.insert(key, tx);
    }
}

/// The whole text of a stream as a message, with the attributes of its header and trailer
/// (`None`, logged, when the stream failed).
pub async fn read_message(mut reader: TextStreamReader, sender: &str) -> Option<TextMessage> {
    let mut text = String::new();
    while let Some(piece) = reader.next().await {
        match piece {
            Ok(piece) => text.push_str(&piece),
            Err(e) => {
                tracing::warn!(
                    "a {} message from {sender} was lost: {e}",
                    reader.info().topic
                );
                return None;
            }
        }
    }
    Some(TextMessage::new(
        reader.info(),
        sender,
        text,
        SystemTime::now(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use wavecast_session::TextOperation;

    fn info(topic: &str, attrs: &[(&str, &str)]) -> TextStreamInfo {
        TextStreamInfo {
            id: "stream-1".into(),
            topic: topic.into(),
            timestamp_ms: 0,
            mime_type: "text/plain".into(),
            total_length: None,
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            operation: TextOperation::Create,
            reply_to_stream_id: None,
            attached_stream_ids: Vec::new(),
            generated: false,
        }
    }

    /// 2026-12-07 01:02:03.456 UTC.
    fn at() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_605_323_456)
    }

    #[test]
    fn chat_prints_time_sender_and_text() {
        let m = TextMessage::new(&info(TOPIC_CHAT, &[]), "ada", "hello\nthere".into(), at());
        assert!(m.is_chat());
        assert_eq!(m.segment, None);
        assert_eq!(m.line(), "01:02:03 ada: hello\n  there");
        assert_eq!(m.caption_key(), "stream-1");
        let j = serde_json::to_value(m.json()).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"time": "2026-12-07T01:02:03.456Z", "sender": "ada",
                "topic": "lk.chat", "text": "hello\nthere"})
        );
    }

    #[test]
    fn transcription_reads_its_segment() {
        let attrs = [
            (ATTR_SEGMENT_ID, "SG_1"),
            (ATTR_TRANSCRIBED_TRACK_ID, "TR_a"),
            (ATTR_TRANSCRIPTION_FINAL, "false"),
        ];
        let m = TextMessage::new(
            &info(TOPIC_TRANSCRIPTION, &attrs),
            "agent",
            "hel".into(),
            at(),
        );
        let s = m.segment.clone().unwrap();
        assert_eq!(s.id.as_deref(), Some("SG_1"));
        assert_eq!(s.track_id.as_deref(), Some("TR_a"));
        assert!(!s.is_final);
        assert_eq!(m.caption_key(), "SG_1");
        assert_eq!(m.line(), "01:02:03 agent (interim): hel");
        let j = serde_json::to_value(m.json()).unwrap();
        assert_eq!(j["segment_id"], "SG_1");
        assert_eq!(j["track_id"], "TR_a");
        assert_eq!(j["final"], false);
        assert_eq!(j["topic"], "lk.transcription");

        let done = [
            (ATTR_SEGMENT_ID, "SG_1"),
            (ATTR_TRANSCRIPTION_FINAL, "TRUE"),
        ];
        let m = TextMessage::new(
            &info(TOPIC_TRANSCRIPTION, &done),
            "agent",
            "hi".into(),
            at(),
        );
        assert!(m.segment.as_ref().unwrap().is_final);
        assert_eq!(m.line(), "01:02:03 agent (transcript): hi");
        // Without a segment id, the stream is its own segment.
        let m = TextMessage::new(&info(TOPIC_TRANSCRIPTION, &[]), "agent", "x".into(), at());
        assert_eq!(m.caption_key(), "stream-1");
        assert_eq!(m.segment, Some(Segment::default()));
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let m = TextMessage::new(
            &info(TOPIC_CHAT, &[]),
            "ev\u{1b}il",
            "a\u{1b}[2Jb\r\nc\u{7}".into(),
            at(),
        );
        assert_eq!(
            m.line(),
            "01:02:03 ev\u{FFFD}il: a\u{FFFD}[2Jb\n  c\u{FFFD}"
        );
    }

    #[test]
    fn clock_is_utc_hours_minutes_seconds() {
        assert_eq!(clock(SystemTime::UNIX_EPOCH), "00:00:00");
        assert_eq!(clock(at()), "01:02:03");
        assert_eq!(
            clock(SystemTime::UNIX_EPOCH + Duration::from_secs(86_399)),
            "23:59:59"
        );
    }
}
