//! Data streams, as the official SDKs speak them: text and byte streams with a topic,
//! attributes and a total length, sent as a header, chunks of at most [`STREAM_CHUNK_SIZE`]
//! bytes and a trailer on the reliable data channel.
//!
//! Outgoing: [`crate::LocalParticipant::send_text`], [`crate::LocalParticipant::send_bytes`],
//! [`crate::LocalParticipant::send_file`] and the writers of
//! [`crate::LocalParticipant::stream_text`] / [`crate::LocalParticipant::stream_bytes`].
//!
//! Incoming: a handler per topic ([`crate::Room::register_text_stream_handler`],
//! [`crate::Room::register_byte_stream_handler`]) gets a reader for each stream that opens — an
//! incremental reader ([`TextStreamReader::next`]) or the whole content
//! ([`TextStreamReader::read_all`]). What a peer may make us hold is bounded by
//! [`DataStreamLimits`]: concurrent streams, bytes per stream, bytes received and not yet read
//! (all streams together), and the time a stream may stay silent. A stream over a limit ends
//! with [`StreamError::Limit`] in its reader, a [`crate::RoomEvent::DataStreamLimitExceeded`],
//! and a counter in [`DataStreamStats`].
//!
//! The reassembly ([`Streams`]) is pure logic on the time it is given; the room's task feeds
//! it the packets the engine decodes and the ticks of its clock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use wavecast_rtc::data_message::{
    Compression, DataMessage, StreamChunk, StreamHeader, StreamKind, StreamTrailer, TextOperation,
};

use super::events::RoomEvent;
use crate::ids::ParticipantIdentity;
use crate::session::{Session, SessionError};
use wavecast_rtc::EngineError;

/// Largest chunk of content in one packet (the SDKs' chunk size).
pub const STREAM_CHUNK_SIZE: usize = 15_000;

/// The topic chat messages use (`lk.chat`).
pub const TOPIC_CHAT: &str = "lk.chat";

/// The topic agents publish transcriptions on (`lk.transcription`).
pub const TOPIC_TRANSCRIPTION: &str = "lk.transcription";

const TEXT_MIME_TYPE: &str = "text/plain";
const BYTE_MIME_TYPE: &str = "application/octet-stream";

/// Which limit a stream went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamLimit {
    /// Too many streams were open at once (the new one was refused).
    TooManyStreams {
        /// The limit.
        max: usize,
    },
    /// The stream brought more bytes than one stream may (or than its header announced).
    StreamTooLarge {
        /// The limit.
        max: u64,
    },
    /// Received and unread bytes of all streams went over the limit (the app reads too slowly).
    BufferFull {
        /// The limit.
        max: u64,
    },
    /// The stream sent nothing for this long.
    IdleTimeout {
        /// The limit.
        after: Duration,
    },
}

impl std::fmt::Display for StreamLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamLimit::TooManyStreams { max } => write!(f, "more than {max} open streams"),
            StreamLimit::StreamTooLarge { max } => write!(f, "more than {max} bytes in a stream"),
            StreamLimit::BufferFull { max } => write!(f, "more than {max} unread bytes"),
            StreamLimit::IdleTimeout { after } => write!(f, "nothing received for {after:?}"),
        }
    }
}

/// Why a data stream failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// An incoming stream went over one of the [`DataStreamLimits`].
    #[error("the stream went over a limit: {0}")]
    Limit(StreamLimit),
    /// The sender ended the stream with a reason (its trailer's).
    #[error("the sender aborted the stream: {reason}")]
    Aborted {
        /// The sender's reason.
        reason: String,
    },
    /// The stream ended with fewer bytes than its header announced.
    #[error("the stream ended after {received} of {expected} bytes")]
    Incomplete {
        /// Bytes received.
        received: u64,
        /// Bytes announced.
        expected: u64,
    },
    /// The stream's compressed content could not be inflated.
    #[error("the stream's compressed content is corrupt: {detail}")]
    Corrupt {
        /// What the decompressor said.
        detail: String,
    },
    /// The room was left (or the sender left) before the stream ended.
    #[error("the room or the sender left before the stream ended")]
    Closed,
    /// A handler for this topic is already registered.
    #[error("a {kind} stream handler for topic {topic:?} is already registered")]
    HandlerExists {
        /// `text` or `byte`.
        kind: &'static str,
        /// The topic.
        topic: String,
    },
    /// Sending a packet of the stream failed.
    #[error("sending the stream failed")]
    Send(#[source] Arc<SessionError>),
    /// The file to send could not be read.
    #[error("reading {path} failed")]
    File {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: Arc<std::io::Error>,
    },
}

/// Bounds on what other participants can make us hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataStreamLimits {
    /// Incoming streams open at once (a header beyond it is refused).
    pub max_streams: usize,
    /// Bytes one incoming stream may bring.
    pub max_stream_bytes: u64,
    /// Bytes received and not yet read, all streams together.
    pub max_buffered_bytes: u64,
    /// How long an open stream may stay silent before it is dropped.
    pub idle_timeout: Duration,
}

