//! The incoming streams' reassembly and limits, on virtual time, and the text chunking.

use std::sync::Mutex;

use proptest::prelude::*;
use wavecast_rtc::data_message::{StreamChunk, StreamHeader, StreamKind, StreamTrailer};

use super::*;

type Kept<T> = Arc<Mutex<Vec<T>>>;

/// Streams with a byte and a text handler on topic "t" that keep each reader.
fn streams(limits: DataStreamLimits) -> (Streams, Kept<ByteStreamReader>, Kept<TextStreamReader>) {
    let mut s = Streams::new(limits);
    let bytes = Arc::new(Mutex::new(Vec::new()));
    let texts = Arc::new(Mutex::new(Vec::new()));
    let b = bytes.clone();
    s.register_bytes("t", Arc::new(move |r, _| b.lock().unwrap().push(r)))
        .unwrap();
    let t = texts.clone();
    s.register_text("t", Arc::new(move |r, _| t.lock().unwrap().push(r)))
        .unwrap();
    (s, bytes, texts)
}

fn header(id: &str, text: bool, total: Option<u64>) -> DataMessage {
    header_of(id, text, total, false)
}

/// A header; `unknown` makes it neither text nor bytes (a newer kind).
fn header_of(id: &str, text: bool, total: Option<u64>, unknown: bool) -> DataMessage {
    DataMessage::StreamHeader(StreamHeader {
        stream_id: id.into(),
        timestamp_ms: 0,
        topic: "t".into(),
        mime_type: String::new(),
        total_length: total,
        attributes: BTreeMap::new(),
        kind: if unknown {
            StreamKind::Unknown
        } else if text {
            StreamKind::Text {
                operation: TextOperation::Create,
                version: 0,
                reply_to_stream_id: String::new(),
                attached_stream_ids: Vec::new(),
                generated: false,
            }
        } else {
            StreamKind::Bytes { name: "f".into() }
        },
        inline_content: None,
        compression: Default::default(),
    })
}

fn chunk(id: &str, i: u64, content: &[u8]) -> DataMessage {
    DataMessage::StreamChunk(StreamChunk {
        stream_id: id.into(),
        chunk_index: i,
        content: content.to_vec(),
        version: 0,
    })
}

fn trailer(id: &str, reason: &str) -> DataMessage {
    DataMessage::StreamTrailer(StreamTrailer {
        stream_id: id.into(),
        reason: reason.into(),
        attributes: BTreeMap::new(),
    })
}

/// Feed `messages` from "alice" at `now`: the events, with each opened stream handed over.
fn feed(s: &mut Streams, now: Instant, messages: Vec<DataMessage>) -> Vec<RoomEvent> {
    let alice = ParticipantIdentity::from("alice");
    let mut out = Vec::new();
    for m in messages {
        if let Some(o) = s.on_message(now, &alice, m, &mut out) {
            o.deliver();
        }
    }
    out
}

fn limits() -> DataStreamLimits {
    DataStreamLimits {
        max_streams: 4,
        max_stream_bytes: 1000,
        max_buffered_bytes: 1500,
        idle_timeout: Duration::from_secs(8),
    }
}

fn limit_of(ev: &RoomEvent) -> Option<StreamLimit> {
    match ev {
        RoomEvent::DataStreamLimitExceeded { limit, .. } => Some(*limit),
        _ => None,
    }
}

#[tokio::test]
async fn chunks_are_read_in_order_and_text_keeps_characters_cut_by_chunks() {
    let (mut s, bytes, texts) = streams(limits());
    let t0 = Instant::now();
    let ev = feed(
        &mut s,
        t0,
        vec![
            header("b", false, Some(6)),
            chunk("b", 0, b"abc"),
            chunk("b", 1, b"def"),
            trailer("b", ""),
        ],
    );
    assert!(ev.is_empty());
    let r = bytes.lock().unwrap().pop().expect("handed to the handler");
    assert_eq!(r.info().name, "f");
    assert_eq!(r.info().total_length, Some(6));
    assert_eq!(r.read_all().await.unwrap(), b"abcdef");

    // "é" (2 bytes) and "😀" (4 bytes) cut across chunks.
    let text = "xé😀y".as_bytes();
    feed(
        &mut s,
        t0,
        vec![
            header("s", true, None),
            chunk("s", 0, &text[..2]),
            chunk("s", 1, &text[2..5]),
            chunk("s", 2, &text[5..]),
            trailer("s", ""),
        ],
    );
    let mut r = texts.lock().unwrap().pop().expect("text reader");
    let mut pieces = Vec::new();
    while let Some(p) = r.next().await {
        pieces.push(p.unwrap());
    }
    assert_eq!(pieces.concat(), "xé😀y");
    assert!(pieces.iter().all(|p| !p.contains('\u{fffd}')), "{pieces:?}");
    let st = s.stats();
    assert_eq!((st.opened, st.completed, st.buffered_bytes), (2, 2, 0));
}

