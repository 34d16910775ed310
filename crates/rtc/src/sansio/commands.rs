//! Commands from the engine handle: publish, unpublish, mute, data, keyframe requests; what
//! the server says of our published tracks (dynacast) and how the bandwidth estimate is
//! shared among them.

use super::*;

/// What an audio track counts for in the bandwidth estimate, bits per second.
const AUDIO_WANT: u64 = 64_000;
/// What a video track of one layer counts for, bits per second.
const DEFAULT_VIDEO_WANT: u64 = 1_500_000;
/// The estimator's floor, bits per second.
const MIN_ESTIMATE: u64 = 100_000;

impl Core {
    #[allow(deprecated)] // disable_dtx: still honoured by v1.13 servers.
    pub(super) fn on_command(&mut self, c: Command) -> Result<(), EngineError> {
        match c {
            Command::Publish { mut options, reply } => {
                if let Err(e) = options.check() {
                    reply(Err(e));
                    return Ok(());
                }
                options.layers.sort_by_key(|l| l.quality);
                self.next_cid += 1;
                let cid: Arc<str> =
                    format!("TR_wc{:08x}{}", self.random_u32(), self.next_cid).into();
                let track_type = match options.kind {
                    TrackKind::Audio => proto::TrackType::Audio,
                    TrackKind::Video => proto::TrackType::Video,
                };
                // The layers as livekit-client announces them: quality, size, bitrate and rid
                // of each (one HIGH layer without simulcast).
                let layers: Vec<proto::VideoLayer> = if options.kind == TrackKind::Audio {
                    Vec::new()
                } else if options.layers.is_empty() {
                    vec![proto::VideoLayer {
                        quality: proto::VideoQuality::High as i32,
                        width: options.width,
                        height: options.height,
                        ..Default::default()
                    }]
                } else {
                    options
                        .layers
                        .iter()
                        .map(|l| proto::VideoLayer {
                            quality: l.quality.to_proto() as i32,
                            width: l.width,
                            height: l.height,
                            bitrate: l.bitrate,
                            rid: l.quality.rid().into(),
                            ..Default::default()
                        })
                        .collect()
                };
                let simulcast_codecs = if options.kind == TrackKind::Video {
                    vec![proto::SimulcastCodec {
                        codec: options.codec.to_string(),
                        cid: cid.to_string(),
                        ..Default::default()
                    }]
                } else {
                    Vec::new()
                };
                let req = proto::AddTrackRequest {
                    cid: cid.to_string(),
                    name: options.name.clone(),
                    r#type: track_type as i32,
                    width: options.width,
                    height: options.height,
                    muted: options.muted,
                    layers,
                    simulcast_codecs,
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
                self.update_desired_bitrate();
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
                settings,
                reply,
            } => {
                self.send_signal(proto::signal_request::Message::TrackSetting(
                    settings.to_proto(track_sid),
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
        let shared = Arc::new(LocalShared::new());
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
                codec: p.options.codec,
                layers: p.options.layers.clone(),
            },
        );
        self.negotiation.changes.push(PubChange::Media {
            kind,
            cid: p.cid.clone(),
        });
        self.update_desired_bitrate();
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

    /// What the publisher's tracks want, bits per second: their layers' bitrates (a video
    /// track without layers counts [`DEFAULT_VIDEO_WANT`], audio [`AUDIO_WANT`]).
    fn wanted_bitrates(&self) -> impl Iterator<Item = (&LocalTrackState, u64)> {
        self.local_tracks.values().map(|t| {
            let want = match t.kind {
                TrackKind::Audio => AUDIO_WANT,
                TrackKind::Video if t.layers.is_empty() => DEFAULT_VIDEO_WANT,
                TrackKind::Video => t.layers.iter().map(|l| u64::from(l.bitrate)).sum(),
            };
            (t, want)
        })
    }

    /// Tell the bandwidth estimator what we would send (it probes up to that), after the
    /// published tracks changed.
    pub(super) fn update_desired_bitrate(&mut self) {
        if self.options.bandwidth_estimation.is_none() {
            return;
        }
        let desired: u64 = self.wanted_bitrates().map(|(_, w)| w).sum();
        self.publisher.rtc.bwe().set_bitrate(
            str0m::bwe::Bitrate::bps(MIN_ESTIMATE),
            str0m::bwe::Bitrate::bps(desired.max(MIN_ESTIMATE)),
        );
    }

    /// Split a new estimate among the published tracks by what each wants: audio first (it is
    /// small and matters most), then video in proportion.
    pub(super) fn share_estimate(&mut self, estimate: u64) {
        let audio: u64 = self
            .wanted_bitrates()
            .filter(|(t, _)| t.kind == TrackKind::Audio)
            .map(|(_, w)| w)
            .sum();
        let video_budget = estimate.saturating_sub(audio);
        let video_want: u64 = self
            .wanted_bitrates()
            .filter(|(t, _)| t.kind == TrackKind::Video)
            .map(|(_, w)| w)
            .sum();
        for (t, want) in self.wanted_bitrates() {
            let share = match t.kind {
                TrackKind::Audio => want,
                TrackKind::Video => {
                    (u128::from(video_budget) * u128::from(want) / u128::from(video_want.max(1)))
                        as u64
                }
            };
            t.shared
                .target_bitrate
                .store(share.max(1), Ordering::Relaxed);
        }
    }

    /// Dynacast: the server tells which layers of one of our video tracks anybody receives
    /// (per codec when it names codecs; ours is the one that counts). Layers nobody receives
    /// may pause; the publisher's encoders read [`LocalTrack::layer_active`].
    #[allow(deprecated)] // subscribed_qualities: what servers send without codec lists
    pub(super) fn on_subscribed_quality(&mut self, u: proto::SubscribedQualityUpdate) {
        let Some(t) = self.local_tracks.values().find(|t| t.sid == u.track_sid) else {
            debug!("subscribed qualities for unknown track {}", u.track_sid);
            return;
        };
        let ours = t.codec.to_string();
        let qualities = u
            .subscribed_codecs
            .iter()
            .find(|c| c.codec.eq_ignore_ascii_case(&ours))
            .map(|c| &c.qualities)
            .unwrap_or(&u.subscribed_qualities);
        let mut mask = 0u8;
        for q in qualities.iter().filter(|q| q.enabled) {
            if let Some(v) = crate::track::VideoQuality::from_proto(q.quality) {
                mask |= 1 << v.index();
            }
        }
        let before = t.shared.active_layers.swap(mask, Ordering::Relaxed);
        if before != mask {
            debug!(
                "track {}: layers received now {mask:03b} (was {before:03b})",
                t.sid
            );
        }
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