impl Default for DataStreamLimits {
    fn default() -> Self {
        Self {
            max_streams: 128,
            max_stream_bytes: 64 * 1024 * 1024,
            max_buffered_bytes: 128 * 1024 * 1024,
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// Counters of incoming data streams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DataStreamStats {
    /// Streams handed to a handler.
    pub opened: u64,
    /// Streams that ended normally.
    pub completed: u64,
    /// Streams that came as one packet, their content in the header (data streams v2).
    pub single_packet: u64,
    /// Streams that came DEFLATE-compressed (data streams v2).
    pub compressed: u64,
    /// Streams no handler was registered for (ignored).
    pub unhandled: u64,
    /// Streams in a form not read here (a compression this version does not know), ignored.
    pub unsupported: u64,
    /// Streams whose compressed content was corrupt (ended with [`StreamError::Corrupt`]).
    pub corrupt: u64,
    /// Streams refused: too many open.
    pub rejected_too_many: u64,
    /// Streams dropped: too large.
    pub dropped_too_large: u64,
    /// Streams dropped: unread bytes over the limit.
    pub dropped_buffer_full: u64,
    /// Streams dropped: silent too long.
    pub timed_out: u64,
    /// Streams the sender aborted, or that ended short.
    pub failed: u64,
    /// Chunks for no open stream, or repeated (ignored).
    pub stray_chunks: u64,
    /// Streams open now.
    pub open_streams: u64,
    /// Bytes received and not yet read now.
    pub buffered_bytes: u64,
    /// The most bytes that waited unread at once.
    pub buffered_peak: u64,
}

/// What an incoming or outgoing text stream is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextStreamInfo {
    /// The stream's id.
    pub id: String,
    /// The topic.
    pub topic: String,
    /// When it was opened (Unix milliseconds).
    pub timestamp_ms: i64,
    /// The MIME type (`text/plain`).
    pub mime_type: String,
    /// The length in bytes, when known.
    pub total_length: Option<u64>,
    /// Application attributes.
    pub attributes: BTreeMap<String, String>,
    /// New message, edit, deletion or reaction.
    pub operation: TextOperation,
    /// The stream this one answers.
    pub reply_to_stream_id: Option<String>,
    /// Byte streams attached to it.
    pub attached_stream_ids: Vec<String>,
    /// Generated from speech by an agent (a transcription).
    pub generated: bool,
}

/// What an incoming or outgoing byte stream is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByteStreamInfo {
    /// The stream's id.
    pub id: String,
    /// The topic.
    pub topic: String,
    /// When it was opened (Unix milliseconds).
    pub timestamp_ms: i64,
    /// The MIME type.
    pub mime_type: String,
    /// The length in bytes, when known.
    pub total_length: Option<u64>,
    /// Application attributes.
    pub attributes: BTreeMap<String, String>,
    /// The file name (may be empty).
    pub name: String,
}

/// How to send a text stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamTextOptions {
    /// The topic (`lk.chat` for chat).
    pub topic: String,
    /// Application attributes.
    pub attributes: HashMap<String, String>,
    /// Only these participants receive it (empty: everyone).
    pub destination_identities: Vec<ParticipantIdentity>,
    /// The stream id (default: a random one).
    pub id: Option<String>,
    /// The stream this one answers.
    pub reply_to_stream_id: Option<String>,
}

impl StreamTextOptions {
    /// Options for `topic`, to everyone.
    pub fn topic(topic: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            ..Self::default()
        }
    }
}

/// How to send a byte stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamByteOptions {
    /// The topic.
    pub topic: String,
    /// Application attributes.
    pub attributes: HashMap<String, String>,
    /// Only these participants receive it (empty: everyone).
    pub destination_identities: Vec<ParticipantIdentity>,
    /// The stream id (default: a random one).
    pub id: Option<String>,
    /// The MIME type (default `application/octet-stream`).
    pub mime_type: Option<String>,
    /// The file name.
    pub name: Option<String>,
    /// The total length, when known in advance (set by `send_bytes` and `send_file`).
    pub total_length: Option<u64>,
}

impl StreamByteOptions {
    /// Options for `topic`, to everyone.
    pub fn topic(topic: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            ..Self::default()
        }
    }
}

// ------------------------------------------------------------------------------ readers

/// The bytes received and not yet read, shared by the reassembly and the readers.
#[derive(Debug, Default)]
pub(crate) struct Buffered {
    now: AtomicU64,
    peak: AtomicU64,
}

impl Buffered {
    fn add(&self, n: u64) -> u64 {
        let now = self.now.fetch_add(n, Ordering::Relaxed) + n;
        self.peak.fetch_max(now, Ordering::Relaxed);
        now
    }

    fn sub(&self, n: u64) {
        let _ = self
            .now
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
    }
}

type Chunk = Result<Vec<u8>, StreamError>;

/// The attributes of a stream's trailer, set before its content channel closes.
type TrailerAttributes = Arc<std::sync::OnceLock<BTreeMap<String, String>>>;

/// The receiving end of one stream's content.
#[derive(Debug)]
struct RawReader {
    rx: mpsc::UnboundedReceiver<Chunk>,
    buffered: Arc<Buffered>,
    done: bool,
    trailer: TrailerAttributes,
}