#[tokio::test]
async fn the_trailers_attributes_join_the_headers_once_the_stream_ended() {
    let (mut s, _, texts) = streams(limits());
    let attrs = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let mut h = header("s", true, None);
    if let DataMessage::StreamHeader(h) = &mut h {
        h.attributes = attrs(&[
            ("lk.segment_id", "SG_1"),
            ("lk.transcription_final", "false"),
        ]);
    }
    let mut end = trailer("s", "");
    if let DataMessage::StreamTrailer(t) = &mut end {
        t.attributes = attrs(&[("lk.transcription_final", "true")]);
    }
    let t0 = Instant::now();
    feed(&mut s, t0, vec![h, chunk("s", 0, b"hello")]);
    let mut r = texts.lock().unwrap().pop().expect("text reader");
    assert_eq!(r.next().await.unwrap().unwrap(), "hello");
    assert_eq!(r.info().attributes["lk.transcription_final"], "false");
    feed(&mut s, t0, vec![end]);
    assert!(r.next().await.is_none());
    assert_eq!(
        r.info().attributes,
        attrs(&[
            ("lk.segment_id", "SG_1"),
            ("lk.transcription_final", "true")
        ])
    );
}

#[tokio::test]
async fn a_stream_beyond_the_open_limit_is_refused_with_an_event() {
    let (mut s, bytes, _) = streams(limits());
    let t0 = Instant::now();
    let ev = feed(
        &mut s,
        t0,
        (0..6)
            .map(|i| header(&format!("s{i}"), false, None))
            .collect(),
    );
    assert_eq!(bytes.lock().unwrap().len(), 4);
    assert_eq!(
        ev.iter().filter_map(limit_of).collect::<Vec<_>>(),
        vec![StreamLimit::TooManyStreams { max: 4 }; 2]
    );
    assert_eq!(s.stats().rejected_too_many, 2);
    assert_eq!(s.open_streams(), 4);
    // Chunks of a refused stream are stray.
    feed(&mut s, t0, vec![chunk("s5", 0, b"x")]);
    assert_eq!(s.stats().stray_chunks, 1);
}

#[tokio::test]
async fn a_stream_over_its_byte_limit_or_its_announced_length_is_dropped() {
    let (mut s, bytes, _) = streams(limits());
    let t0 = Instant::now();
    let ev = feed(
        &mut s,
        t0,
        vec![
            header("big", false, None),
            chunk("big", 0, &[1; 600]),
            chunk("big", 1, &[2; 600]),
            chunk("big", 2, &[3; 10]),
        ],
    );
    assert_eq!(
        ev.iter().filter_map(limit_of).collect::<Vec<_>>(),
        [StreamLimit::StreamTooLarge { max: 1000 }]
    );
    let mut r = bytes.lock().unwrap().pop().unwrap();
    assert_eq!(r.next().await.unwrap().unwrap().len(), 600);
    assert!(matches!(
        r.next().await,
        Some(Err(StreamError::Limit(StreamLimit::StreamTooLarge {
            max: 1000
        })))
    ));
    assert!(r.next().await.is_none());
    assert_eq!(s.stats().stray_chunks, 1, "the chunk after the drop");

    let ev = feed(
        &mut s,
        t0,
        vec![header("liar", false, Some(10)), chunk("liar", 0, &[0; 11])],
    );
    assert_eq!(
        ev.iter().filter_map(limit_of).collect::<Vec<_>>(),
        [StreamLimit::StreamTooLarge { max: 10 }]
    );
    assert_eq!(s.stats().dropped_too_large, 2);
    assert_eq!(
        s.stats().buffered_bytes,
        0,
        "the first stream's chunk was read, the second's refused"
    );
}

#[tokio::test]
async fn unread_bytes_are_bounded_across_streams_and_freed_as_the_app_reads() {
    let (mut s, bytes, _) = streams(limits());
    let t0 = Instant::now();
    let ev = feed(
        &mut s,
        t0,
        vec![
            header("a", false, None),
            header("b", false, None),
            chunk("a", 0, &[0; 900]),
            chunk("b", 0, &[0; 700]),
        ],
    );
    assert_eq!(
        ev.iter().filter_map(limit_of).collect::<Vec<_>>(),
        [StreamLimit::BufferFull { max: 1500 }]
    );
    assert_eq!(s.stats().dropped_buffer_full, 1);
    assert_eq!(s.stats().buffered_bytes, 900);
    let mut a = bytes.lock().unwrap().remove(0);
    assert_eq!(a.next().await.unwrap().unwrap().len(), 900);
    assert_eq!(s.stats().buffered_bytes, 0);
    assert_eq!(s.stats().buffered_peak, 900);
    // Room again: the same stream takes more.
    assert!(feed(&mut s, t0, vec![chunk("a", 1, &[0; 90])]).is_empty());
    assert_eq!(s.stats().buffered_bytes, 90);
}

