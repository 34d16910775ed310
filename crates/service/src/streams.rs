//! Stream lifecycle: create, go live (room + broadcaster token), state from webhooks, end.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::api::{ApiError, JsonBody, Minted, Shared, mint, new_id, now};
use crate::auth::Principal;
use crate::guard::{Authed, User};
use crate::policy::Role;
use crate::store::{Owned, Recording, Stream, StreamStatus};

/// Seconds LiveKit keeps a live stream's room open while it is empty.
const EMPTY_TIMEOUT: u32 = 600;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewStream {
    name: String,
    #[serde(default)]
    metadata: String,
    #[serde(default)]
    max_participants: u32,
}

pub(crate) async fn load(state: &crate::api::AppState, id: &str) -> Result<Stream, ApiError> {
    // Ids are hex: anything else names no stream (and never reaches the database, where
    // PostgreSQL refuses some bytes, NUL among them, with an error).
    if id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApiError::not_found("stream"));
    }
    state
        .store
        .stream(id)
        .await?
        .ok_or_else(|| ApiError::not_found("stream"))
}

/// 403 `quota_exceeded` when `owner` already holds as many `what` as a caller may (checked
/// before acting: concurrent requests may overshoot by the few in flight).
pub(crate) async fn cap(
    state: &crate::api::AppState,
    owner: &str,
    what: Owned,
) -> Result<(), ApiError> {
    let caps = &state.settings.caps;
    let (limit, name) = match what {
        Owned::Streams => (caps.streams, "streams not ended"),
        Owned::LiveStreams => (caps.live_streams, "live streams"),
        Owned::Recordings => (caps.recordings, "running recordings"),
    };
    let held = state.store.owned(owner, what).await?;
    if held >= i64::from(limit) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "quota_exceeded",
            format!(
                "the stream's owner already has {held} {name}: at most {limit}; end or stop one first"
            ),
        ));
    }
    Ok(())
}

/// How a principal may see a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// The user who made it.
    Owner,
    /// The admin key.
    AdminKey,
    /// A user with a grant (valid now) for its room: may read it, not change it.
    Granted,
}

/// How `who` may see `stream`, or 404 — to anyone else the stream does not exist (its id is
/// its room's name minus a prefix, so every viewer knows ids; answering 403 would confirm them).
pub(crate) async fn access(
    state: &crate::api::AppState,
    who: &Principal,
    stream: &Stream,
) -> Result<Access, ApiError> {
    let caller = match who {
        Principal::AdminKey => return Ok(Access::AdminKey),
        Principal::User(c) if c.user == stream.owner => return Ok(Access::Owner),
        Principal::User(c) => c,
    };
    let grants = state.store.grants_for(&caller.user, &caller.groups).await?;
    match crate::policy::decide(&grants, &stream.room, None, now()) {
        Ok(_) => Ok(Access::Granted),
        Err(_) => Err(ApiError::not_found("stream")),
    }
}

/// The stream `id` as `who` may see it (404 when it does not exist or `who` may not see it).
pub(crate) async fn load_for(
    state: &crate::api::AppState,
    who: &Principal,
    id: &str,
) -> Result<(Stream, Access), ApiError> {
    let stream = load(state, id).await?;
    let access = access(state, who, &stream).await?;
    Ok((stream, access))
}

/// 403 `not_owner` unless `access` is one of `allowed`.
pub(crate) fn require(access: Access, allowed: &[Access]) -> Result<(), ApiError> {
    if allowed.contains(&access) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_owner",
            "only the stream's owner may do this",
        ))
    }
}

fn livekit_down(what: &str, e: impl std::fmt::Display) -> ApiError {
    tracing::warn!(error = %e, "{what} failed");
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "livekit_unavailable",
        format!("the LiveKit server did not {what}"),
    )
}

pub(crate) async fn create(
    State(state): Shared,
    User(caller): User,
    JsonBody(req): JsonBody<NewStream>,
) -> Result<(StatusCode, Json<Stream>), ApiError> {
    if req.name.trim().is_empty() || req.name.len() > 100 || req.name.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(
            "invalid_name",
            "name must be 1 to 100 bytes without control characters",
        ));
    }
    if req.metadata.len() > 4096 {
        return Err(ApiError::bad_request(
            "invalid_metadata",
            "metadata must be at most 4096 bytes",
        ));
    }
    if req.max_participants > 10_000 {
        return Err(ApiError::bad_request(
            "invalid_max_participants",
            "max_participants must be between 0 (no limit) and 10000",
        ));
    }
    let id = new_id("");
    let stream = Stream {
        room: format!("stream-{id}"),
        id,
        owner: caller.user,
        name: req.name,
        metadata: req.metadata,
        max_participants: req.max_participants,
        status: StreamStatus::Created,
        created_at: now(),
        live_at: None,
        ended_at: None,
    };
    cap(&state, &stream.owner, Owned::Streams).await?;
    state.store.insert_stream(&stream).await?;
    Ok((StatusCode::CREATED, Json(stream)))
}

#[derive(Serialize)]
pub(crate) struct LiveResponse {
    stream: Stream,
    #[serde(flatten)]
    broadcaster: Minted,
}