impl RawReader {
    /// Once the stream ended normally: its trailer's attributes merged into `attributes` (as
    /// the SDKs do: agents mark a transcription final only in its trailer).
    fn merge_trailer(&self, attributes: &mut BTreeMap<String, String>) {
        if let Some(t) = self.trailer.get() {
            attributes.extend(t.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }

    async fn next(&mut self) -> Option<Chunk> {
        if self.done {
            return None;
        }
        match self.rx.recv().await {
            Some(Ok(bytes)) => {
                self.buffered.sub(bytes.len() as u64);
                Some(Ok(bytes))
            }
            Some(Err(e)) => {
                self.done = true;
                Some(Err(e))
            }
            None => {
                self.done = true;
                None
            }
        }
    }
}

impl Drop for RawReader {
    fn drop(&mut self) {
        // Unread chunks no longer count as buffered.
        self.rx.close();
        while let Ok(c) = self.rx.try_recv() {
            if let Ok(bytes) = c {
                self.buffered.sub(bytes.len() as u64);
            }
        }
    }
}

/// An incoming byte stream: read it chunk by chunk ([`ByteStreamReader::next`]) or whole
/// ([`ByteStreamReader::read_all`]). Dropping it discards the rest.
#[derive(Debug)]
pub struct ByteStreamReader {
    info: ByteStreamInfo,
    raw: RawReader,
}

impl ByteStreamReader {
    /// What the stream is.
    pub fn info(&self) -> &ByteStreamInfo {
        &self.info
    }

    /// The next chunk; `None` once the stream ended normally (then [`Self::info`] carries the
    /// trailer's attributes too). An error ends the stream.
    pub async fn next(&mut self) -> Option<Result<Vec<u8>, StreamError>> {
        let next = self.raw.next().await;
        if next.is_none() {
            self.raw.merge_trailer(&mut self.info.attributes);
        }
        next
    }

    /// Everything until the stream ends.
    pub async fn read_all(mut self) -> Result<Vec<u8>, StreamError> {
        let mut out = Vec::with_capacity(self.info.total_length.unwrap_or(0).min(1 << 24) as usize);
        while let Some(chunk) = self.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }
}

/// An incoming text stream: read it piece by piece ([`TextStreamReader::next`]) or whole
/// ([`TextStreamReader::read_all`]). Dropping it discards the rest.
#[derive(Debug)]
pub struct TextStreamReader {
    info: TextStreamInfo,
    raw: RawReader,
    /// The start of a character cut by a chunk boundary.
    carry: Vec<u8>,
}

impl TextStreamReader {
    /// What the stream is.
    pub fn info(&self) -> &TextStreamInfo {
        &self.info
    }

    /// The next piece of text; `None` once the stream ended normally (then [`Self::info`]
    /// carries the trailer's attributes too). Bytes that are not UTF-8 read as U+FFFD.
    pub async fn next(&mut self) -> Option<Result<String, StreamError>> {
        loop {
            let next = self.raw.next().await;
            if next.is_none() {
                self.raw.merge_trailer(&mut self.info.attributes);
            }
            match next {
                Some(Ok(bytes)) => {
                    self.carry.extend_from_slice(&bytes);
                    let text = take_utf8(&mut self.carry);
                    if !text.is_empty() {
                        return Some(Ok(text));
                    }
                }
                Some(Err(e)) => return Some(Err(e)),
                None if self.carry.is_empty() => return None,
                None => {
                    let rest = String::from_utf8_lossy(&self.carry).into_owned();
                    self.carry.clear();
                    return Some(Ok(rest));
                }
            }
        }
    }

    /// The whole text.
    pub async fn read_all(mut self) -> Result<String, StreamError> {
        let mut out = String::new();
        while let Some(piece) = self.next().await {
            out.push_str(&piece?);
        }
        Ok(out)
    }
}

/// The complete characters at the start of `buf` (invalid bytes as U+FFFD); an incomplete
/// character at its end stays in `buf`.
fn take_utf8(buf: &mut Vec<u8>) -> String {
    let keep = match std::str::from_utf8(buf) {
        Ok(_) => 0,
        Err(e) if e.error_len().is_none() => buf.len() - e.valid_up_to(),
        Err(_) => 0,
    };
    let cut = buf.len() - keep;
    let text = String::from_utf8_lossy(&buf[..cut]).into_owned();
    buf.drain(..cut);
    text
}

// ------------------------------------------------------------------------------ reassembly

/// A text stream handler: called with each new stream's reader and its sender's identity.
/// It runs on the room's task: hand the reader to a task of your own rather than reading it
/// there.
pub type TextStreamHandler = Arc<dyn Fn(TextStreamReader, ParticipantIdentity) + Send + Sync>;

/// A byte stream handler (see [`TextStreamHandler`]).
pub type ByteStreamHandler = Arc<dyn Fn(ByteStreamReader, ParticipantIdentity) + Send + Sync>;

struct OpenStream {
    topic: String,
    tx: mpsc::UnboundedSender<Chunk>,
    trailer: TrailerAttributes,
    received: u64,
    total_length: Option<u64>,
    next_index: u64,
    last_activity: Instant,
    /// The decompressor of a DEFLATE-compressed stream.
    inflate: Option<Box<flate2::Decompress>>,
}

/// How much inflated content is produced (and checked against the limits) at a time: a
/// compressed chunk of 15 kB can inflate to 15 MB, which must never be held at once.
const INFLATE_PIECE: usize = 64 * 1024;

/// A stream opened by a header, to be handed to its handler.
pub(crate) enum Opened {
    Text(TextStreamHandler, TextStreamReader, ParticipantIdentity),
    Bytes(ByteStreamHandler, ByteStreamReader, ParticipantIdentity),
}

impl Opened {
    /// Call the handler (outside any lock).
    pub(crate) fn deliver(self) {
        match self {
            Opened::Text(h, r, who) => h(r, who),
            Opened::Bytes(h, r, who) => h(r, who),
        }
    }
}

/// The incoming streams: handlers, open streams, limits, counters.
pub(crate) struct Streams {
    limits: DataStreamLimits,
    text_handlers: HashMap<String, TextStreamHandler>,
    byte_handlers: HashMap<String, ByteStreamHandler>,
    open: HashMap<(ParticipantIdentity, String), OpenStream>,
    buffered: Arc<Buffered>,
    stats: DataStreamStats,
}

impl Streams {
    pub(crate) fn new(limits: DataStreamLimits) -> Self {
        Self {
            limits,
            text_handlers: HashMap::new(),
            byte_handlers: HashMap::new(),
            open: HashMap::new(),
            buffered: Arc::new(Buffered::default()),
            stats: DataStreamStats::default(),
        }
    }

    pub(crate) fn register_text(
        &mut self,
        topic: &str,
        handler: TextStreamHandler,
    ) -> Result<(), StreamError> {
        if self.text_handlers.contains_key(topic) {
            return Err(StreamError::HandlerExists {
                kind: "text",
                topic: topic.to_owned(),
            });
        }
        self.text_handlers.insert(topic.to_owned(), handler);
        Ok(())
    }

    pub(crate) fn register_bytes(
        &mut self,
        topic: &str,
        handler: ByteStreamHandler,
    ) -> Result<(), StreamError> {
        if self.byte_handlers.contains_key(topic) {
            return Err(StreamError::HandlerExists {
                kind: "byte",
                topic: topic.to_owned(),
            });
        }
        self.byte_handlers.insert(topic.to_owned(), handler);
        Ok(())
    }

    pub(crate) fn unregister_text(&mut self, topic: &str) {
        self.text_handlers.remove(topic);
    }

    pub(crate) fn unregister_bytes(&mut self, topic: &str) {
        self.byte_handlers.remove(topic);
    }

    pub(crate) fn stats(&self) -> DataStreamStats {
        DataStreamStats {
            open_streams: self.open.len() as u64,
            buffered_bytes: self.buffered.now.load(Ordering::Relaxed),
            buffered_peak: self.buffered.peak.load(Ordering::Relaxed),
            ..self.stats
        }
    }

    /// Streams open now.
    #[cfg(test)]
    pub(crate) fn open_streams(&self) -> usize {
        self.open.len()
    }

    /// One data-stream packet from `from` at `now`: the stream it opens (for its handler) and
    /// the events it causes. RPC packets are not for this and are ignored.
    pub(crate) fn on_message(
        &mut self,
        now: Instant,
        from: &ParticipantIdentity,
        message: DataMessage,
        out: &mut Vec<RoomEvent>,
    ) -> Option<Opened> {
        match message {
            DataMessage::StreamHeader(h) => self.on_header(now, from, h, out),
            DataMessage::StreamChunk(c) => {
                self.on_chunk(now, from, c, out);
                None
            }
            DataMessage::StreamTrailer(t) => {
                self.on_trailer(from, t);
                None
            }
            _ => None,
        }
    }

    fn on_header(
        &mut self,
        now: Instant,
        from: &ParticipantIdentity,
        h: StreamHeader,
        out: &mut Vec<RoomEvent>,
    ) -> Option<Opened> {
        let key = (from.clone(), h.stream_id.clone());
        if self.open.contains_key(&key) {
            self.stats.stray_chunks += 1; // a repeated header
            return None;
        }
        let inflate = match h.compression {
            Compression::None => None,
            // Raw DEFLATE: no zlib header or checksum.
            Compression::DeflateRaw => Some(Box::new(flate2::Decompress::new(false))),
            Compression::Other(_) => {
                self.stats.unsupported += 1;
                return None;
            }
        };
        let is_text = matches!(h.kind, StreamKind::Text { .. });
        let has_handler = if is_text {
            self.text_handlers.contains_key(&h.topic)
        } else {
            self.byte_handlers.contains_key(&h.topic)
        };
        if !has_handler {
            self.stats.unhandled += 1;
            return None;
        }
        if self.open.len() >= self.limits.max_streams {
            self.stats.rejected_too_many += 1;
            out.push(RoomEvent::DataStreamLimitExceeded {
                participant_identity: from.clone(),
                stream_id: h.stream_id,
                topic: h.topic,
                limit: StreamLimit::TooManyStreams {
                    max: self.limits.max_streams,
                },
            });
            return None;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let trailer = TrailerAttributes::default();
        let raw = RawReader {
            rx,
            buffered: self.buffered.clone(),
            done: false,
            trailer: trailer.clone(),
        };
        let inline = h.inline_content.clone();
        let opened = match h.kind.clone() {
            StreamKind::Text {
                operation,
                reply_to_stream_id,
                attached_stream_ids,
                generated,
                ..
            } => Opened::Text(
                self.text_handlers[&h.topic].clone(),
                TextStreamReader {
                    info: TextStreamInfo {
                        id: h.stream_id.clone(),
                        topic: h.topic.clone(),
                        timestamp_ms: h.timestamp_ms,
                        mime_type: h.mime_type.clone(),
                        total_length: h.total_length,
                        attributes: h.attributes.clone(),
                        operation,
                        reply_to_stream_id: (!reply_to_stream_id.is_empty())
                            .then_some(reply_to_stream_id),
                        attached_stream_ids,
                        generated,
                    },
                    raw,
                    carry: Vec::new(),
                },
                from.clone(),
            ),
            // A header of a newer kind: its content is still bytes.
            kind @ (StreamKind::Bytes { .. } | StreamKind::Unknown) => Opened::Bytes(
                self.byte_handlers[&h.topic].clone(),
                ByteStreamReader {
                    info: ByteStreamInfo {
                        id: h.stream_id.clone(),
                        topic: h.topic.clone(),
                        timestamp_ms: h.timestamp_ms,
                        mime_type: h.mime_type.clone(),
                        total_length: h.total_length,
                        attributes: h.attributes.clone(),
                        name: match kind {
                            StreamKind::Bytes { name } => name,
                            _ => String::new(),
                        },
                    },
                    raw,
                },
                from.clone(),
            ),
        };
        self.stats.opened += 1;
        self.stats.single_packet += u64::from(inline.is_some());
        self.stats.compressed += u64::from(h.compression == Compression::DeflateRaw);
        self.open.insert(
            key.clone(),
            OpenStream {
                topic: h.topic,
                tx,
                trailer,
                received: 0,
                total_length: h.total_length,
                next_index: 0,
                last_activity: now,
                inflate,
            },
        );
        if let Some(content) = inline {
            // A single-packet stream: its content is in the header, and it is complete.
            self.push(now, &key, content, out);
            if self.open.remove(&key).is_some() {
                self.stats.completed += 1;
            }
        }
        Some(opened)
    }

    fn on_chunk(
        &mut self,
        now: Instant,
        from: &ParticipantIdentity,
        c: StreamChunk,
        out: &mut Vec<RoomEvent>,
    ) {
        let key = (from.clone(), c.stream_id);
        let Some(s) = self.open.get_mut(&key) else {
            self.stats.stray_chunks += 1;
            return;
        };
        if c.chunk_index < s.next_index {
            // Repeated: the channel is reliable and ordered, so this is a sender's bug or a
            // hostile peer; the content already read stays.
            self.stats.stray_chunks += 1;
            return;
        }
        s.next_index = c.chunk_index.saturating_add(1);
        self.push(now, &key, c.content, out);
    }

    /// Add content as it came to an open stream: inflated first if the stream is compressed,
    /// piece by piece, each piece checked against the limits before the next is made.
    fn push(
        &mut self,
        now: Instant,
        key: &(ParticipantIdentity, String),
        content: Vec<u8>,
        out: &mut Vec<RoomEvent>,
    ) {
        let Some(s) = self.open.get_mut(key) else {
            return;
        };
        s.last_activity = now;
        if s.inflate.is_none() {
            self.accept(key, content, out);
            return;
        }
        let mut input = &content[..];
        loop {
            let Some(inflate) = self.open.get_mut(key).and_then(|s| s.inflate.as_mut()) else {
                return; // failed over a limit meanwhile
            };
            let mut piece = Vec::with_capacity(INFLATE_PIECE);
            let before = inflate.total_in();
            let status = inflate.decompress_vec(input, &mut piece, flate2::FlushDecompress::None);
            let consumed = (inflate.total_in() - before) as usize;
            input = &input[consumed.min(input.len())..];
            let status = match status {
                Ok(status) => status,
                Err(e) => {
                    self.stats.corrupt += 1;
                    if let Some(s) = self.open.remove(key) {
                        let _ = s.tx.send(Err(StreamError::Corrupt {
                            detail: e.to_string(),
                        }));
                    }
                    return;
                }
            };
            let produced = piece.len();
            if produced > 0 {
                self.accept(key, piece, out);
            }
            let more_output = produced == INFLATE_PIECE;
            if status == flate2::Status::StreamEnd
                || (!more_output && (input.is_empty() || consumed == 0))
            {
                return;
            }
        }
    }

    /// Add (inflated) content to an open stream, enforcing the limits.
    fn accept(
        &mut self,
        key: &(ParticipantIdentity, String),
        content: Vec<u8>,
        out: &mut Vec<RoomEvent>,
    ) {
        let Some(s) = self.open.get_mut(key) else {
            return;
        };
        let n = content.len() as u64;
        s.received = s.received.saturating_add(n);
        let max = self
            .limits
            .max_stream_bytes
            .min(s.total_length.unwrap_or(u64::MAX));
        if s.received > max {
            self.stats.dropped_too_large += 1;
            self.fail(key, StreamLimit::StreamTooLarge { max }, out);
            return;
        }
        let buffered = self.buffered.now.load(Ordering::Relaxed);
        if buffered.saturating_add(n) > self.limits.max_buffered_bytes {
            self.stats.dropped_buffer_full += 1;
            let max = self.limits.max_buffered_bytes;
            self.fail(key, StreamLimit::BufferFull { max }, out);
            return;
        }
        if n == 0 {
            return;
        }
        self.buffered.add(n);
        if s.tx.send(Ok(content)).is_err() {
            // The reader is gone: nothing counts as buffered, the stream's rest is dropped.
            self.buffered.sub(n);
        }
    }

    /// End a stream over a limit: its reader gets the error, the app an event.
    fn fail(
        &mut self,
        key: &(ParticipantIdentity, String),
        limit: StreamLimit,
        out: &mut Vec<RoomEvent>,
    ) {
        if let Some(s) = self.open.remove(key) {
            let _ = s.tx.send(Err(StreamError::Limit(limit)));
            out.push(RoomEvent::DataStreamLimitExceeded {
                participant_identity: key.0.clone(),
                stream_id: key.1.clone(),
                topic: s.topic,
                limit,
            });
        }
    }

    fn on_trailer(&mut self, from: &ParticipantIdentity, t: StreamTrailer) {
        let Some(s) = self.open.remove(&(from.clone(), t.stream_id)) else {
            self.stats.stray_chunks += 1;
            return;
        };
        let result = if !t.reason.is_empty() {
            Err(StreamError::Aborted { reason: t.reason })
        } else {
            match s.total_length {
                Some(expected) if s.received < expected => Err(StreamError::Incomplete {
                    received: s.received,
                    expected,
                }),
                _ => Ok(()),
            }
        };
        match result {
            Ok(()) => {
                self.stats.completed += 1;
                let _ = s.trailer.set(t.attributes);
            }
            Err(e) => {
                self.stats.failed += 1;
                let _ = s.tx.send(Err(e));
            }
        }
        // Dropping the sender ends the reader after what it holds.
    }

    /// Drop the streams silent since before `now - idle_timeout`.
    pub(crate) fn expire(&mut self, now: Instant, out: &mut Vec<RoomEvent>) {
        let after = self.limits.idle_timeout;
        let idle: Vec<_> = self
            .open
            .iter()
            .filter(|(_, s)| now.saturating_duration_since(s.last_activity) >= after)
            .map(|(k, _)| k.clone())
            .collect();
        for key in idle {
            self.stats.timed_out += 1;
            self.fail(&key, StreamLimit::IdleTimeout { after }, out);
        }
    }

    /// The sender left: its open streams end with [`StreamError::Closed`].
    pub(crate) fn participant_left(&mut self, identity: &str) {
        let gone: Vec<_> = self
            .open
            .keys()
            .filter(|(who, _)| who == identity)
            .cloned()
            .collect();
        for key in gone {
            if let Some(s) = self.open.remove(&key) {
                self.stats.failed += 1;
                let _ = s.tx.send(Err(StreamError::Closed));
            }
        }
    }

    /// The room is left: every open stream ends with [`StreamError::Closed`].
    pub(crate) fn close_all(&mut self) {
        for (_, s) in self.open.drain() {
            let _ = s.tx.send(Err(StreamError::Closed));
        }
    }
}

// ------------------------------------------------------------------------------ writers

/// A random stream or request id: a UUID, as the SDKs make them.
pub(crate) fn random_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// How far a writer got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamProgress {
    /// Bytes sent so far.
    pub bytes_sent: u64,
    /// The total announced in the header, if any.
    pub bytes_total: Option<u64>,
    /// Chunks sent so far.
    pub chunks_sent: u64,
}

/// How long a writer retries while the engine's reliable queue is full.
const SEND_RETRY_FOR: Duration = Duration::from_secs(30);

struct RawWriter {
    session: Arc<Session>,
    id: String,
    destinations: Vec<String>,
    progress: StreamProgress,
}

impl RawWriter {
    fn new(
        session: Arc<Session>,
        header: &StreamHeader,
        destinations: &[ParticipantIdentity],
    ) -> Self {
        Self {
            session,
            id: header.stream_id.clone(),
            destinations: destinations.iter().map(|d| d.to_string()).collect(),
            progress: StreamProgress {
                bytes_total: header.total_length,
                ..StreamProgress::default()
            },
        }
    }

    async fn open(
        session: Arc<Session>,
        header: StreamHeader,
        destinations: &[ParticipantIdentity],
    ) -> Result<Self, StreamError> {
        let w = Self::new(session, &header, destinations);
        w.send(DataMessage::StreamHeader(header)).await?;
        Ok(w)
    }

    /// Send a whole stream as one packet, its content in the header, if that packet stays
    /// within [`STREAM_CHUNK_SIZE`] (the SDKs' data streams v2); `false` if it would not.
    async fn send_inline(
        session: &Arc<Session>,
        mut header: StreamHeader,
        content: &[u8],
        destinations: &[ParticipantIdentity],
    ) -> Result<bool, StreamError> {
        if content.len() >= STREAM_CHUNK_SIZE {
            return Ok(false);
        }
        header.inline_content = Some(content.to_vec());
        let message = DataMessage::StreamHeader(header);
        if message.encoded_len() > STREAM_CHUNK_SIZE {
            return Ok(false);
        }
        let DataMessage::StreamHeader(header) = &message else {
            unreachable!("built above")
        };
        Self::new(session.clone(), header, destinations)
            .send(message.clone())
            .await?;
        Ok(true)
    }

    /// Send one packet; while the engine's reliable queue is full, wait and try again.
    async fn send(&self, message: DataMessage) -> Result<(), StreamError> {
        let deadline = tokio::time::Instant::now() + SEND_RETRY_FOR;
        loop {
            match self
                .session
                .send_data_message(message.clone(), self.destinations.clone())
                .await
            {
                Err(SessionError::Engine {
                    source: EngineError::DataBufferFull { .. },
                    ..
                }) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(e) => return Err(StreamError::Send(Arc::new(e))),
                Ok(()) => return Ok(()),
            }
        }
    }

    async fn write_chunk(&mut self, content: &[u8]) -> Result<(), StreamError> {
        self.send(DataMessage::StreamChunk(StreamChunk {
            stream_id: self.id.clone(),
            chunk_index: self.progress.chunks_sent,
            content: content.to_vec(),
            version: 0,
        }))
        .await?;
        self.progress.chunks_sent += 1;
        self.progress.bytes_sent += content.len() as u64;
        Ok(())
    }

    async fn close(self, reason: &str) -> Result<(), StreamError> {
        self.send(DataMessage::StreamTrailer(StreamTrailer {
            stream_id: self.id.clone(),
            reason: reason.to_owned(),
            attributes: BTreeMap::new(),
        }))
        .await
    }
}

/// Send `text` whole as a text stream (its length in the header): as one packet if
/// `single_packet` (every recipient reads data streams v2) and it fits one, else chunked.
pub(crate) async fn send_text(
    session: Arc<Session>,
    text: &str,
    options: StreamTextOptions,
    single_packet: bool,
) -> Result<TextStreamInfo, StreamError> {
    if single_packet {
        let destinations = options.destination_identities.clone();
        let (info, header) = TextStreamWriter::header(options.clone(), Some(text.len() as u64));
        if RawWriter::send_inline(&session, header, text.as_bytes(), &destinations).await? {
            return Ok(info);
        }
    }
    let mut w = TextStreamWriter::open(session, options, Some(text.len() as u64)).await?;
    w.write(text).await?;
    let info = w.info().clone();
    w.close().await?;
    Ok(info)
}

/// Send `bytes` whole as a byte stream (its length in the header), as [`send_text`] does.
pub(crate) async fn send_bytes(
    session: Arc<Session>,
    bytes: &[u8],
    mut options: StreamByteOptions,
    single_packet: bool,
) -> Result<ByteStreamInfo, StreamError> {
    options.total_length = Some(bytes.len() as u64);
    if single_packet {
        let (info, header) = ByteStreamWriter::header(options.clone());
        if RawWriter::send_inline(&session, header, bytes, &options.destination_identities).await? {
            return Ok(info);
        }
    }
    let mut w = ByteStreamWriter::open(session, options).await?;
    w.write(bytes).await?;
    let info = w.info().clone();
    w.close().await?;
    Ok(info)
}

/// An outgoing text stream: write text, then close. Text is cut into chunks of at most
/// [`STREAM_CHUNK_SIZE`] bytes on character boundaries.
pub struct TextStreamWriter {
    info: TextStreamInfo,
    raw: RawWriter,
}

impl std::fmt::Debug for TextStreamWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextStreamWriter")
            .field("info", &self.info)
            .field("progress", &self.raw.progress)
            .finish_non_exhaustive()
    }
}