#[tokio::test]
async fn a_silent_stream_times_out_on_the_clock_it_is_given() {
    let (mut s, bytes, _) = streams(limits());
    let t0 = Instant::now();
    feed(&mut s, t0, vec![header("slow", false, None)]);
    feed(
        &mut s,
        t0 + Duration::from_secs(5),
        vec![chunk("slow", 0, b"x")],
    );
    let mut out = Vec::new();
    s.expire(t0 + Duration::from_secs(12), &mut out);
    assert!(out.is_empty(), "7 s after its last chunk: still open");
    s.expire(t0 + Duration::from_secs(13), &mut out);
    assert_eq!(
        out.iter().filter_map(limit_of).collect::<Vec<_>>(),
        [StreamLimit::IdleTimeout {
            after: Duration::from_secs(8)
        }]
    );
    assert_eq!(s.stats().timed_out, 1);
    let r = bytes.lock().unwrap().pop().unwrap();
    assert!(matches!(
        r.read_all().await,
        Err(StreamError::Limit(StreamLimit::IdleTimeout { .. }))
    ));
}

#[tokio::test]
async fn repeated_and_reordered_chunks_short_streams_aborts_and_departures() {
    let (mut s, bytes, _) = streams(limits());
    let t0 = Instant::now();
    feed(
        &mut s,
        t0,
        vec![
            header("r", false, Some(4)),
            chunk("r", 0, b"a"),
            chunk("r", 0, b"a"),
            chunk("r", 2, b"c"),
            chunk("r", 1, b"b"),
            trailer("r", ""),
        ],
    );
    assert_eq!(s.stats().stray_chunks, 2, "the repeat and the late one");
    let r = bytes.lock().unwrap().pop().unwrap();
    assert!(matches!(
        r.read_all().await,
        Err(StreamError::Incomplete {
            received: 2,
            expected: 4
        })
    ));

    feed(
        &mut s,
        t0,
        vec![
            header("x", false, None),
            chunk("x", 0, b"1"),
            trailer("x", "cancelled"),
        ],
    );
    let r = bytes.lock().unwrap().pop().unwrap();
    assert!(
        matches!(r.read_all().await, Err(StreamError::Aborted { reason }) if reason == "cancelled")
    );

    feed(&mut s, t0, vec![header("y", false, None)]);
    s.participant_left("alice");
    let r = bytes.lock().unwrap().pop().unwrap();
    assert!(matches!(r.read_all().await, Err(StreamError::Closed)));
    assert_eq!(s.open_streams(), 0);
}

#[tokio::test]
async fn a_flood_of_unterminated_streams_stays_within_the_limits() {
    let (mut s, bytes, _) = streams(limits());
    let t0 = Instant::now();
    let mut events = Vec::new();
    for i in 0..10_000u64 {
        let id = format!("flood{i}");
        events.extend(feed(
            &mut s,
            t0 + Duration::from_millis(i),
            vec![header(&id, false, None), chunk(&id, 0, &[0; 500])],
        ));
        assert!(s.open_streams() <= 4);
        assert!(s.stats().buffered_bytes <= 1500);
    }
    let st = s.stats();
    // Three streams hold 500 unread bytes each; every later one is refused (four open) or
    // dropped at its first chunk (unread bytes full), which frees its slot.
    assert_eq!(st.opened + st.rejected_too_many, 10_000);
    assert_eq!(st.dropped_buffer_full, st.opened - 3);
    assert!(st.buffered_peak <= 1500);
    assert_eq!(
        events.len() as u64,
        st.rejected_too_many + st.dropped_buffer_full
    );
    let mut out = Vec::new();
    s.expire(t0 + Duration::from_secs(30), &mut out);
    assert_eq!(s.open_streams(), 0, "all timed out");
    bytes.lock().unwrap().clear();
    assert_eq!(s.stats().buffered_bytes, 0);
}

