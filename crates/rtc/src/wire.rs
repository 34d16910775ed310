//! What the engine reads out of server messages, as pure functions of the message: data packets
//! from the data channels, and the parts of signal responses that become events (leave
//! disposition, connection quality) or log lines (a redacted summary).
//!
//! Kept apart from `engine.rs` so that every function here can be driven with arbitrary input by
//! property tests (`src/hostile_tests.rs`). `engine.rs` still has inline copies of this logic
//! (`on_data_packet`, the `Leave` and `ConnectionQuality` arms of `on_signal`, and the
//! `signal message ignored: {other:?}` trace, which would print a `RefreshToken`'s token); they
//! switch to these functions once the engine split lands.
#![cfg_attr(not(test), allow(dead_code))]

use livekit_protocol as proto;
use prost::Message as _;

use crate::events::Quality;

/// What a data packet carries for the application.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Incoming {
    /// A user packet: the sender's identity, topic and payload.
    User {
        participant_identity: String,
        topic: Option<String>,
        payload: Vec<u8>,
    },
    /// The active speakers and their levels.
    Speakers(Vec<(String, f32)>),
    /// A packet of another kind (transcription, RPC, metrics, …), ignored.
    Other,
}

/// Decode one data-channel message. Never panics; bytes that are not a `DataPacket` are an
/// error (the engine logs and drops them).
#[allow(deprecated)] // Speaker packets and UserPacket identity are still sent by servers.
pub(crate) fn decode_data_packet(bytes: &[u8]) -> Result<Incoming, prost::DecodeError> {
    let packet = proto::DataPacket::decode(bytes)?;
    Ok(match packet.value {
        Some(proto::data_packet::Value::User(u)) => Incoming::User {
            // Newer servers fill the packet's identity, older ones only the user packet's.
            participant_identity: if packet.participant_identity.is_empty() {
                u.participant_identity
            } else {
                packet.participant_identity
            },
            topic: u.topic,
            payload: u.payload,
        },
        Some(proto::data_packet::Value::Speaker(s)) => Incoming::Speakers(
            s.speakers
                .into_iter()
                .filter(|s| s.active)
                .map(|s| (s.sid, s.level))
                .collect(),
        ),
        _ => Incoming::Other,
    })
}

/// How to follow a server `Leave`: the reason's name (or its number when unknown) and whether
/// the server asks us to come back (`RESUME`/`RECONNECT`). An unknown action is taken as
/// `DISCONNECT`, so a malformed leave never makes us rejoin a room we were removed from.
pub(crate) fn leave_disposition(l: &proto::LeaveRequest) -> (String, bool) {
    let action = proto::leave_request::Action::try_from(l.action)
        .unwrap_or(proto::leave_request::Action::Disconnect);
    let reason = proto::DisconnectReason::try_from(l.reason)
        .map(|r| r.as_str_name().to_owned())
        .unwrap_or_else(|_| l.reason.to_string());
    (reason, action != proto::leave_request::Action::Disconnect)
}

/// A connection-quality value from the server (unknown values read as `Poor`).
pub(crate) fn quality(value: i32) -> Quality {
    match proto::ConnectionQuality::try_from(value) {
        Ok(proto::ConnectionQuality::Excellent) => Quality::Excellent,
        Ok(proto::ConnectionQuality::Good) => Quality::Good,
        Ok(proto::ConnectionQuality::Lost) => Quality::Lost,
        _ => Quality::Poor,
    }
}

/// A signal message for a log line, with tokens, ICE passwords and TURN credentials redacted
/// (`RefreshToken` and `RoomMoved` carry tokens; offers, answers and join/reconnect responses
/// carry ICE passwords or TURN credentials).
pub(crate) fn describe_signal(msg: &proto::signal_response::Message) -> String {
    use proto::signal_response::Message as M;
    match msg {
        M::RefreshToken(t) => format!("RefreshToken({})", crate::redact::token(t)),
        other => crate::redact::text(&format!("{other:?}")).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(deprecated)]
    fn user_packet_identity_falls_back_to_the_user_packet() {
        let p = proto::DataPacket {
            value: Some(proto::data_packet::Value::User(proto::UserPacket {
                participant_identity: "old".into(),
                payload: b"hi".to_vec(),
                topic: Some("t".into()),
                ..Default::default()
            })),
            ..Default::default()
        };
        assert_eq!(
            decode_data_packet(&p.encode_to_vec()).unwrap(),
            Incoming::User {
                participant_identity: "old".into(),
                topic: Some("t".into()),
                payload: b"hi".to_vec()
            }
        );
        assert!(decode_data_packet(&[0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn refresh_token_is_never_logged() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.sig";
        let m = proto::signal_response::Message::RefreshToken(jwt.into());
        let s = describe_signal(&m);
        assert!(!s.contains("eyJ"), "{s}");
        assert!(s.contains("RefreshToken"), "{s}");
    }
}
