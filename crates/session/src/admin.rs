//! Room administration over the server API (`RoomService`), on the official `livekit-api` client.
//!
//! Every call returns plain, serialisable summaries ([`Room`], [`Participant`], [`Track`]) so apps
//! can print tables or JSON, and every failure is an [`AdminError`] that carries the server's own
//! message.

use std::collections::HashMap;
use std::time::Duration;

use livekit_api::services::room::{
    CreateRoomOptions, RoomClient, SendDataOptions, UpdateParticipantOptions,
};
use livekit_api::services::{ServerError, ServiceError};
use livekit_protocol as proto;
use serde::Serialize;
use wavecast_token::Keys;

/// Why a room-administration call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The room, participant or track does not exist.
    #[error("{operation}: not found: {message}")]
    NotFound {
        /// The call, e.g. `delete room "demo"`.
        operation: String,
        /// The server's message.
        message: String,
    },
    /// The key/secret were refused, or the grant does not allow the call.
    #[error("{operation}: permission denied ({code}): {message}")]
    PermissionDenied {
        /// The call.
        operation: String,
        /// `unauthenticated` or `permission_denied`.
        code: String,
        /// The server's message.
        message: String,
    },
    /// Any other error the server returned.
    #[error("{operation}: server error {code}: {message}")]
    Server {
        /// The call.
        operation: String,
        /// The twirp error code.
        code: String,
        /// The server's message.
        message: String,
    },
    /// The server could not be reached or the exchange failed.
    #[error("{operation}: cannot reach LiveKit at {url}: {detail}")]
    Unreachable {
        /// The call.
        operation: String,
        /// The server URL.
        url: String,
        /// What went wrong, with the transport's causes.
        detail: String,
    },
    /// The server answered something this client did not expect.
    #[error("{operation}: unexpected answer: {detail}")]
    Protocol {
        /// The call.
        operation: String,
        /// What was wrong.
        detail: String,
    },
}

/// A room as the server reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Room {
    /// Server-assigned id.
    pub sid: String,
    /// Name.
    pub name: String,
    /// Room metadata.
    pub metadata: String,
    /// Participants now in the room.
    pub num_participants: u32,
    /// Participants now publishing.
    pub num_publishers: u32,
    /// Participant limit (0 = none).
    pub max_participants: u32,
    /// Seconds an empty room is kept.
    pub empty_timeout: u32,
    /// Creation time, unix seconds.
    pub creation_time: i64,
}

impl From<proto::Room> for Room {
    fn from(r: proto::Room) -> Self {
        Self {
            sid: r.sid,
            name: r.name,
            metadata: r.metadata,
            num_participants: r.num_participants,
            num_publishers: r.num_publishers,
            max_participants: r.max_participants,
            empty_timeout: r.empty_timeout,
            creation_time: r.creation_time,
        }
    }
}

/// A published track.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Track {
    /// Server-assigned id.
    pub sid: String,
    /// Name given by the publisher.
    pub name: String,
    /// `audio`, `video` or `data`.
    pub kind: String,
    /// `camera`, `microphone`, `screen_share`, …
    pub source: String,
    /// Whether the track is muted.
    pub muted: bool,
    /// Video width (0 for audio).
    pub width: u32,
    /// Video height (0 for audio).
    pub height: u32,
    /// Codec MIME type when known.
    pub mime_type: String,
}

