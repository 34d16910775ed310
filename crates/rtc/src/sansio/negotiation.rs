//! SDP negotiation of both connections: the server's subscriber offers, our publisher offers,
//! and trickled candidates.

use super::*;

impl Core {
    pub(super) fn on_trickle(&mut self, t: proto::TrickleRequest) -> Result<(), EngineError> {
        let cand = match parse_candidate_init(&t.candidate_init) {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(()),
            Err(e) => {
                warn!("ignoring remote candidate: {e}");
                return Ok(());
            }
        };
        if t.target == proto::SignalTarget::Subscriber as i32 {
            self.subscriber.add_remote_candidate(cand)
        } else {
            self.publisher.add_remote_candidate(cand)
        }
    }

    pub(super) fn trickle_local(&mut self, role: PeerRole) -> Result<(), EngineError> {
        let peer = match role {
            PeerRole::Publisher => &self.publisher,
            PeerRole::Subscriber => &self.subscriber,
        };
        for c in peer.local_candidates()? {
            self.trickle(role, &c);
        }
        Ok(())
    }

    /// Send the server one of our candidates for `role`'s connection.
    pub(super) fn trickle(&mut self, role: PeerRole, c: &str0m::Candidate) {
        let target = match role {
            PeerRole::Publisher => proto::SignalTarget::Publisher,
            PeerRole::Subscriber => proto::SignalTarget::Subscriber,
        };
        self.send_signal(proto::signal_request::Message::Trickle(
            proto::TrickleRequest {
                candidate_init: candidate_init(c),
                target: target as i32,
                r#final: false,
            },
        ));
    }

    pub(super) fn on_subscriber_offer(
        &mut self,
        desc: proto::SessionDescription,
    ) -> Result<(), EngineError> {
        let role = PeerRole::Subscriber;
        debug!(
            "subscriber offer id {}:\n{}",
            desc.id,
            crate::redact::Redacted(&desc.sdp)
        );
        let offer = SdpOffer::from_sdp_string(&desc.sdp).map_err(|source| EngineError::Sdp {
            role,
            kind: "offer",
            source,
        })?;
        let answer: SdpAnswer =
            self.subscriber
                .rtc
                .sdp_api()
                .accept_offer(offer)
                .map_err(|source| EngineError::Rtc {
                    role,
                    what: "answering the subscriber offer",
                    source,
                })?;
        self.subscriber.drain()?;
        self.subscriber.remote_description_applied(self.now)?;
        let sdp = answer.to_sdp_string();
        debug!("subscriber answer:\n{}", crate::redact::Redacted(&sdp));
        let answer = proto::SessionDescription {
            r#type: "answer".into(),
            sdp,
            id: desc.id,
            mid_to_track_id: HashMap::new(),
        };
        self.last_sub_answer = Some(answer.clone());
        self.send_signal(proto::signal_request::Message::Answer(answer));
        if !self.sub_trickled {
            self.sub_trickled = true;
            self.trickle_local(role)?;
        }
        self.map_remote_tracks(&desc.sdp);
        Ok(())
    }

