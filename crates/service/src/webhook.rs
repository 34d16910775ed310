//! `POST /v1/livekit/webhook`: LiveKit's signed events, verified, stored once, applied.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use livekit_protocol::WebhookEvent;

use crate::api::{ApiError, AppState, Shared, now};
use crate::store::{RoomChange, StoredEvent};

fn change_of(e: &WebhookEvent) -> RoomChange {
    let identity = || {
        e.participant
            .as_ref()
            .map(|p| p.identity.clone())
            .unwrap_or_default()
    };
    match e.event.as_str() {
        "room_started" => RoomChange::Started,
        "room_finished" => RoomChange::Finished,
        "participant_joined" => RoomChange::Joined {
            identity: identity(),
            sid: e
                .participant
                .as_ref()
                .map(|p| p.sid.clone())
                .unwrap_or_default(),
        },
        "participant_left" | "participant_connection_aborted" => RoomChange::Left {
            identity: identity(),
        },
        "track_published" => RoomChange::Published {
            track: e.track.as_ref().map(|t| t.sid.clone()).unwrap_or_default(),
            identity: identity(),
        },
        "track_unpublished" => RoomChange::Unpublished {
            track: e.track.as_ref().map(|t| t.sid.clone()).unwrap_or_default(),
        },
        _ => RoomChange::None,
    }
}

fn refused(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "bad_webhook", message)
}

/// The webhook's `Authorization` token (with or without `Bearer `).
fn signing_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| refused("the webhook has no Authorization token"))
}

/// Before the body is read: the webhook carries a token LiveKit signed with the service's API
/// key (its body's sha256 is checked against it by [`receive`]).
pub(crate) fn check_signature(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let token = signing_token(headers)?;
    state.webhook_tokens.verify(token).map_err(|e| {
        tracing::warn!(error = %e, "webhook refused");
        refused(format!("the webhook signature is not valid: {e}"))
    })?;
    Ok(())
}

pub(crate) async fn receive(
    State(state): Shared,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body = body.map_err(|r| ApiError::new(r.status(), "bad_body", r.body_text()))?;
    let body = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("bad_body", "the webhook body is not UTF-8"))?;
    let auth = signing_token(&headers)?;
    let event = state.webhooks.receive(body, auth).map_err(|e| {
        use livekit_api::webhooks::WebhookError as W;
        tracing::warn!(error = %e, "webhook refused");
        match e {
            W::InvalidData(e) => ApiError::bad_request(
                "bad_webhook",
                format!("the webhook body is not an event: {e}"),
            ),
            W::InvalidSignature => refused("the body does not match the signed sha256"),
            other => refused(format!("the webhook signature is not valid: {other}")),
        }
    })?;
    let t = now();
    let max_age = i64::try_from(state.settings.webhook_max_age.as_secs()).unwrap_or(i64::MAX);
    if event.created_at < t - max_age || event.created_at > t + max_age {
        tracing::warn!(id = %event.id, created_at = event.created_at, "stale webhook refused");
        return Err(refused(format!(
            "the event was created at {} (unix seconds), outside the accepted {max_age} s window: \
             a replay or a badly skewed clock",
            event.created_at
        )));
    }
    if event.id.is_empty() || event.id.len() > 128 {
        return Err(ApiError::bad_request(
            "bad_webhook",
            "the event has no usable id",
        ));
    }
    let change = change_of(&event);
    let stored = StoredEvent {
        id: event.id.clone(),
        event: event.event.clone(),
        room: event
            .room
            .as_ref()
            .map(|r| r.name.clone())
            .unwrap_or_default(),
        participant: event
            .participant
            .as_ref()
            .map(|p| p.identity.clone())
            .unwrap_or_default(),
        created_at: event.created_at,
        received_at: t,
        followup: None,
    };
    let recorded = state
        .store
        .record_event(
            &stored,
            body,
            &change,
            t + crate::followup::FIRST_ATTEMPT_SECS,
        )
        .await?;
    if recorded.fresh {
        state.metrics.webhook(&stored.event);
    }
    tracing::debug!(id = %stored.id, event = %stored.event, room = %stored.room, fresh = recorded.fresh, "webhook");
    // A participant joining the room of an ended stream (an old token): close the room again.
    // The follow-up is stored with the event; this is its first attempt, and the worker retries
    // it while LiveKit does not answer (the webhook is answered 200 either way: it is stored).
    if recorded.followup {
        tracing::info!(room = %stored.room, "closing the room of an ended stream");
        let due = crate::store::DueFollowup {
            event_id: stored.id.clone(),
            action: "close_room".into(),
            room: stored.room.clone(),
            attempts: 0,
        };
        let _ = crate::followup::attempt(&state, &due).await;
    }
    // Someone joining with a token of a grant that no longer applies (revoked, expired: the
    // token itself, or the one the server refreshed, outlives it): evict whom it admitted.
    if recorded.fresh
        && matches!(change, RoomChange::Joined { .. })
        && let Some(grant_id) = event
            .participant
            .as_ref()
            .and_then(|p| p.attributes.get(crate::api::GRANT_ATTRIBUTE))
        && let Some(grant) = state.store.grant(grant_id).await?
        && grant.refusal_at(t).is_some()
    {
        tracing::info!(room = %stored.room, grant = %grant.id, "a participant of a lapsed grant joined");
        let queued = state
            .store
            .queue_followup(
                &stored.id,
                "evict_grant",
                &grant.id,
                t,
                t + crate::followup::FIRST_ATTEMPT_SECS,
            )
            .await?;
        if queued {
            let due = crate::store::DueFollowup {
                event_id: stored.id.clone(),
                action: "evict_grant".into(),
                room: grant.id.clone(),
                attempts: 0,
            };
            let _ = crate::followup::attempt(&state, &due).await;
        }
    }
    Ok(Json(serde_json::json!({"stored": recorded.fresh})))
}