impl TextStreamWriter {
    pub(crate) async fn open(
        session: Arc<Session>,
        options: StreamTextOptions,
        total_length: Option<u64>,
    ) -> Result<Self, StreamError> {
        let destinations = options.destination_identities.clone();
        let (info, header) = Self::header(options, total_length);
        let raw = RawWriter::open(session, header, &destinations).await?;
        Ok(Self { info, raw })
    }

    /// What a stream with `options` is, and its header.
    fn header(
        options: StreamTextOptions,
        total_length: Option<u64>,
    ) -> (TextStreamInfo, StreamHeader) {
        let info = TextStreamInfo {
            id: options.id.unwrap_or_else(random_id),
            topic: options.topic,
            timestamp_ms: now_ms(),
            mime_type: TEXT_MIME_TYPE.to_owned(),
            total_length,
            attributes: options.attributes.into_iter().collect(),
            operation: TextOperation::Create,
            reply_to_stream_id: options.reply_to_stream_id,
            attached_stream_ids: Vec::new(),
            generated: false,
        };
        let header = StreamHeader {
            stream_id: info.id.clone(),
            timestamp_ms: info.timestamp_ms,
            topic: info.topic.clone(),
            mime_type: info.mime_type.clone(),
            total_length,
            attributes: info.attributes.clone(),
            kind: StreamKind::Text {
                operation: TextOperation::Create,
                version: 0,
                reply_to_stream_id: info.reply_to_stream_id.clone().unwrap_or_default(),
                attached_stream_ids: Vec::new(),
                generated: false,
            },
            inline_content: None,
            compression: Default::default(),
        };
        (info, header)
    }

