//! The LiveKit server API (Twirp over HTTP): room administration (`RoomService`: create, list,
//! delete rooms; list, get, remove, mute and update participants; send data), on the official
//! `livekit-api` client. The admin CLI (`wavecast`) and the token service (`wavecast-service`)
//! share it; egress and ingress belong here too when they come.
//!
//! Every call returns plain, serialisable summaries ([`Room`], [`Participant`], [`Track`]) so apps
//! can print tables or JSON, and every failure is an [`AdminError`] that carries the server's own
//! message. [`cli`] (feature `cli`) offers the calls as clap subcommands.
//!
//! ```no_run
//! # async fn demo() -> Result<(), wavecast_server_api::AdminError> {
//! use std::time::Duration;
//! use wavecast_server_api::{NewRoom, RoomAdmin};
//! use wavecast_token::Keys;
//!
//! let admin = RoomAdmin::new("ws://127.0.0.1:7880", &Keys::new("devkey", "secret"), Duration::from_secs(5));
//! admin.create_room("demo", NewRoom { metadata: "hello".into(), ..Default::default() }).await?;
//! for room in admin.list_rooms(&[]).await? {
//!     println!("{} ({} participants)", room.name, room.num_participants);
//! }
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

#[cfg(feature = "cli")]
pub mod cli;

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
    /// Video layers the server has for it (simulcast: up to three; SVC: spatial layers),
    /// smallest first.
    pub layers: Vec<Layer>,
}

/// One video layer of a published track.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Layer {
    /// `low`, `medium` or `high`.
    pub quality: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Announced bitrate, bits per second.
    pub bitrate: u32,
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
            layers: {
                // Newer servers list layers per codec, older ones on the track.
                #[allow(deprecated)]
                let listed = t
                    .codecs
                    .iter()
                    .find(|c| !c.layers.is_empty())
                    .map_or(&t.layers, |c| &c.layers);
                let mut layers: Vec<(i32, Layer)> = listed
                    .iter()
                    .map(|l| {
                        let quality = proto::VideoQuality::try_from(l.quality)
                            .map(|q| q.as_str_name().to_lowercase())
                            .unwrap_or_else(|_| format!("unknown({})", l.quality));
                        (
                            l.quality,
                            Layer {
                                quality,
                                width: l.width,
                                height: l.height,
                                bitrate: l.bitrate,
                            },
                        )
                    })
                    .collect();
                layers.sort_by_key(|(q, _)| *q);
                layers.into_iter().map(|(_, l)| l).collect()
            },
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

/// The server API's base URL for a LiveKit URL: the signal URL's `ws://` / `wss://` become
/// `http://` / `https://` (the API is served on the same port); `http(s)` stays as it is.
///
/// ```
/// assert_eq!(wavecast_server_api::http_url("ws://127.0.0.1:7880"), "http://127.0.0.1:7880");
/// assert_eq!(wavecast_server_api::http_url("wss://lk.example/"), "https://lk.example/");
/// assert_eq!(wavecast_server_api::http_url("https://lk.example"), "https://lk.example");
/// ```
pub fn http_url(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("wss://") {
        format!("https://{rest}")
    } else if let Some(rest) = url.strip_prefix("ws://") {
        format!("http://{rest}")
    } else {
        url.to_owned()
    }
}

/// An HTTP client on rustls with the ring provider (the one livekit-api's own client uses, so
/// the process never holds two providers without a default).
fn http_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = reqwest::Client::builder().timeout(timeout);
    let builder = match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(b) => {
            builder.tls_backend_preconfigured(b.with_root_certificates(roots).with_no_client_auth())
        }
        Err(_) => builder,
    };
    builder.build()
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
    /// `url` with its scheme for HTTP (the server API is HTTP on the signal port).
    http: String,
    keys: Keys,
    timeout: Duration,
}