impl From<proto::TrackInfo> for Track {
    fn from(t: proto::TrackInfo) -> Self {
        let kind = proto::TrackType::try_from(t.r#type)
            .map(|k| k.as_str_name().to_lowercase())
            .unwrap_or_else(|_| format!("unknown({})", t.r#type));
        let source = proto::TrackSource::try_from(t.source)
            .map(|s| s.as_str_name().to_lowercase())
            .unwrap_or_else(|_| format!("unknown({})", t.source));
        Self {
            sid: t.sid,
            name: t.name,
            kind,
            source,
            muted: t.muted,
            width: t.width,
            height: t.height,
            mime_type: t.mime_type,
        }
    }
}

/// A participant as the server reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Participant {
    /// Server-assigned id.
    pub sid: String,
    /// Identity from the token.
    pub identity: String,
    /// Display name.
    pub name: String,
    /// `joining`, `joined`, `active` or `disconnected`.
    pub state: String,
    /// Participant metadata.
    pub metadata: String,
    /// Participant attributes.
    pub attributes: HashMap<String, String>,
    /// Join time, unix seconds.
    pub joined_at: i64,
    /// Published tracks.
    pub tracks: Vec<Track>,
}

impl From<proto::ParticipantInfo> for Participant {
    fn from(p: proto::ParticipantInfo) -> Self {
        let state = proto::participant_info::State::try_from(p.state)
            .map(|s| s.as_str_name().to_lowercase())
            .unwrap_or_else(|_| format!("unknown({})", p.state));
        Self {
            sid: p.sid,
            identity: p.identity,
            name: p.name,
            state,
            metadata: p.metadata,
            attributes: p.attributes,
            joined_at: p.joined_at,
            tracks: p.tracks.into_iter().map(Track::from).collect(),
        }
    }
}

/// Options for [`RoomAdmin::create_room`].
#[derive(Debug, Clone, Default)]
pub struct NewRoom {
    /// Seconds an empty room is kept (0 = server default).
    pub empty_timeout: u32,
    /// Participant limit (0 = none).
    pub max_participants: u32,
    /// Room metadata.
    pub metadata: String,
}

/// Reliability of a data packet sent with [`RoomAdmin::send_data`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataKind {
    /// Ordered and retransmitted.
    #[default]
    Reliable,
    /// Unordered, no retransmission.
    Lossy,
}

/// Room administration against one server with one API key.
pub struct RoomAdmin {
    client: RoomClient,
    url: String,
}

impl std::fmt::Debug for RoomAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomAdmin")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl RoomAdmin {
    /// Talk to the server at `url` (`ws`, `wss`, `http` or `https`) with `keys`.
    /// Each request carries a short-lived admin token signed with the secret.
    pub fn new(url: &str, keys: &Keys, timeout: Duration) -> Self {
        let client = RoomClient::with_api_key(url, keys.key(), keys.secret())
            .with_failover(false)
            .with_request_timeout(timeout);
        Self {
            client,
            url: url.to_owned(),
        }
    }