    /// What the stream is.
    pub fn info(&self) -> &TextStreamInfo {
        &self.info
    }

    /// How far it got.
    pub fn progress(&self) -> StreamProgress {
        self.raw.progress
    }

    /// Send `text`.
    pub async fn write(&mut self, text: &str) -> Result<(), StreamError> {
        for piece in utf8_chunks(text, STREAM_CHUNK_SIZE) {
            self.raw.write_chunk(piece.as_bytes()).await?;
        }
        Ok(())
    }

    /// End the stream normally.
    pub async fn close(self) -> Result<(), StreamError> {
        self.raw.close("").await
    }

    /// End the stream with a reason (the reader gets [`StreamError::Aborted`]).
    pub async fn close_with_reason(self, reason: &str) -> Result<(), StreamError> {
        self.raw.close(reason).await
    }
}

/// `text` cut into pieces of at most `max` bytes (at least one character each) on character
/// boundaries.
pub(crate) fn utf8_chunks(text: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = rest.len().min(max);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if cut == 0 {
            cut = rest.chars().next().map_or(rest.len(), char::len_utf8);
        }
        let (piece, tail) = rest.split_at(cut);
        out.push(piece);
        rest = tail;
    }
    out
}

/// An outgoing byte stream: write bytes, then close. Bytes are cut into chunks of at most
/// [`STREAM_CHUNK_SIZE`].
pub struct ByteStreamWriter {
    info: ByteStreamInfo,
    raw: RawWriter,
}

