//! The background work of a service instance: webhook follow-ups retried until done, and the
//! retention of stored webhook events.
//!
//! A follow-up (close the room of an ended stream that someone rejoined) is queued in the
//! transaction that stores its event, tried once at once by the webhook handler, and then by
//! [`worker`] until LiveKit answers — with a backoff of 1, 2, 4 … 30 s. Several instances on one
//! database may both try one; closing a room is idempotent.

use std::sync::Arc;
use std::time::Duration;

use crate::api::{AppState, now};
use crate::store::DueFollowup;

/// How often the worker looks for due follow-ups.
const TICK: Duration = Duration::from_millis(500);
/// Longest wait between two attempts of one follow-up.
const MAX_BACKOFF_SECS: i64 = 30;
/// How long the webhook handler's own first attempt has before the worker may try too.
pub(crate) const FIRST_ATTEMPT_SECS: i64 = 10;

/// Seconds before the attempt after `attempts` failed ones.
fn backoff(attempts: i64) -> i64 {
    1i64.checked_shl(u32::try_from(attempts.clamp(0, 5)).unwrap_or(5))
        .unwrap_or(MAX_BACKOFF_SECS)
        .min(MAX_BACKOFF_SECS)
}

/// Remove every participant the grant `grant_id` admitted (the participant attribute
/// [`crate::api::GRANT_ATTRIBUTE`] its tokens carry) from the rooms it covers. Returns
/// `room/identity` of each removed.
async fn evict(state: &AppState, grant_id: &str) -> Result<Vec<String>, String> {
    let Some(grant) = state
        .store
        .grant(grant_id)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(Vec::new());
    };
    let rooms = state
        .rooms
        .list_rooms(&[])
        .await
        .map_err(|e| format!("the LiveKit server did not list rooms: {e}"))?;
    let mut removed = Vec::new();
    for room in rooms.into_iter().filter(|r| grant.covers(&r.name)) {
        let participants = state
            .rooms
            .list_participants(&room.name)
            .await
            .map_err(|e| format!("the LiveKit server did not list participants: {e}"))?;
        for p in participants {
            if p.attributes
                .get(crate::api::GRANT_ATTRIBUTE)
                .map(String::as_str)
                == Some(grant_id)
            {
                state
                    .rooms
                    .remove_participant(&room.name, &p.identity)
                    .await
                    .map_err(|e| format!("the LiveKit server did not remove a participant: {e}"))?;
                removed.push(format!("{}/{}", room.name, p.identity));
            }
        }
    }
    Ok(removed)
}

/// Try one follow-up and record the outcome; `Some` with what was done when it succeeded.
pub(crate) async fn attempt(state: &AppState, f: &DueFollowup) -> Option<Vec<String>> {
    let result = match f.action.as_str() {
        "close_room" => crate::streams::close_room(state, &f.room)
            .await
            .inspect(|removed| {
                tracing::info!(room = %f.room, removed = removed.len(), "follow-up: closed the room of an ended stream");
            })
            .map_err(|e| e.message),
        "evict_grant" => evict(state, &f.room).await.inspect(|removed| {
            tracing::info!(grant = %f.room, removed = ?removed, "follow-up: evicted whom a revoked grant admitted");
        }),
        other => Err(format!("unknown follow-up action {other:?}")),
    };
    let t = now();
    let outcome = match &result {
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::warn!(event = %f.event_id, room = %f.room, attempts = f.attempts + 1, error = %e, "follow-up failed; will retry");
            Err((e.as_str(), t + backoff(f.attempts + 1)))
        }
    };
    if let Err(e) = state
        .store
        .followup_attempted(&f.event_id, t, outcome)
        .await
    {
        tracing::warn!(error = %e, "cannot record a follow-up attempt");
    }
    result.ok()
}

/// How often stored events are pruned for a retention of `retention`.
fn prune_every(retention: Duration) -> Duration {
    (retention / 4).clamp(Duration::from_millis(100), Duration::from_secs(600))
}

/// Retry due follow-ups and prune old events until `stop` turns true.
pub(crate) async fn worker(state: Arc<AppState>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let retention = state.settings.event_retention;
    let every = prune_every(retention);
    let mut last_prune: Option<tokio::time::Instant> = None;
    loop {
        if last_prune.is_none_or(|t| t.elapsed() >= every) {
            last_prune = Some(tokio::time::Instant::now());
            let cutoff = now() - i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
            match state.store.prune_events(cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "pruned stored webhook events"),
                Err(e) => tracing::warn!(error = %e, "cannot prune stored webhook events"),
            }
        }
        match state.store.due_followups(now(), 20).await {
            Ok(due) => {
                for f in &due {
                    if *stop.borrow() {
                        return;
                    }
                    attempt(&state, f).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read follow-ups"),
        }
        tokio::select! {
            () = tokio::time::sleep(TICK) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let seq: Vec<i64> = (0..8).map(backoff).collect();
        assert_eq!(seq, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn retention_is_checked_often_enough_but_not_too_often() {
        assert_eq!(
            prune_every(Duration::from_secs(2)),
            Duration::from_millis(500)
        );
        assert_eq!(
            prune_every(Duration::from_secs(7 * 86400)),
            Duration::from_secs(600)
        );
        assert_eq!(prune_every(Duration::ZERO), Duration::from_millis(100));
    }
}
