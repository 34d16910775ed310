//! Signal messages from the server, and leaving.

use super::*;
use crate::wire::LeaveAction;

impl Core {
    pub(super) async fn send_signal(&self, msg: proto::signal_request::Message) {
        self.signal.send(msg).await;
    }

    pub(super) async fn leave(&mut self) {
        self.send_signal(proto::signal_request::Message::Leave(proto::LeaveRequest {
            can_reconnect: false,
            reason: proto::DisconnectReason::ClientInitiated as i32,
            action: proto::leave_request::Action::Disconnect as i32,
            regions: None,
        }))
        .await;
        self.publisher.rtc.disconnect();
        self.subscriber.rtc.disconnect();
        let _ = self.publisher.drain();
        let _ = self.subscriber.drain();
        self.signal.close().await;
    }

    pub(super) async fn on_signal(
        &mut self,
        msg: proto::signal_response::Message,
    ) -> Result<(), EngineError> {
        use proto::signal_response::Message as M;
        match msg {
            M::Offer(desc) => self.on_subscriber_offer(desc).await?,
            M::Answer(desc) => self.on_publisher_answer(desc).await?,
            M::Trickle(t) => self.on_trickle(t)?,
            M::Update(u) => {
                for p in &u.participants {
                    self.on_participant(p);
                }
            }
            M::TrackPublished(r) => self.on_track_published(r).await?,
            M::TrackUnpublished(r) => {
                debug!("server unpublished our track {}", r.track_sid);
            }
            M::Leave(l) => {
                let (reason, action) = crate::wire::leave_disposition(&l);
                info!("server leave: {reason} {action:?}");
                // Follow the server's action: RESUME is handled by this engine; DISCONNECT
                // and RECONNECT stop it (the owner ends, or joins afresh).
                match action {
                    LeaveAction::Resume => self.resume_requested = true,
                    LeaveAction::Disconnect | LeaveAction::Reconnect => {
                        self.stop = Some(DisconnectReason::ServerLeave {
                            reason,
                            reconnect: action == LeaveAction::Reconnect,
                        });
                    }
                }
            }
            M::RefreshToken(token) => {
                debug!("server refreshed our token");
                *self
                    .counters
                    .refreshed_token
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(token);
            }
            M::Mute(m) => {
                // The server muted one of our tracks.
                if let Some(t) = self.local_tracks.values_mut().find(|t| t.sid == m.sid) {
                    t.muted = m.muted;
                }
                self.emit(EngineEvent::TrackMuted {
                    participant_sid: self.local.sid.clone(),
                    track_sid: m.sid,
                    muted: m.muted,
                });
            }
            M::SpeakersChanged(s) => {
                self.emit(EngineEvent::ActiveSpeakers(crate::wire::active_speakers(
                    s.speakers,
                )));
            }
            M::RoomUpdate(u) => {
                if let Some(room) = u.room {
                    self.emit(EngineEvent::RoomMetadataChanged {
                        metadata: room.metadata,
                    });
                }
            }
            M::SubscriptionResponse(r) if r.err != 0 => {
                let reason = proto::SubscriptionError::try_from(r.err).map_or_else(
                    |_| format!("error {}", r.err),
                    |e| e.as_str_name().to_owned(),
                );
                warn!(
                    "the server could not subscribe us to {}: {reason}",
                    r.track_sid
                );
                self.emit(EngineEvent::TrackSubscriptionFailed {
                    track_sid: r.track_sid,
                    reason,
                });
            }
            M::ConnectionQuality(q) => {
                let list = q
                    .updates
                    .into_iter()
                    .map(|u| (u.participant_sid, crate::wire::quality(u.quality)))
                    .collect();
                self.emit(EngineEvent::ConnectionQuality(list));
            }
            other => trace!(
                "signal message ignored: {}",
                crate::wire::describe_signal(&other)
            ),
        }
        Ok(())
    }
}