    fn map_err(&self, operation: String, e: ServiceError) -> AdminError {
        match e {
            ServiceError::Twirp(ServerError::Twirp(code)) => match code.code.as_str() {
                "not_found" => AdminError::NotFound {
                    operation,
                    message: code.msg,
                },
                "unauthenticated" | "permission_denied" => AdminError::PermissionDenied {
                    operation,
                    code: code.code,
                    message: code.msg,
                },
                _ => AdminError::Server {
                    operation,
                    code: code.code,
                    message: code.msg,
                },
            },
            ServiceError::Twirp(ServerError::Request(e)) => {
                let mut detail = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    detail.push_str(": ");
                    detail.push_str(&s.to_string());
                    src = s.source();
                }
                AdminError::Unreachable {
                    operation,
                    url: self.url.clone(),
                    detail,
                }
            }
            other => AdminError::Protocol {
                operation,
                detail: other.to_string(),
            },
        }
    }

    /// Create a room (or return the existing one of that name).
    pub async fn create_room(&self, name: &str, opts: NewRoom) -> Result<Room, AdminError> {
        let options = CreateRoomOptions {
            empty_timeout: opts.empty_timeout,
            max_participants: opts.max_participants,
            metadata: opts.metadata,
            ..Default::default()
        };
        self.client
            .create_room(name, options)
            .await
            .map(Room::from)
            .map_err(|e| self.map_err(format!("create room {name:?}"), e))
    }

    /// List rooms (all when `names` is empty).
    pub async fn list_rooms(&self, names: &[String]) -> Result<Vec<Room>, AdminError> {
        self.client
            .list_rooms(names.to_vec())
            .await
            .map(|rooms| rooms.into_iter().map(Room::from).collect())
            .map_err(|e| self.map_err("list rooms".into(), e))
    }

    /// Delete a room, disconnecting everyone in it.
    pub async fn delete_room(&self, name: &str) -> Result<(), AdminError> {
        self.client
            .delete_room(name)
            .await
            .map_err(|e| self.map_err(format!("delete room {name:?}"), e))
    }

    /// Replace a room's metadata.
    pub async fn update_room_metadata(
        &self,
        room: &str,
        metadata: &str,
    ) -> Result<Room, AdminError> {
        self.client
            .update_room_metadata(room, metadata)
            .await
            .map(Room::from)
            .map_err(|e| self.map_err(format!("update metadata of room {room:?}"), e))
    }

    /// Participants in a room.
    pub async fn list_participants(&self, room: &str) -> Result<Vec<Participant>, AdminError> {
        self.client
            .list_participants(room)
            .await
            .map(|ps| ps.into_iter().map(Participant::from).collect())
            .map_err(|e| self.map_err(format!("list participants of room {room:?}"), e))
    }

    /// One participant.
    pub async fn get_participant(
        &self,
        room: &str,
        identity: &str,
    ) -> Result<Participant, AdminError> {
        self.client
            .get_participant(room, identity)
            .await
            .map(Participant::from)
            .map_err(|e| self.map_err(format!("get participant {identity:?} in room {room:?}"), e))
    }

    /// Disconnect a participant.
    pub async fn remove_participant(&self, room: &str, identity: &str) -> Result<(), AdminError> {
        self.client
            .remove_participant(room, identity)
            .await
            .map_err(|e| {
                self.map_err(
                    format!("remove participant {identity:?} from room {room:?}"),
                    e,
                )
            })
    }

    /// Mute or unmute a published track.
    pub async fn mute_track(
        &self,
        room: &str,
        identity: &str,
        track_sid: &str,
        muted: bool,
    ) -> Result<Track, AdminError> {
        self.client
            .mute_published_track(room, identity, track_sid, muted)
            .await
            .map(Track::from)
            .map_err(|e| {
                self.map_err(
                    format!("mute track {track_sid:?} of {identity:?} in room {room:?}"),
                    e,
                )
            })
    }

    /// Update a participant's metadata, attributes and/or name (empty name: unchanged).
    pub async fn update_participant(
        &self,
        room: &str,
        identity: &str,
        metadata: &str,
        attributes: HashMap<String, String>,
        name: &str,
    ) -> Result<Participant, AdminError> {
        let options = UpdateParticipantOptions {
            metadata: metadata.to_owned(),
            attributes,
            name: name.to_owned(),
            permission: None,
        };
        self.client
            .update_participant(room, identity, options)
            .await
            .map(Participant::from)
            .map_err(|e| {
                self.map_err(
                    format!("update participant {identity:?} in room {room:?}"),
                    e,
                )
            })
    }

    /// Send a data packet to everyone in a room (or to `identities` only).
    pub async fn send_data(
        &self,
        room: &str,
        data: Vec<u8>,
        kind: DataKind,
        topic: Option<String>,
        identities: Vec<String>,
    ) -> Result<(), AdminError> {
        let options = SendDataOptions {
            kind: match kind {
                DataKind::Reliable => proto::data_packet::Kind::Reliable,
                DataKind::Lossy => proto::data_packet::Kind::Lossy,
            },
            destination_identities: identities,
            topic,
            ..Default::default()
        };
        self.client
            .send_data(room, data, options)
            .await
            .map_err(|e| self.map_err(format!("send data to room {room:?}"), e))
    }
}
