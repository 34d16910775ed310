//! Signal messages from the server, and leaving.

use super::*;
use crate::wire::LeaveAction;

impl Core {
    pub(super) fn on_signal_input(&mut self, input: SignalIn) -> Result<(), EngineError> {
        match input {
            SignalIn::Message(msg) if self.link.is_resuming() => {
                // From the connection being replaced: nothing from it applies after the resume.
                debug!(
                    "signal message of the lost connection dropped: {}",
                    crate::wire::describe_signal(&msg)
                );
                Ok(())
            }
            SignalIn::Message(msg) => self.on_signal(*msg),
            SignalIn::Lost(why) => {
                if self.link.is_resuming() {
                    debug!("signal connection lost while resuming ({why})");
                } else {
                    let why = format!("signal lost ({why})");
                    self.start_resume(why, resume::ResumeCause::SignalLost);
                }
                Ok(())
            }
            SignalIn::Ended => {
                self.stop = Some(DisconnectReason::SignalClosed("signal client ended".into()));
                Ok(())
            }
            SignalIn::Resumed(response) => {
                self.on_resume_response(response);
                Ok(())
            }
            SignalIn::ResumeFailed(failure) => {
                self.on_resume_failed(failure);
                Ok(())
            }
        }
    }

    /// Leave the room: tell the server, close both connections and the signal connection.
    pub(super) fn leave(&mut self) {
        self.send_signal(proto::signal_request::Message::Leave(proto::LeaveRequest {
            can_reconnect: false,
            reason: proto::DisconnectReason::ClientInitiated as i32,
            action: proto::leave_request::Action::Disconnect as i32,
            regions: None,
        }));
        self.publisher.rtc.disconnect();
        self.subscriber.rtc.disconnect();
        let _ = self.publisher.drain();
        let _ = self.subscriber.drain();
        self.stop = Some(DisconnectReason::ClientInitiated);
    }

    pub(super) fn on_signal(
        &mut self,
        msg: proto::signal_response::Message,
    ) -> Result<(), EngineError> {
        use proto::signal_response::Message as M;
        match msg {
            M::Offer(desc) => self.on_subscriber_offer(desc)?,
            M::Answer(desc) => self.on_publisher_answer(desc)?,
            M::Trickle(t) => self.on_trickle(t)?,
            M::Update(u) => {
                for p in &u.participants {
                    self.on_participant(p);
                }
            }
            M::TrackPublished(r) => self.on_track_published(r)?,
            M::RequestResponse(r) => self.on_request_response(r),
            M::TrackUnpublished(r) => {
                debug!("server unpublished our track {}", r.track_sid);
            }
            M::Leave(l) => {
                let (reason, action) = crate::wire::leave_disposition(&l);
                info!("server leave: {reason} {action:?}");
                // Follow the server's action: RESUME is handled by this engine; DISCONNECT
                // and RECONNECT stop it (the owner ends, or joins afresh).
                match action {
                    LeaveAction::Resume => self.start_resume(
                        "the server asked us to resume".into(),
                        resume::ResumeCause::ServerAsked,
                    ),
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
                // The signal client resumes with it too (it reads the message on its way).
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
            M::SubscribedQualityUpdate(u) => self.on_subscribed_quality(u),
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
