//! Property tests: everything the engine parses from the server or the network — SDPs, trickle
//! candidates, data packets, signal messages — and the log redaction, driven with arbitrary and
//! mutated input. Each property checks a result (a round trip, an invariant or an error), not
//! only the absence of a panic.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use livekit_protocol as proto;
use proptest::prelude::*;
use prost::Message as _;
use str0m::Candidate;

use crate::data_message::DataMessage;
use crate::events::Quality;
use crate::redact;
use crate::sansio::peer::{candidate_init, parse_candidate_init};
use crate::sdp::{SectionKind, sections};
use crate::wire::{self, Incoming};

/// An offer as livekit-server v1.13 writes it for a subscriber (data channel, audio, video),
/// trimmed to the lines that matter.
const OFFER: &str = "v=0\r\no=- 4215775240449105457 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0 1 2\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n\
a=ice-ufrag:RrtGvLNkGSZzHvAE\r\na=ice-pwd:UQHLoFkvLrajxBwTFYPdWdwzCUNMDDOf\r\n\
a=fingerprint:sha-256 5B:2C:4F:AE:66:0C:22:3B:7A:1F:0B:4C:83:6A:22:1C:4F:7A:96:0E:89:27:19:1B:1D:3F:E2:55:AC:0E:34:11\r\n\
a=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=sctp-port:5000\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=setup:actpass\r\na=mid:1\r\n\
a=ice-ufrag:RrtGvLNkGSZzHvAE\r\na=ice-pwd:UQHLoFkvLrajxBwTFYPdWdwzCUNMDDOf\r\n\
a=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=ssrc:3340937215 cname:PA_Hv3cEzUJ5Ut2|TR_AM8sFhSRiTkiY9\r\n\
a=ssrc:3340937215 msid:PA_Hv3cEzUJ5Ut2|TR_AM8sFhSRiTkiY9 TR_AM8sFhSRiTkiY9\r\n\
a=msid:PA_Hv3cEzUJ5Ut2|TR_AM8sFhSRiTkiY9 TR_AM8sFhSRiTkiY9\r\na=sendonly\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\nc=IN IP4 0.0.0.0\r\na=setup:actpass\r\na=mid:2\r\n\
a=ice-ufrag:RrtGvLNkGSZzHvAE\r\na=ice-pwd:UQHLoFkvLrajxBwTFYPdWdwzCUNMDDOf\r\n\
a=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack pli\r\na=rtpmap:97 rtx/90000\r\n\
a=fmtp:97 apt=96\r\na=ssrc-group:FID 1094932131 2710546210\r\n\
a=ssrc:1094932131 cname:PA_Hv3cEzUJ5Ut2|TR_VCcvUjJ8MWzxQv\r\n\
a=ssrc:2710546210 cname:PA_Hv3cEzUJ5Ut2|TR_VCcvUjJ8MWzxQv\r\n\
a=msid:PA_Hv3cEzUJ5Ut2|TR_VCcvUjJ8MWzxQv TR_VCcvUjJ8MWzxQv\r\na=sendonly\r\n";

const OFFER_PWD: &str = "UQHLoFkvLrajxBwTFYPdWdwzCUNMDDOf";

/// A mutation of a text: delete, insert, replace or duplicate a span, or truncate.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    Replace(usize, String),
    Duplicate(usize, usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let noise = prop_oneof![
        any::<String>(),
        "[ \r\n:=|/a-z0-9]{0,12}",
        Just("\u{0}".to_owned()),
        Just("é".to_owned()),
        Just("m=".to_owned()),
        Just("\r\na=ssrc:".to_owned()),
    ];
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(a, n)| Edit::Delete(a, n)),
        (any::<usize>(), noise.clone()).prop_map(|(a, s)| Edit::Insert(a, s)),
        (any::<usize>(), noise).prop_map(|(a, s)| Edit::Replace(a, s)),
        (any::<usize>(), 1usize..80).prop_map(|(a, n)| Edit::Duplicate(a, n)),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

