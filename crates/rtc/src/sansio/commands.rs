//! Commands from the engine handle: publish, unpublish, mute, data, keyframe requests.

use super::*;

impl Core {
    #[allow(deprecated)] // disable_dtx: still honoured by v1.13 servers.
    pub(super) fn on_command(&mut self, c: Command) -> Result<(), EngineError> {
        match c {
            Command::Publish { options, reply } => {
                self.next_cid += 1;
                let cid: Arc<str> =
                    format!("TR_wc{:08x}{}", self.random_u32(), self.next_cid).into();
                let track_type = match options.kind {
                    TrackKind::Audio => proto::TrackType::Audio,
                    TrackKind::Video => proto::TrackType::Video,
                };
                let req = proto::AddTrackRequest {
                    cid: cid.to_string(),
                    name: options.name.clone(),
                    r#type: track_type as i32,
                    width: options.width,
                    height: options.height,
                    muted: options.muted,
                    source: options.source.to_proto() as i32,
                    // Audio goes out wrapped in RED when the server negotiates it; not when it is
                    // end-to-end encrypted (livekit-client turns RED off for E2EE too).
                    disable_red: options.encrypted,
                    disable_dtx: true,
                    encryption: if options.encrypted {
                        proto::encryption::Type::Gcm as i32
                    } else {
                        proto::encryption::Type::None as i32
                    },
                    ..Default::default()
                };
                self.pending_publish.insert(
                    cid.clone(),
                    PendingPublish {
                        options,
                        cid,
                        reply,
                        deadline: self.now + self.options.publish_timeout,
                    },
                );
                self.send_signal(proto::signal_request::Message::AddTrack(req));
            }
            Command::Unpublish { sid, reply } => {
                let cid = self
                    .local_tracks
                    .values()
                    .find(|t| t.sid == sid)
                    .map(|t| t.cid.clone());
                let Some(cid) = cid else {
                    reply(Err(EngineError::UnknownTrack(sid)));
                    return Ok(());
                };
                if let Some(t) = self.local_tracks.remove(&cid)
                    && let Some(mid) = t.mid
                {
                    self.negotiation.changes.push(PubChange::Stop(mid));
                }
                let r = self.negotiate_publisher();
                reply(r);
            }
            Command::Mute { sid, muted, reply } => {
                let Some(t) = self.local_tracks.values_mut().find(|t| t.sid == sid) else {
                    reply(Err(EngineError::UnknownTrack(sid)));
                    return Ok(());
                };
                t.muted = muted;
                if !muted {
                    t.shared.keyframe_requested.store(true, Ordering::Relaxed);
                }
                self.send_signal(proto::signal_request::Message::Mute(
                    proto::MuteTrackRequest { sid, muted },
                ));
                reply(Ok(()));
            }
            Command::Data {
                payload,
                options,
                reply,
            } if self.link.is_resuming() => {
                // Not on a path whose server may have lost us: it waits for the resume's
                // outcome (sent once resumed; answered `Closed` when the engine stops).
                self.deferred.push_back(Command::Data {
                    payload,
                    options,
                    reply,
                });
            }
            Command::Data {
                payload,
                options,
                reply,
            } => {
                let r = self.send_data(payload, options);
                reply(r);
            }
            c @ Command::Message { .. } if self.link.is_resuming() => {
                self.deferred.push_back(c);
            }
            Command::Message {
                message,
                destination_identities,
                reply,
            } => {
                let r = self.send_message(message, destination_identities);
                reply(r);
            }
            c @ Command::UpdateParticipant { .. } if self.link.is_resuming() => {
                // Sent on the resumed connection (the old one may have lost us).
                self.deferred.push_back(c);
            }
            Command::UpdateParticipant { update, reply } => {
                self.update_participant(update, reply);
            }
            Command::RequestKeyframe { track_sid } => {
                let mid = self
                    .remote
                    .iter()
                    .find(|(_, r)| r.sid == track_sid)
                    .map(|(m, _)| *m);
                if let Some(mid) = mid {
                    self.request_keyframe(mid)?;
                }
            }
            Command::Subscribe {
                participant_sid,
                track_sid,
                subscribe,
                reply,
            } => {
                self.send_signal(proto::signal_request::Message::Subscription(
                    proto::UpdateSubscription {
                        track_sids: vec![track_sid.clone()],
                        subscribe,
                        participant_tracks: vec![proto::ParticipantTracks {
                            participant_sid,
                            track_sids: vec![track_sid],
                        }],
                    },
                ));
                reply(Ok(()));
            }
            Command::TrackSettings {
                track_sid,
                enabled,
                reply,
            } => {
                self.send_signal(proto::signal_request::Message::TrackSetting(
                    proto::UpdateTrackSettings {
                        track_sids: vec![track_sid],
                        disabled: !enabled,
                        // Without width/height the server goes by `quality`, whose default
                        // (0) is LOW: re-enabling a track would pin it to its smallest layer.
                        quality: proto::VideoQuality::High as i32,
                        ..Default::default()
                    },
                ));
                reply(Ok(()));
            }
            Command::Close { reply } => self.close(reply),
        }
        Ok(())
    }

    pub(super) fn on_track_published(
        &mut self,
        r: proto::TrackPublishedResponse,
    ) -> Result<(), EngineError> {
        let Some(p) = self.pending_publish.remove(r.cid.as_str()) else {
            debug!("TrackPublished for unknown cid {}", r.cid);
            return Ok(());
        };
        let info = r.track.clone();
        let sid = r.track.map(|t| t.sid).unwrap_or_default();
        info!(
            "track {:?} published as {sid} (cid {})",
            p.options.name, p.cid
        );
        let shared = Arc::new(LocalShared::default());
        shared.keyframe_requested.store(true, Ordering::Relaxed);
        let kind = p.options.kind;
        let encrypted = p.options.encrypted;
        let rtp_offset = u64::from(self.random_u32());
        self.local_tracks.insert(
            p.cid.clone(),
            LocalTrackState {
                sid: sid.clone(),
                cid: p.cid.clone(),
                kind,
                mid: None,
                muted: p.options.muted,
                info,
                shared: shared.clone(),
                rtp_offset,
                encrypted,
            },
        );
        self.negotiation.changes.push(PubChange::Media {
            kind,
            cid: p.cid.clone(),
        });
        self.negotiate_publisher()?;
        let handle = LocalTrack {
            sid,
            cid: p.cid,
            kind,
            name: p.options.name,
            media: self.media.clone(),
            shared,
        };
        (p.reply)(Ok(handle));
        Ok(())
    }

    pub(super) fn expire_pending_publish(&mut self) {
        let now = self.now;
        let expired: Vec<Arc<str>> = self
            .pending_publish
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for cid in expired {
            if let Some(p) = self.pending_publish.remove(&cid) {
                (p.reply)(Err(EngineError::PublishTimeout {
                    name: p.options.name,
                    cid: cid.to_string(),
                    timeout_ms: self.options.publish_timeout.as_millis() as u64,
                }));
            }
        }
    }
}