#[test]
fn a_topic_has_one_handler_and_unhandled_streams_are_counted() {
    let (mut s, _, _) = streams(limits());
    assert!(matches!(
        s.register_bytes("t", Arc::new(|_, _| {})),
        Err(StreamError::HandlerExists { kind: "byte", .. })
    ));
    s.unregister_bytes("t");
    feed(&mut s, Instant::now(), vec![header("z", false, None)]);
    assert_eq!(s.stats().unhandled, 1);
    assert_eq!(s.open_streams(), 0);
    // A compression this version does not know: refused, not handed over as garbage.
    let DataMessage::StreamHeader(mut h) = header("c", true, None) else {
        unreachable!()
    };
    h.compression = Compression::Other(9);
    feed(&mut s, Instant::now(), vec![DataMessage::StreamHeader(h)]);
    assert_eq!(s.stats().unsupported, 1);
    assert_eq!(s.open_streams(), 0);
    // A header of a newer kind is read as bytes by the topic's byte handler.
    let (mut s, bytes, _) = streams(limits());
    feed(
        &mut s,
        Instant::now(),
        vec![
            header_of("u", false, None, true),
            chunk("u", 0, b"x"),
            trailer("u", ""),
        ],
    );
    assert_eq!(bytes.lock().unwrap().len(), 1);
}