/// Apply `edits` to `s`, keeping it valid UTF-8 (positions snap to character boundaries).
fn mutate(s: &str, edits: &[Edit]) -> String {
    let mut s = s.to_owned();
    let at = |s: &str, i: usize| {
        let mut i = if s.is_empty() { 0 } else { i % (s.len() + 1) };
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    for e in edits {
        match e {
            Edit::Delete(a, n) => {
                let a = at(&s, *a);
                let b = at(&s, a + n);
                let b = if b < a { s.len() } else { b };
                s.replace_range(a..b.max(a), "");
            }
            Edit::Insert(a, t) => {
                let a = at(&s, *a);
                s.insert_str(a, t);
            }
            Edit::Replace(a, t) => {
                let a = at(&s, *a);
                let b = at(&s, (a + t.len()).min(s.len()));
                s.replace_range(a..b.max(a), t);
            }
            Edit::Duplicate(a, n) => {
                let a = at(&s, *a);
                let b = at(&s, (a + n).min(s.len()));
                let span = s[a..b.max(a)].to_owned();
                s.insert_str(a, &span);
            }
            Edit::Truncate(a) => {
                let a = at(&s, *a);
                s.truncate(a);
            }
        }
    }
    s
}

fn m_line_count(sdp: &str) -> usize {
    sdp.lines().filter(|l| l.starts_with("m=")).count()
}

fn ice_chars(min: usize, max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[A-Za-z0-9+/]{{{min},{max}}}")).unwrap()
}

fn b64url(min: usize, max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[A-Za-z0-9_-]{{{min},{max}}}")).unwrap()
}

/// A JWT-shaped string (`eyJ` + header, payload, signature).
fn jwt() -> impl Strategy<Value = String> {
    (b64url(10, 60), b64url(10, 300), b64url(16, 86))
        .prop_map(|(h, p, s)| format!("eyJ{h}.{p}.{s}"))
}

/// One generated m-section: what the SDP says, to compare with what is parsed back.
#[derive(Debug, Clone)]
struct GenSection {
    kind: &'static str,
    port_zero: bool,
    mid: String,
    direction: Option<&'static str>,
    msid: Option<(String, String)>,
    ssrcs: Vec<u32>,
}

fn gen_section() -> impl Strategy<Value = GenSection> {
    (
        prop_oneof![
            Just("audio"),
            Just("video"),
            Just("application"),
            Just("text")
        ],
        any::<bool>(),
        "[A-Za-z0-9]{1,8}",
        proptest::option::of(prop_oneof![
            Just("sendonly"),
            Just("recvonly"),
            Just("sendrecv"),
            Just("inactive")
        ]),
        proptest::option::of(("PA_[A-Za-z0-9]{4,12}", "TR_[A-Za-z0-9]{4,12}")),
        proptest::collection::vec(any::<u32>(), 0..4),
    )
        .prop_map(|(kind, port_zero, mid, direction, msid, ssrcs)| {
            let msid = msid.map(|(p, t)| (format!("{p}|{t}"), t));
            GenSection {
                kind,
                port_zero,
                mid,
                direction,
                msid,
                ssrcs,
            }
        })
}

fn render(sections: &[GenSection], pwd: &str) -> String {
    let mut sdp = String::from("v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n");
    for s in sections {
        let port = if s.port_zero { 0 } else { 9 };
        sdp += &format!("m={} {port} UDP/TLS/RTP/SAVPF 96\r\n", s.kind);
        sdp += &format!("a=ice-pwd:{pwd}\r\na=mid:{}\r\n", s.mid);
        if let Some(d) = s.direction {
            sdp += &format!("a={d}\r\n");
        }
        for ssrc in &s.ssrcs {
            sdp += &format!("a=ssrc:{ssrc} cname:x\r\n");
        }
        if let Some((stream, track)) = &s.msid {
            sdp += &format!("a=msid:{stream} {track}\r\n");
        }
    }
    sdp
}

/// Any data-stream or RPC packet.
fn data_message() -> impl Strategy<Value = DataMessage> {
    use crate::data_message::*;
    let text = || "[a-z0-9._ -]{0,12}";
    let attrs = || proptest::collection::btree_map(text(), any::<String>(), 0..4);
    let bytes = || proptest::collection::vec(any::<u8>(), 0..64);
    let kind = prop_oneof![
        (
            any::<i32>(),
            any::<i32>(),
            text(),
            proptest::collection::vec(text(), 0..3),
            any::<bool>()
        )
            .prop_map(
                |(op, version, reply, attached, generated)| StreamKind::Text {
                    operation: match op.rem_euclid(5) {
                        0 => TextOperation::Create,
                        1 => TextOperation::Update,
                        2 => TextOperation::Delete,
                        3 => TextOperation::Reaction,
                        _ => TextOperation::Other(op.saturating_abs().max(4)),
                    },
                    version,
                    reply_to_stream_id: reply,
                    attached_stream_ids: attached,
                    generated,
                }
            ),
        text().prop_map(|name| StreamKind::Bytes { name }),
        Just(StreamKind::Unknown),
    ];
    let header = (
        text(),
        any::<i64>(),
        text(),
        text(),
        proptest::option::of(any::<u64>()),
        attrs(),
        kind,
        proptest::option::of(bytes()),
        any::<bool>(),
    )
        .prop_map(
            |(
                stream_id,
                timestamp_ms,
                topic,
                mime_type,
                total_length,
                attributes,
                kind,
                inline_content,
                deflate,
            )| {
                DataMessage::StreamHeader(StreamHeader {
                    stream_id,
                    timestamp_ms,
                    topic,
                    mime_type,
                    total_length,
                    attributes,
                    kind,
                    inline_content,
                    compression: if deflate {
                        Compression::DeflateRaw
                    } else {
                        Compression::None
                    },
                })
            },
        );
    let chunk = (text(), any::<u64>(), bytes(), any::<i32>()).prop_map(
        |(stream_id, chunk_index, content, version)| {
            DataMessage::StreamChunk(StreamChunk {
                stream_id,
                chunk_index,
                content,
                version,
            })
        },
    );
    let trailer = (text(), any::<String>(), attrs()).prop_map(|(stream_id, reason, attributes)| {
        DataMessage::StreamTrailer(StreamTrailer {
            stream_id,
            reason,
            attributes,
        })
    });
    let request = (
        text(),
        text(),
        any::<String>(),
        any::<u32>(),
        any::<u32>(),
        bytes(),
    )
        .prop_map(
            |(id, method, payload, response_timeout_ms, version, compressed_payload)| {
                DataMessage::RpcRequest(RpcRequest {
                    id,
                    method,
                    payload,
                    response_timeout_ms,
                    version,
                    compressed_payload,
                })
            },
        );
    let ack = text().prop_map(|request_id| DataMessage::RpcAck(RpcAck { request_id }));
    let outcome = proptest::option::of(prop_oneof![
        any::<String>().prop_map(RpcOutcome::Payload),
        bytes().prop_map(RpcOutcome::CompressedPayload),
        (any::<u32>(), any::<String>(), any::<String>()).prop_map(|(code, message, data)| {
            RpcOutcome::Error(RpcErrorInfo {
                code,
                message,
                data,
            })
        }),
    ]);
    let response = (text(), outcome).prop_map(|(request_id, outcome)| {
        DataMessage::RpcResponse(RpcResponse {
            request_id,
            outcome,
        })
    });
    prop_oneof![header, chunk, trailer, request, ack, response]
}

/// A data packet from `identity` carrying `message`, encoded.
fn message_packet(identity: &str, message: DataMessage) -> Vec<u8> {
    #[allow(deprecated)]
    let p = proto::DataPacket {
        participant_identity: identity.into(),
        value: Some(message.into_proto()),
        ..Default::default()
    };
    p.encode_to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    // ---------------------------------------------------------------- SDP

    #[test]
    fn sdp_sections_of_any_text_are_one_per_m_line(text in any::<String>()) {
        let s = sections(&text);
        prop_assert_eq!(s.len(), m_line_count(&text));
        for sec in &s {
            let mut seen = sec.ssrcs.clone();
            seen.dedup();
            prop_assert_eq!(seen.len(), sec.ssrcs.len(), "SSRCs are not repeated");
        }
    }

    #[test]
    fn sdp_sections_of_mutated_offers(edits in proptest::collection::vec(edit(), 1..6)) {
        let text = mutate(OFFER, &edits);
        let s = sections(&text);
        prop_assert_eq!(s.len(), m_line_count(&text));
        for sec in &s {
            // Reading the track and participant never fails, whatever the msid says.
            let _ = (sec.track_sid(), sec.participant_sid(), sec.remote_sends());
            if sec.port_zero {
                prop_assert!(!sec.remote_sends());
            }
        }
        // str0m parses the same text when it is applied as a remote offer: an error, not a panic.
        let _ = str0m::change::SdpOffer::from_sdp_string(&text);
    }

    #[test]
    fn sdp_sections_round_trip(generated in proptest::collection::vec(gen_section(), 0..6),
                               pwd in ice_chars(22, 64)) {
        let text = render(&generated, &pwd);
        let parsed = sections(&text);
        prop_assert_eq!(parsed.len(), generated.len());
        for (p, g) in parsed.iter().zip(&generated) {
            let kind = match g.kind {
                "audio" => SectionKind::Audio,
                "video" => SectionKind::Video,
                "application" => SectionKind::Application,
                _ => SectionKind::Other,
            };
            prop_assert_eq!(p.kind, kind);
            prop_assert_eq!(p.port_zero, g.port_zero);
            prop_assert_eq!(&p.mid, &g.mid);
            prop_assert_eq!(p.direction.as_str(), g.direction.unwrap_or("sendrecv"));
            let mut ssrcs = Vec::new();
            for s in &g.ssrcs {
                if !ssrcs.contains(s) {
                    ssrcs.push(*s);
                }
            }
            prop_assert_eq!(&p.ssrcs, &ssrcs);
            prop_assert_eq!(&p.msid, &g.msid);
            if let Some((stream, track)) = &g.msid {
                prop_assert_eq!(p.track_sid(), Some(track.as_str()));
                prop_assert_eq!(p.participant_sid(), stream.split_once('|').map(|(a, _)| a));
            }
        }
        // The same SDP in a log line shows no password.
        let shown = redact::text(&text);
        prop_assert!(!shown.contains(&pwd));
        prop_assert_eq!(shown.lines().count(), text.lines().count());
    }

    // ---------------------------------------------------------------- ICE candidates

    #[test]
    fn candidate_init_of_any_text_is_an_error_or_a_candidate(text in any::<String>()) {
        match parse_candidate_init(&text) {
            Ok(_) => prop_assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok()),
            Err(e) => prop_assert!(!e.is_empty()),
        }
    }

    #[test]
    fn candidate_init_with_any_candidate_string(cand in any::<String>(),
                                                 mid in any::<String>()) {
        let json = serde_json::json!({"candidate": cand, "sdpMid": mid, "sdpMLineIndex": 0})
            .to_string();
        match parse_candidate_init(&json) {
            Ok(None) => prop_assert!(cand.trim().is_empty()),
            Ok(Some(_)) => prop_assert!(!cand.trim().is_empty()),
            Err(e) => prop_assert!(e.contains(" in "), "the error quotes the candidate: {}", e),
        }
    }

    #[test]
    fn candidate_round_trips(ip in any::<[u8; 4]>(), port in 1u16.., foundation in 1u32..,
                             prio in 1u32.., prefix in any::<bool>()) {
        let ip = Ipv4Addr::from(ip);
        prop_assume!(!ip.is_unspecified() && !ip.is_broadcast() && !ip.is_multicast());
        let addr = SocketAddr::new(IpAddr::V4(ip), port);
        let line = format!("candidate:{foundation} 1 udp {prio} {ip} {port} typ host");
        let line = if prefix { format!("a={line}") } else { line };
        let json = serde_json::json!({"candidate": line, "sdpMid": "0"}).to_string();
        let c = parse_candidate_init(&json).map_err(TestCaseError::fail)?;
        prop_assert_eq!(c.map(|c| c.addr()), Some(addr));
        // What we send for our own candidate parses back to the same address.
        let ours = Candidate::host(addr, "udp").map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back = parse_candidate_init(&candidate_init(&ours)).map_err(TestCaseError::fail)?;
        prop_assert_eq!(back.map(|c| c.addr()), Some(addr));
    }

    #[test]
    fn mutated_candidate_lines(edits in proptest::collection::vec(edit(), 1..4)) {
        let line = mutate("candidate:1234 1 udp 2130706431 127.0.0.1 7882 typ host generation 0", &edits);
        let json = serde_json::json!({"candidate": line}).to_string();
        match parse_candidate_init(&json) {
            // Whatever is accepted is what we would write back: it parses again to the same.
            Ok(Some(c)) => {
                let again = Candidate::from_sdp_string(&c.to_sdp_string())
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(again.addr(), c.addr());
            }
            Ok(None) => prop_assert!(line.trim().is_empty()),
            Err(e) => prop_assert!(!e.is_empty()),
        }
    }

    // ---------------------------------------------------------------- data packets

    #[test]
    fn data_packet_of_any_bytes_decodes_or_errors(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        // Whatever decodes re-encodes to a packet that decodes to the same thing.
        if let Ok(first) = wire::decode_data_packet(&bytes)
            && let Ok(p) = proto::DataPacket::decode(bytes.as_slice())
        {
            // (compared as text: a speaker level may be NaN)
            let again = wire::decode_data_packet(&p.encode_to_vec());
            prop_assert_eq!(format!("{:?}", again), format!("{:?}", Ok::<_, ()>(first)));
        }
    }

    #[test]
    #[allow(deprecated)]
    fn user_data_round_trips(identity in any::<String>(), topic in proptest::option::of(any::<String>()),
                             payload in proptest::collection::vec(any::<u8>(), 0..2048),
                             sequence in any::<u32>(), reliable in any::<bool>()) {
        let kind = if reliable { proto::data_packet::Kind::Reliable } else { proto::data_packet::Kind::Lossy };
        let p = proto::DataPacket {
            kind: kind as i32,
            participant_identity: identity.clone(),
            sequence,
            value: Some(proto::data_packet::Value::User(proto::UserPacket {
                payload: payload.clone(),
                topic: topic.clone(),
                ..Default::default()
            })),
            ..Default::default()
        };
        prop_assert_eq!(
            wire::decode_data_packet(&p.encode_to_vec()).ok(),
            Some(Incoming::User { participant_identity: identity, topic, payload })
        );
    }

    #[test]
    fn speaker_packets_keep_the_active_speakers_in_order(
        speakers in proptest::collection::vec((any::<String>(), any::<f32>(), any::<bool>()), 0..16))
    {
        #[allow(deprecated)]
        let p = proto::DataPacket {
            value: Some(proto::data_packet::Value::Speaker(proto::ActiveSpeakerUpdate {
                speakers: speakers.iter().map(|(sid, level, active)| proto::SpeakerInfo {
                    sid: sid.clone(), level: *level, active: *active,
                }).collect(),
            })),
            ..Default::default()
        };
        let want: Vec<(String, f32)> = speakers.iter().filter(|s| s.2).map(|s| (s.0.clone(), s.1)).collect();
        match wire::decode_data_packet(&p.encode_to_vec()) {
            Ok(Incoming::Speakers(got)) => {
                prop_assert_eq!(got.len(), want.len());
                for (g, w) in got.iter().zip(&want) {
                    prop_assert_eq!(&g.0, &w.0);
                    // (protobuf does not send a default 0.0, so -0.0 arrives as 0.0)
                    prop_assert!(g.1 == w.1 || (g.1.is_nan() && w.1.is_nan()), "{} vs {}", g.1, w.1);
                }
            }
            other => prop_assert!(false, "expected speakers, got {:?}", other),
        }
    }

    #[test]
    fn mutated_data_packets(payload in proptest::collection::vec(any::<u8>(), 0..256),
                            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
                            cut in any::<usize>()) {
        #[allow(deprecated)]
        let p = proto::DataPacket {
            participant_identity: "alice".into(),
            value: Some(proto::data_packet::Value::User(proto::UserPacket {
                payload, topic: Some("chat".into()), ..Default::default()
            })),
            ..Default::default()
        };
        let mut bytes = p.encode_to_vec();
        for (at, x) in flips {
            let n = bytes.len();
            bytes[at % n] ^= x;
        }
        bytes.truncate(cut % (bytes.len() + 1));
        // Decoding the damaged packet either fails or yields a packet that re-encodes to the
        // same content, with nothing longer than the bytes it came from.
        if let Ok(first) = wire::decode_data_packet(&bytes) {
            if let Incoming::User { participant_identity, topic, payload } = &first {
                let topic = topic.as_ref().map_or(0, String::len);
                prop_assert!(participant_identity.len() + topic + payload.len() <= bytes.len());
            }
            let p = proto::DataPacket::decode(bytes.as_slice()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let again = wire::decode_data_packet(&p.encode_to_vec());
            prop_assert_eq!(format!("{:?}", again), format!("{:?}", Ok::<_, ()>(first)));
        }
    }


    #[test]
    fn stream_and_rpc_packets_round_trip(identity in any::<String>(), message in data_message()) {
        prop_assert_eq!(
            wire::decode_data_packet(&message_packet(&identity, message.clone())).ok(),
            Some(Incoming::Message { participant_identity: identity, message })
        );
    }

    #[test]
    fn damaged_stream_and_rpc_packets(message in data_message(),
                                      flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
                                      cut in any::<usize>()) {
        let mut bytes = message_packet("alice", message);
        for (at, x) in flips {
            let n = bytes.len();
            bytes[at % n] ^= x;
        }
        bytes.truncate(cut % (bytes.len() + 1));
        // Decoding a truncated or corrupted packet fails, or yields a typed message that
        // survives another round trip unchanged, with an id no longer than the bytes.
        if let Ok(first) = wire::decode_data_packet(&bytes)
            && let Incoming::Message { message, participant_identity } = &first
        {
            prop_assert!(message.id().len() + participant_identity.len() <= bytes.len());
            let again = wire::decode_data_packet(&message_packet(participant_identity, message.clone()));
            prop_assert_eq!(again.ok(), Some(first.clone()));
        }
    }

    #[test]
    fn packets_glued_together_decode_as_one_or_fail(messages in proptest::collection::vec(data_message(), 2..5)) {
        // Two packets in one SCTP message (a peer that concatenates): protobuf merges them, so
        // the result is the last value's kind or an error, never a panic or a mixed kind.
        let bytes: Vec<u8> = messages.iter().flat_map(|m| message_packet("a", m.clone())).collect();
        if let Ok(Incoming::Message { message, .. }) = wire::decode_data_packet(&bytes) {
            let last = messages.last().expect("two or more");
            prop_assert_eq!(std::mem::discriminant(&message), std::mem::discriminant(last));
        }
    }

    // ---------------------------------------------------------------- signal messages

    #[test]
    fn signal_responses_of_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(resp) = proto::SignalResponse::decode(bytes.as_slice())
            && let Some(msg) = &resp.message
        {
            let line = wire::describe_signal(msg);
            prop_assert!(!line.is_empty());
            if let proto::signal_response::Message::Offer(d) | proto::signal_response::Message::Answer(d) = msg {
                // Whatever the offer says, the engine's parser copes with it.
                prop_assert_eq!(sections(&d.sdp).len(), m_line_count(&d.sdp));
            }
        }
    }

    #[test]
    fn leave_requests_with_any_action_and_reason(action in any::<i32>(), reason in any::<i32>()) {
        use proto::leave_request::Action;
        use wire::LeaveAction;
        let l = proto::LeaveRequest { action, reason, ..Default::default() };
        let (name, got) = wire::leave_disposition(&l);
        prop_assert!(!name.is_empty());
        let shutdown = reason == proto::DisconnectReason::ServerShutdown as i32;
        let want = if action == Action::Resume as i32 {
            LeaveAction::Resume
        } else if action == Action::Reconnect as i32 || shutdown {
            // A shutting-down server's rooms live on with the next server.
            LeaveAction::Reconnect
        } else {
            // DISCONNECT, and unknown actions.
            LeaveAction::Disconnect
        };
        prop_assert_eq!(got, want);
        if proto::DisconnectReason::try_from(reason).is_err() {
            prop_assert_eq!(name, reason.to_string());
        }
    }

    #[test]
    fn connection_quality_of_any_value(v in any::<i32>()) {
        let q = wire::quality(v);
        let want = match v {
            0 => Quality::Poor,
            1 => Quality::Good,
            2 => Quality::Excellent,
            3 => Quality::Lost,
            _ => Quality::Poor,
        };
        prop_assert_eq!(q, want);
    }

    #[test]
    fn signal_log_lines_hide_tokens_and_ice_passwords(token in jwt(), pwd in ice_chars(22, 64),
                                                      turn in "[ -~]{8,40}") {
        use proto::signal_response::Message as M;
        let offer = OFFER.replace(OFFER_PWD, &pwd);
        let msgs = [
            M::RefreshToken(token.clone()),
            M::Offer(proto::SessionDescription { r#type: "offer".into(), sdp: offer.clone(), ..Default::default() }),
            M::Answer(proto::SessionDescription { r#type: "answer".into(), sdp: offer, ..Default::default() }),
            M::RoomMoved(proto::RoomMovedResponse { token: token.clone(), ..Default::default() }),
            M::Reconnect(proto::ReconnectResponse {
                ice_servers: vec![proto::IceServer {
                    urls: vec!["turn:127.0.0.1:3478".into()],
                    username: "u".into(),
                    credential: turn.clone(),
                }],
                ..Default::default()
            }),
        ];
        for m in &msgs {
            let line = wire::describe_signal(m);
            prop_assert!(!line.contains(&token), "{}", line);
            prop_assert!(!line.contains(&pwd), "{}", line);
            if matches!(m, M::Reconnect(_)) {
                let shown = format!("{turn:?}");
                prop_assert!(!line.contains(&shown), "{}", line);
            }
        }
    }

    // ---------------------------------------------------------------- redaction

    #[test]
    fn redaction_is_total_and_idempotent(text in any::<String>()) {
        let once = redact::text(&text).into_owned();
        let twice = redact::text(&once).into_owned();
        prop_assert_eq!(twice, once);
    }

    #[test]
    fn redaction_removes_embedded_tokens(prefix in any::<String>(), token in jwt(),
                                          suffix in any::<String>()) {
        let text = format!("{prefix}{token}{suffix}");
        let shown = redact::text(&text);
        prop_assert!(!shown.contains(&token));
        let signature = token.rsplit('.').next().unwrap();
        prop_assert!(!shown.contains(signature) || prefix.contains(signature) || suffix.contains(signature));
        prop_assert_eq!(redact::token(&token), format!("[token redacted, {} bytes]", token.len()));
    }

    #[test]
    fn redaction_of_sdp_keeps_everything_but_passwords(pwd in ice_chars(1, 256),
                                                       edits in proptest::collection::vec(edit(), 0..4)) {
        // Mutations may damage the offer, but not the password lines we check.
        let offer = mutate(OFFER, &edits).replace(OFFER_PWD, &pwd);
        let shown = redact::text(&offer);
        for (a, b) in offer.lines().zip(shown.lines()) {
            if let Some(i) = a.find("ice-pwd:") && a[i + 8..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '+' || c == '/') {
                prop_assert_eq!(&b[..i + 8], &a[..i + 8]);
                prop_assert!(b[i + 8..].starts_with(redact::REDACTED));
            } else if !a.contains("token=") && !a.contains("inline:") && !a.contains("eyJ")
                && !a.contains("Bearer ") && !a.contains("bearer ") && !a.contains("credential: \"") {
                prop_assert_eq!(a, b);
            }
        }
        prop_assert_eq!(offer.lines().count(), shown.lines().count());
    }
}