impl std::fmt::Debug for ByteStreamWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteStreamWriter")
            .field("info", &self.info)
            .field("progress", &self.raw.progress)
            .finish_non_exhaustive()
    }
}

impl ByteStreamWriter {
    pub(crate) async fn open(
        session: Arc<Session>,
        options: StreamByteOptions,
    ) -> Result<Self, StreamError> {
        let destinations = options.destination_identities.clone();
        let (info, header) = Self::header(options);
        let raw = RawWriter::open(session, header, &destinations).await?;
        Ok(Self { info, raw })
    }

    /// What a stream with `options` is, and its header.
    fn header(options: StreamByteOptions) -> (ByteStreamInfo, StreamHeader) {
        let info = ByteStreamInfo {
            id: options.id.unwrap_or_else(random_id),
            topic: options.topic,
            timestamp_ms: now_ms(),
            mime_type: options
                .mime_type
                .unwrap_or_else(|| BYTE_MIME_TYPE.to_owned()),
            total_length: options.total_length,
            attributes: options.attributes.into_iter().collect(),
            name: options.name.unwrap_or_default(),
        };
        let header = StreamHeader {
            stream_id: info.id.clone(),
            timestamp_ms: info.timestamp_ms,
            topic: info.topic.clone(),
            mime_type: info.mime_type.clone(),
            total_length: info.total_length,
            attributes: info.attributes.clone(),
            kind: StreamKind::Bytes {
                name: info.name.clone(),
            },
            inline_content: None,
            compression: Default::default(),
        };
        (info, header)
    }