impl std::fmt::Debug for RoomAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomAdmin")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl RoomAdmin {
    /// Talk to the server at `url` (`ws`, `wss`, `http` or `https`: see [`http_url`]) with
    /// `keys`. Each request carries a short-lived admin token signed with the secret.
    pub fn new(url: &str, keys: &Keys, timeout: Duration) -> Self {
        let http = http_url(url);
        let client = RoomClient::with_api_key(&http, keys.key(), keys.secret())
            .with_failover(false)
            .with_request_timeout(timeout);
        Self {
            client,
            url: url.to_owned(),
            http,
            keys: keys.clone(),
            timeout,
        }
    }

    /// The server URL as given to [`RoomAdmin::new`].
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `livekit-api` drops the HTTP status of a non-twirp answer (the server's 401 for a bad key
    /// or secret is plain text). Ask once more, directly, to report the server's own words.
    async fn explain_rejection(&self, operation: String, detail: String) -> AdminError {
        let endpoint = format!(
            "{}/twirp/livekit.RoomService/ListRooms",
            self.http.trim_end_matches('/')
        );
        let token = wavecast_token::TokenBuilder::new("")
            .preset(wavecast_token::Preset::Admin)
            .ttl(Duration::from_secs(60))
            .mint(&self.keys);
        let (Ok(token), Ok(client)) = (token, http_client(self.timeout)) else {
            return AdminError::Protocol { operation, detail };
        };
        let answer = client
            .post(&endpoint)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await;
        match answer {
            Ok(r) if matches!(r.status().as_u16(), 401 | 403) => {
                let code = r.status().to_string();
                let body = r.text().await.unwrap_or_default();
                // The server echoes the token; keep only its reason.
                let message = body
                    .rsplit("error: ")
                    .next()
                    .unwrap_or(&body)
                    .trim()
                    .to_owned();
                AdminError::PermissionDenied {
                    operation,
                    code,
                    message,
                }
            }
            _ => AdminError::Protocol { operation, detail },
        }
    }

    /// Map a client result to ours, naming the operation.
    async fn checked<T>(
        &self,
        operation: impl FnOnce() -> String,
        result: Result<T, ServiceError>,
    ) -> Result<T, AdminError> {
        match result {
            Ok(v) => Ok(v),
            Err(ServiceError::Twirp(ServerError::Request(e))) if e.is_decode() => {
                Err(self.explain_rejection(operation(), e.to_string()).await)
            }
            Err(e) => Err(self.map_err(operation(), e)),
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
        self.checked(
            || format!("create room {name:?}"),
            self.client.create_room(name, options).await,
        )
        .await
        .map(Room::from)
    }

    /// List rooms (all when `names` is empty).
    pub async fn list_rooms(&self, names: &[String]) -> Result<Vec<Room>, AdminError> {
        self.checked(
            || "list rooms".into(),
            self.client.list_rooms(names.to_vec()).await,
        )
        .await
        .map(|rooms| rooms.into_iter().map(Room::from).collect())
    }

    /// Delete a room, disconnecting everyone in it.
    pub async fn delete_room(&self, name: &str) -> Result<(), AdminError> {
        self.checked(
            || format!("delete room {name:?}"),
            self.client.delete_room(name).await,
        )
        .await
    }

    /// Replace a room's metadata.
    pub async fn update_room_metadata(
        &self,
        room: &str,
        metadata: &str,
    ) -> Result<Room, AdminError> {
        self.checked(
            || format!("update metadata of room {room:?}"),
            self.client.update_room_metadata(room, metadata).await,
        )
        .await
        .map(Room::from)
    }

    /// Participants in a room.
    pub async fn list_participants(&self, room: &str) -> Result<Vec<Participant>, AdminError> {
        self.checked(
            || format!("list participants of room {room:?}"),
            self.client.list_participants(room).await,
        )
        .await
        .map(|ps| ps.into_iter().map(Participant::from).collect())
    }

    /// One participant.
    pub async fn get_participant(
        &self,
        room: &str,
        identity: &str,
    ) -> Result<Participant, AdminError> {
        self.checked(
            || format!("get participant {identity:?} in room {room:?}"),
            self.client.get_participant(room, identity).await,
        )
        .await
        .map(Participant::from)
    }

    /// Disconnect a participant.
    pub async fn remove_participant(&self, room: &str, identity: &str) -> Result<(), AdminError> {
        let op = || format!("remove participant {identity:?} from room {room:?}");
        self.checked(op, self.client.remove_participant(room, identity).await)
            .await
    }

    /// Mute or unmute a published track.
    pub async fn mute_track(
        &self,
        room: &str,
        identity: &str,
        track_sid: &str,
        muted: bool,
    ) -> Result<Track, AdminError> {
        let op = || format!("mute track {track_sid:?} of {identity:?} in room {room:?}");
        let result = self
            .client
            .mute_published_track(room, identity, track_sid, muted)
            .await;
        self.checked(op, result).await.map(Track::from)
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
        let op = || format!("update participant {identity:?} in room {room:?}");
        let result = self
            .client
            .update_participant(room, identity, options)
            .await;
        self.checked(op, result).await.map(Participant::from)
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
        self.checked(
            || format!("send data to room {room:?}"),
            self.client.send_data(room, data, options).await,
        )
        .await
    }
}