/// `data` compressed with raw DEFLATE, as the SDKs send a data stream v2.
fn deflate(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A header of a compressed stream, with its content inline or not.
fn compressed_header(id: &str, text: bool, total: u64, inline: Option<Vec<u8>>) -> DataMessage {
    let DataMessage::StreamHeader(mut h) = header(id, text, Some(total)) else {
        unreachable!()
    };
    h.compression = Compression::DeflateRaw;
    h.inline_content = inline;
    DataMessage::StreamHeader(h)
}

#[tokio::test]
async fn compressed_streams_are_inflated_across_chunks_and_inline() {
    let (mut s, bytes, texts) = streams(limits());
    let text = "größer ".repeat(100); // 800 bytes
    let z = deflate(text.as_bytes());
    assert!(z.len() < 100);
    // Cut the compressed bytes anywhere: the inflater carries state from chunk to chunk.
    let (a, b) = z.split_at(z.len() / 3);
    let ev = feed(
        &mut s,
        Instant::now(),
        vec![
            compressed_header("z", true, text.len() as u64, None),
            chunk("z", 0, a),
            chunk("z", 1, &b[..1]),
            chunk("z", 2, &b[1..]),
            trailer("z", ""),
        ],
    );
    assert!(ev.is_empty(), "{ev:?}");
    let r = texts.lock().unwrap().pop().expect("handed over");
    assert_eq!(r.read_all().await.unwrap(), text);
    // A single-packet compressed stream: the content in the header.
    let data: Vec<u8> = (0..900u32).map(|i| (i % 7) as u8).collect();
    feed(
        &mut s,
        Instant::now(),
        vec![compressed_header("i", false, 900, Some(deflate(&data)))],
    );
    let r = bytes.lock().unwrap().pop().expect("handed over");
    assert_eq!(r.read_all().await.unwrap(), data);
    let st = s.stats();
    assert_eq!((st.completed, st.open_streams, st.corrupt), (2, 0, 0));
}

#[tokio::test]
async fn a_compression_bomb_is_stopped_at_the_stream_limit_while_inflating() {
    // 1 MB of zeros compresses to about a kilobyte; the stream may bring 1000 bytes.
    let (mut s, bytes, _) = streams(limits());
    let z = deflate(&vec![0u8; 1 << 20]);
    assert!(z.len() < 2000, "{}", z.len());
    let ev = feed(
        &mut s,
        Instant::now(),
        vec![
            compressed_header("bomb", false, 1 << 20, None),
            chunk("bomb", 0, &z),
        ],
    );
    assert_eq!(
        ev.iter().filter_map(limit_of).collect::<Vec<_>>(),
        vec![StreamLimit::StreamTooLarge { max: 1000 }]
    );
    let st = s.stats();
    assert_eq!((st.dropped_too_large, st.open_streams), (1, 0));
    // Never more than one inflated piece was held, and what was accepted stays within limits.
    assert!(st.buffered_peak <= 1000, "{st:?}");
    let r = bytes.lock().unwrap().pop().expect("handed over");
    assert!(matches!(
        r.read_all().await,
        Err(StreamError::Limit(StreamLimit::StreamTooLarge { .. }))
    ));
}

#[tokio::test]
async fn corrupt_compressed_content_ends_the_stream_with_an_error() {
    let (mut s, bytes, _) = streams(limits());
    feed(
        &mut s,
        Instant::now(),
        vec![
            compressed_header("bad", false, 10, None),
            // 0b111 as the first block header: BFINAL with the reserved block type 3.
            chunk("bad", 0, &[0xff, 0xff, 0xff, 0xff]),
            chunk("bad", 1, b"more"),
        ],
    );
    let st = s.stats();
    assert_eq!((st.corrupt, st.open_streams, st.stray_chunks), (1, 0, 1));
    let r = bytes.lock().unwrap().pop().expect("handed over");
    assert!(matches!(
        r.read_all().await,
        Err(StreamError::Corrupt { .. })
    ));
}

/// One packet of a hostile peer's sequence.
#[derive(Debug, Clone)]
enum Op {
    /// Stream, text, announced length, of a newer kind, compressed.
    Header(u8, bool, Option<u16>, bool, bool),
    Chunk(u8, u8, u16),
    Trailer(u8, bool),
    Read(u8),
    Tick(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (
            0u8..6,
            any::<bool>(),
            proptest::option::of(0u16..2000),
            proptest::bool::weighted(0.1),
            proptest::bool::weighted(0.2),
        )
            .prop_map(|(i, t, n, u, z)| Op::Header(i, t, n, u, z)),
        (0u8..6, 0u8..5, 0u16..700).prop_map(|(i, c, n)| Op::Chunk(i, c, n)),
        (0u8..6, any::<bool>()).prop_map(|(i, a)| Op::Trailer(i, a)),
        (0u8..6).prop_map(Op::Read),
        (0u16..10_000).prop_map(Op::Tick),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_packet_sequence_keeps_the_limits_and_the_accounting(ops in proptest::collection::vec(op(), 0..80)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let (mut s, bytes, texts) = streams(limits());
        let mut now = Instant::now();
        for op in ops {
            let m = match op {
                Op::Header(i, t, n, u, z) => {
                    let mut h = header_of(&format!("s{i}"), t, n.map(u64::from), u);
                    if let (true, DataMessage::StreamHeader(h)) = (z, &mut h) {
                        h.compression = Compression::DeflateRaw;
                    }
                    Some(h)
                }
                // Stored DEFLATE blocks of sevens (header 0x00, LEN, NLEN) or garbage: both must
                // keep the limits in a compressed stream.
                Op::Chunk(i, c, n) => {
                    let mut content = vec![7; n as usize];
                    if c % 2 == 0 && n >= 5 {
                        let len = n - 5;
                        content[..5].copy_from_slice(&[0, len as u8, (len >> 8) as u8, !len as u8, (!len >> 8) as u8]);
                    }
                    Some(chunk(&format!("s{i}"), u64::from(c), &content))
                }
                Op::Trailer(i, abort) => Some(trailer(&format!("s{i}"), if abort { "x" } else { "" })),
                Op::Read(i) => {
                    let mut b = bytes.lock().unwrap();
                    if !b.is_empty() {
                        let k = i as usize % b.len();
                        let r = &mut b[k];
                        let _ = rt.block_on(async {
                            tokio::time::timeout(Duration::from_millis(1), r.next()).await
                        });
                    }
                    None
                }
                Op::Tick(ms) => {
                    now += Duration::from_millis(u64::from(ms));
                    let mut out = Vec::new();
                    s.expire(now, &mut out);
                    None
                }
            };
            if let Some(m) = m {
                feed(&mut s, now, vec![m]);
            }
            let st = s.stats();
            prop_assert!(s.open_streams() <= 4);
            prop_assert!(st.buffered_bytes <= 1500);
        }
        // Every unread byte is accounted for: dropping the readers frees them all.
        drop(rt);
        bytes.lock().unwrap().clear();
        texts.lock().unwrap().clear();
        prop_assert_eq!(s.stats().buffered_bytes, 0);
    }

    #[test]
    fn text_is_cut_on_character_boundaries_within_the_chunk_size(text in any::<String>(), max in 1usize..40) {
        let pieces = utf8_chunks(&text, max);
        prop_assert_eq!(pieces.concat(), text.clone());
        for p in &pieces {
            prop_assert!(!p.is_empty());
            prop_assert!(p.len() <= max || p.chars().count() == 1);
        }
    }

    #[test]
    fn utf8_cut_anywhere_reads_back_whole(text in any::<String>(), cuts in proptest::collection::vec(any::<usize>(), 0..6)) {
        let bytes = text.as_bytes();
        let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        at.push(0);
        at.push(bytes.len());
        at.sort_unstable();
        let mut carry = Vec::new();
        let mut out = String::new();
        for w in at.windows(2) {
            carry.extend_from_slice(&bytes[w[0]..w[1]]);
            out.push_str(&take_utf8(&mut carry));
        }
        prop_assert!(carry.is_empty());
        prop_assert_eq!(out, text);
    }
}