    pub(super) fn on_publisher_answer(
        &mut self,
        desc: proto::SessionDescription,
    ) -> Result<(), EngineError> {
        let role = PeerRole::Publisher;
        let Some((pending, _)) = self.negotiation.pending.take() else {
            warn!("publisher answer without an offer in flight");
            return Ok(());
        };
        debug!("publisher answer:\n{}", crate::redact::Redacted(&desc.sdp));
        let answer = SdpAnswer::from_sdp_string(&desc.sdp).map_err(|source| EngineError::Sdp {
            role,
            kind: "answer",
            source,
        })?;
        self.publisher
            .rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|source| EngineError::Rtc {
                role,
                what: "applying the publisher answer",
                source,
            })?;
        self.publisher.drain()?;
        self.configure_resends();
        self.publisher.remote_description_applied(self.now)?;
        if !self.negotiation.trickled {
            self.negotiation.trickled = true;
            self.trickle_local(role)?;
        }
        if !self.negotiation.changes.is_empty() {
            self.negotiate_publisher()?;
        }
        Ok(())
    }

    /// Apply queued publisher changes and send an offer, unless one is in flight or the signal
    /// connection is being resumed (the resume's ICE restart offer then carries them).
    pub(super) fn negotiate_publisher(&mut self) -> Result<(), EngineError> {
        if self.negotiation.pending.is_some()
            || self.negotiation.changes.is_empty()
            || self.link.is_resuming()
        {
            return Ok(());
        }
        let role = PeerRole::Publisher;
        let local_sid = self.local.sid.clone();
        let changes = std::mem::take(&mut self.negotiation.changes);
        let mut api = self.publisher.rtc.sdp_api();
        let mut new_mids = Vec::new();
        for change in changes {
            match change {
                PubChange::Channels => {
                    self.data.reliable = Some(api.add_channel_with_config(ChannelConfig {
                        label: "_reliable".into(),
                        ordered: true,
                        reliability: Reliability::Reliable,
                        negotiated: None,
                        protocol: String::new(),
                    }));
                    self.data.lossy = Some(api.add_channel_with_config(ChannelConfig {
                        label: "_lossy".into(),
                        ordered: false,
                        reliability: Reliability::MaxRetransmits { retransmits: 0 },
                        negotiated: None,
                        protocol: String::new(),
                    }));
                }
                PubChange::Media { kind, cid, .. } => {
                    let mk = match kind {
                        TrackKind::Audio => MediaKind::Audio,
                        TrackKind::Video => MediaKind::Video,
                    };
                    // Simulcast: one RTP stream per layer, told apart by rid (smallest first,
                    // as livekit-client orders them).
                    let simulcast = self
                        .local_tracks
                        .get(&cid)
                        .filter(|t| !t.layers.is_empty())
                        .map(|t| {
                            let mut s = str0m::media::Simulcast::new();
                            for l in &t.layers {
                                s.add_send_layer(str0m::media::SimulcastLayer::new(
                                    l.quality.rid(),
                                ));
                            }
                            s
                        });
                    let mid = api.add_media(
                        mk,
                        Direction::SendOnly,
                        Some(local_sid.clone()),
                        Some(cid.to_string()),
                        simulcast,
                    );
                    new_mids.push((cid, mid));
                }
                PubChange::Stop(mid) => api.set_direction(mid, Direction::Inactive),
                PubChange::IceRestart => {
                    api.ice_restart(true);
                }
            }
        }
        let applied = api.apply();
        for (cid, mid) in new_mids {
            if let Some(t) = self.local_tracks.get_mut(&cid) {
                t.mid = Some(mid);
            }
        }
        let Some((offer, pending)) = applied else {
            return self.publisher.drain();
        };
        self.publisher.drain()?;
        // End-to-end encrypted audio goes out as plain Opus (see `offer_sdp`).
        let encrypted_audio: Vec<_> = self
            .local_tracks
            .values()
            .filter(|t| t.encrypted && t.kind == TrackKind::Audio)
            .filter_map(|t| t.mid)
            .collect();
        let sdp = super::offer_sdp::without_red(&offer.to_sdp_string(), &encrypted_audio);
        // Each video track's codec first in its section (the SDKs' codec preference).
        let preferred: Vec<_> = self
            .local_tracks
            .values()
            .filter(|t| t.kind == TrackKind::Video)
            .filter_map(|t| t.mid.map(|m| (m, t.codec)))
            .collect();
        let sdp = super::offer_sdp::prefer_codecs(&sdp, &preferred);
        debug!("publisher offer:\n{}", crate::redact::Redacted(&sdp));
        let _ = role;
        self.negotiation.pending = Some((pending, sdp.clone()));
        self.send_publisher_offer(sdp);
        Ok(())
    }

    pub(super) fn send_publisher_offer(&mut self, sdp: String) {
        self.send_signal(proto::signal_request::Message::Offer(
            proto::SessionDescription {
                r#type: "offer".into(),
                sdp,
                id: 0,
                mid_to_track_id: HashMap::new(),
            },
        ));
    }
}
