//! The session's event stream and its drop policy: what waits for a slow reader and what is
//! dropped (and counted).

use super::*;

/// How many must-deliver events the supervisor holds for a slow reader before it stops reading
/// the engine (which then applies its own drop policy).
pub(super) const BACKLOG_MAX: usize = 1024;

/// What the session reports, in one bounded stream.
///
/// Drop policy: the engine's droppable events ([`EngineEvent::is_droppable`]: `ActiveSpeakers`
/// and `ConnectionQuality` updates, each superseding the last, and lossy data) are dropped when the stream is full and counted in [`SessionStats::dropped_events`].
/// Every other event is kept: up to 1 024 of them wait in the supervisor for the reader; past
/// that the supervisor stops reading the engine, which then holds its own must-deliver events
/// (roster changes, subscriptions) and drops only its droppable ones (see [`EngineEvent`];
/// counted in [`SessionStats::engine_dropped_events`]). State changes are also always readable
/// from [`Session::watch_state`]. For a roster that is never stale, use [`crate::Room`].
///
/// After a rejoin the new engine reports the room afresh (participants joined, tracks
/// published), so those events can repeat.
#[derive(Debug)]
#[non_exhaustive]
pub enum SessionEvent {
    /// The session state changed.
    State(SessionState),
    /// A new remote track: read it from the handle (it continues across rejoins).
    TrackSubscribed(SubscribedTrack),
    /// After a rejoin, a track the app already holds a handle for is flowing again.
    TrackResubscribed {
        /// Which track.
        key: TrackKey,
        /// Its new sid.
        track_sid: String,
    },
    /// A subscribed track's end-to-end decryption changed state (reported by its handle as
    /// frames are read; dropped, not held, when the stream is full).
    E2eeStateChanged {
        /// Which track.
        key: TrackKey,
        /// Its sid.
        track_sid: String,
        /// The new state.
        state: E2eeState,
    },
    /// An engine event passed through unchanged (never `TrackSubscribed` or `Disconnected`:
    /// those become [`SessionEvent::TrackSubscribed`] and [`SessionEvent::State`]).
    Engine(EngineEvent),
}

/// The receiving end of a session's events.
pub type SessionEvents = mpsc::Receiver<SessionEvent>;

impl Supervisor {
    pub(super) fn set_state(&mut self, state: SessionState) {
        self.shared.set_state(state.clone());
        self.push(SessionEvent::State(state));
    }

    /// Queue a must-deliver event, or try-send a droppable one.
    pub(super) fn push(&mut self, ev: SessionEvent) {
        // One drop policy for both layers: the engine's own.
        let droppable = matches!(&ev, SessionEvent::Engine(e) if e.is_droppable());
        if droppable {
            if !self.backlog.is_empty() || self.out.try_send(ev).is_err() {
                self.shared.dropped_events.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        if self.backlog.is_empty() {
            match self.out.try_send(ev) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(ev)) => self.backlog.push_back(ev),
                Err(mpsc::error::TrySendError::Closed(_)) => {} // nobody listens
            }
        } else {
            self.backlog.push_back(ev);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::supervisor::test_supervisor as supervisor;
    use super::*;

    /// Periodic updates are dropped (and counted) when the reader is behind; everything else
    /// waits in the backlog, in order, behind which droppable updates are dropped too.
    #[test]
    fn drop_policy_keeps_must_deliver_events_in_order() {
        let (mut sup, mut rx) = supervisor(2);
        sup.push(SessionEvent::Engine(EngineEvent::ActiveSpeakers(vec![])));
        sup.set_state(SessionState::Connected);
        // Full now: a speaker update is dropped, state changes queue up.
        sup.push(SessionEvent::Engine(EngineEvent::ActiveSpeakers(vec![])));
        sup.set_state(SessionState::Reconnecting { attempt: 1 });
        sup.set_state(SessionState::Reconnecting { attempt: 2 });
        sup.push(SessionEvent::Engine(EngineEvent::ConnectionQuality(vec![])));
        assert_eq!(sup.backlog.len(), 2);
        assert_eq!(sup.shared.dropped_events.load(Ordering::Relaxed), 2);
        assert!(matches!(
            rx.try_recv(),
            Ok(SessionEvent::Engine(EngineEvent::ActiveSpeakers(_)))
        ));
        assert!(matches!(
            rx.try_recv(),
            Ok(SessionEvent::State(SessionState::Connected))
        ));
        // The backlog drains in order once the reader made room.
        while let Some(ev) = sup.backlog.pop_front() {
            sup.out.try_send(ev).expect("room");
        }
        assert!(matches!(
            rx.try_recv(),
            Ok(SessionEvent::State(SessionState::Reconnecting {
                attempt: 1
            }))
        ));
        assert!(matches!(
            rx.try_recv(),
            Ok(SessionEvent::State(SessionState::Reconnecting {
                attempt: 2
            }))
        ));
        assert_eq!(
            *sup.shared.state.borrow(),
            SessionState::Reconnecting { attempt: 2 }
        );
    }
}