    /// What the stream is.
    pub fn info(&self) -> &ByteStreamInfo {
        &self.info
    }

    /// How far it got.
    pub fn progress(&self) -> StreamProgress {
        self.raw.progress
    }

    /// Send `bytes`.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), StreamError> {
        for chunk in bytes.chunks(STREAM_CHUNK_SIZE) {
            self.raw.write_chunk(chunk).await?;
        }
        Ok(())
    }

    /// End the stream normally.
    pub async fn close(self) -> Result<(), StreamError> {
        self.raw.close("").await
    }

    /// End the stream with a reason (the reader gets [`StreamError::Aborted`]).
    pub async fn close_with_reason(self, reason: &str) -> Result<(), StreamError> {
        self.raw.close(reason).await
    }
}

/// Send a file as a byte stream: its name and length in the header, its content read in
/// chunk-sized pieces (never whole in memory).
pub(crate) async fn send_file(
    session: Arc<Session>,
    path: &std::path::Path,
    mut options: StreamByteOptions,
) -> Result<ByteStreamInfo, StreamError> {
    use tokio::io::AsyncReadExt;
    let file_err = |source: std::io::Error| StreamError::File {
        path: path.display().to_string(),
        source: Arc::new(source),
    };
    let mut file = tokio::fs::File::open(path).await.map_err(file_err)?;
    let len = file.metadata().await.map_err(file_err)?.len();
    options.total_length = Some(len);
    if options.name.is_none() {
        options.name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    }
    let mut writer = ByteStreamWriter::open(session, options).await?;
    let mut buf = vec![0u8; STREAM_CHUNK_SIZE];
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            let n = file.read(&mut buf[filled..]).await.map_err(file_err)?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            break;
        }
        writer.write(&buf[..filled]).await?;
        if filled < buf.len() {
            break;
        }
    }
    let info = writer.info().clone();
    writer.close().await?;
    Ok(info)
}

#[cfg(test)]
mod tests;
