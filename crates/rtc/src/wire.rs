//! What the engine reads out of server messages, as pure functions of the message: data packets
//! from the data channels, and the parts of signal responses that become events (leave
//! disposition, connection quality, active speakers) or log lines (a redacted summary).
//!
//! Kept apart from the engine so that every function here can be driven with arbitrary input by
//! property tests (`src/hostile_tests.rs`); the engine (`engine/data.rs`, `engine/signal.rs`)
//! calls these functions and holds no copies of their logic.

use livekit_protocol as proto;
use prost::Message as _;

use crate::data_message::{DataMessage, EncryptedData};
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
    /// A data-stream or RPC packet, and its sender's identity.
    Message {
        participant_identity: String,
        message: DataMessage,
    },
    /// An end-to-end encrypted packet (`EncryptedPacket`) and its sender's identity.
    Encrypted {
        participant_identity: String,
        packet: EncryptedData,
    },
    /// A packet of another kind (legacy transcription, metrics, SIP DTMF, …), ignored.
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
        Some(proto::data_packet::Value::Speaker(s)) => {
            Incoming::Speakers(active_speakers(s.speakers))
        }
        Some(proto::data_packet::Value::EncryptedPacket(e)) => Incoming::Encrypted {
            participant_identity: packet.participant_identity,
            packet: EncryptedData {
                encryption_type: e.encryption_type,
                iv: e.iv,
                key_index: e.key_index,
                encrypted_value: e.encrypted_value,
            },
        },
        Some(value) => match DataMessage::from_proto(value) {
            Some(message) => Incoming::Message {
                participant_identity: packet.participant_identity,
                message,
            },
            None => Incoming::Other,
        },
        None => Incoming::Other,
    })
}

/// The active speakers of a speaker update (data packet or signal message), in the server's
/// order, with their levels; inactive entries are left out.
pub(crate) fn active_speakers(speakers: Vec<proto::SpeakerInfo>) -> Vec<(String, f32)> {
    speakers
        .into_iter()
        .filter(|s| s.active)
        .map(|s| (s.sid, s.level))
        .collect()
}

/// What the engine does after a server `Leave`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeaveAction {
    /// Resume the session in this engine (ICE restart over a new signal connection).
    Resume,
    /// Stop the engine; the owner joins afresh.
    Reconnect,
    /// Stop the engine for good (we were removed).
    Disconnect,
}

/// How to follow a server `Leave`: the reason's name (or its number when unknown) and the
/// action. An unknown action is taken as `DISCONNECT`, so a malformed leave never makes us
/// rejoin a room we were removed from — except that a server shutting down (SIGTERM twice, or
/// its drain ending) closes its rooms with `SERVER_SHUTDOWN` and `DISCONNECT` although we were
/// not removed: the room lives on with the next server, so that one is a `Reconnect`.
pub(crate) fn leave_disposition(l: &proto::LeaveRequest) -> (String, LeaveAction) {
    use proto::leave_request::Action;
    let action = match Action::try_from(l.action).unwrap_or(Action::Disconnect) {
        Action::Resume => LeaveAction::Resume,
        Action::Reconnect => LeaveAction::Reconnect,
        Action::Disconnect if l.reason == proto::DisconnectReason::ServerShutdown as i32 => {
            LeaveAction::Reconnect
        }
        Action::Disconnect => LeaveAction::Disconnect,
    };
    let reason = proto::DisconnectReason::try_from(l.reason)
        .map(|r| r.as_str_name().to_owned())
        .unwrap_or_else(|_| l.reason.to_string());
    (reason, action)
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
    fn server_shutdown_leave_reconnects_and_removal_disconnects() {
        use proto::leave_request::Action;
        let leave = |action: Action, reason: proto::DisconnectReason| {
            leave_disposition(&proto::LeaveRequest {
                action: action as i32,
                reason: reason as i32,
                ..Default::default()
            })
        };
        assert_eq!(
            leave(Action::Disconnect, proto::DisconnectReason::ServerShutdown),
            ("SERVER_SHUTDOWN".into(), LeaveAction::Reconnect)
        );
        assert_eq!(
            leave(
                Action::Disconnect,
                proto::DisconnectReason::ParticipantRemoved
            ),
            ("PARTICIPANT_REMOVED".into(), LeaveAction::Disconnect)
        );
        assert_eq!(
            leave(Action::Resume, proto::DisconnectReason::ServerShutdown).1,
            LeaveAction::Resume
        );
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