pub(crate) async fn go_live(
    State(state): Shared,
    User(caller): User,
    Path(id): Path<String>,
) -> Result<Json<LiveResponse>, ApiError> {
    let (stream, access) = load_for(&state, &Principal::User(caller.clone()), &id).await?;
    require(access, &[Access::Owner])?;
    if stream.status == StreamStatus::Created {
        cap(&state, &stream.owner, Owned::LiveStreams).await?;
    }
    if stream.status == StreamStatus::Ended {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "stream_ended",
            "the stream has ended; make a new one",
        ));
    }
    state
        .rooms
        .create_room(
            &stream.room,
            wavecast_server_api::NewRoom {
                empty_timeout: EMPTY_TIMEOUT,
                max_participants: stream.max_participants,
                metadata: stream.metadata.clone(),
            },
        )
        .await
        .map_err(|e| livekit_down("create the room", e))?;
    state.store.stream_went_live(&stream.id, now()).await?;
    let broadcaster = mint(
        &state,
        &caller,
        &stream.room,
        Role::Broadcaster,
        None,
        state.settings.max_token_ttl,
        None,
    )?;
    let stream = load(&state, &id).await?;
    tracing::info!(stream = %stream.id, room = %stream.room, "stream live");
    Ok(Json(LiveResponse {
        stream,
        broadcaster,
    }))
}

#[derive(Serialize)]
pub(crate) struct EndResponse {
    stream: Stream,
    removed: Vec<String>,
}

pub(crate) async fn end(
    State(state): Shared,
    User(caller): User,
    Path(id): Path<String>,
) -> Result<Json<EndResponse>, ApiError> {
    let (stream, access) = load_for(&state, &Principal::User(caller), &id).await?;
    require(access, &[Access::Owner])?;
    // Ended first: from here on no token is issued for the room, whatever happens below.
    state.store.end_stream(&stream.id, now()).await?;
    // Its recording is finalized before the room (and the recorder in it) goes away.
    crate::recording::stream_ends(&state, &stream).await?;
    let removed = close_room(&state, &stream.room).await?;
    tracing::info!(stream = %stream.id, removed = removed.len(), "stream ended");
    Ok(Json(EndResponse {
        stream: load(&state, &id).await?,
        removed,
    }))
}

/// Disconnect everyone in `room` and delete it. Returns the identities removed.
pub(crate) async fn close_room(
    state: &crate::api::AppState,
    room: &str,
) -> Result<Vec<String>, ApiError> {
    let exists = !state
        .rooms
        .list_rooms(&[room.to_owned()])
        .await
        .map_err(|e| livekit_down("list rooms", e))?
        .is_empty();
    if !exists {
        return Ok(Vec::new());
    }
    let mut removed = Vec::new();
    let participants = state
        .rooms
        .list_participants(room)
        .await
        .map_err(|e| livekit_down("list participants", e))?;
    for p in participants {
        match state.rooms.remove_participant(room, &p.identity).await {
            Ok(()) => removed.push(p.identity),
            Err(e) => tracing::warn!(room, identity = %p.identity, error = %e, "remove failed"),
        }
    }
    state
        .rooms
        .delete_room(room)
        .await
        .map_err(|e| livekit_down("delete the room", e))?;
    Ok(removed)
}

#[derive(Serialize)]
pub(crate) struct StreamView {
    #[serde(flatten)]
    stream: Stream,
    live: bool,
    viewer_count: usize,
    participants: Vec<String>,
    tracks: Vec<String>,
    /// Identities the LiveKit server API lists for the room right now (`null` when the room is
    /// not open or the server could not be asked).
    server_participants: Option<Vec<String>>,
    /// The recording running now (`null` when none).
    recording: Option<Recording>,
    /// Its recordings, newest first (at most 20).
    recordings: Vec<Recording>,
}

pub(crate) async fn get(
    State(state): Shared,
    Authed(who): Authed,
    Path(id): Path<String>,
) -> Result<Json<StreamView>, ApiError> {
    let (stream, _) = load_for(&state, &who, &id).await?;
    let recordings = state.store.recordings(&stream.id, 20).await?;
    // The service's own recorders are hidden participants, not viewers.
    let recorders = state.store.recorder_identities(&stream.id).await?;
    let participants: Vec<String> = state
        .store
        .participants(&stream.room)
        .await?
        .into_iter()
        .map(|(identity, _)| identity)
        .filter(|i| !recorders.contains(i))
        .collect();
    let tracks = state
        .store
        .tracks(&stream.room)
        .await?
        .into_iter()
        .map(|(sid, _)| sid)
        .collect();
    let server_participants = if matches!(stream.status, StreamStatus::Ready | StreamStatus::Live) {
        match state.rooms.list_participants(&stream.room).await {
            Ok(ps) => Some(
                ps.into_iter()
                    .map(|p| p.identity)
                    .filter(|i| !recorders.contains(i))
                    .collect(),
            ),
            Err(e) => {
                tracing::warn!(room = %stream.room, error = %e, "list participants failed");
                None
            }
        }
    } else {
        None
    };
    let viewer_count = participants.iter().filter(|p| **p != stream.owner).count();
    Ok(Json(StreamView {
        live: stream.status == StreamStatus::Live,
        viewer_count,
        participants,
        tracks,
        server_participants,
        recording: recordings.iter().find(|r| r.ended_at.is_none()).cloned(),
        recordings,
        stream,
    }))
}
