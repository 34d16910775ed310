//! The roster: remote participants and their publications, as the room keeps them.
//!
//! Pure state: every method takes what the engine reported and returns the room events it
//! implies. The room's task applies engine events here as they arrive, before it queues any
//! notification, so the roster is right however slowly the app reads its events.

use std::collections::{BTreeMap, HashMap};

use wavecast_rtc::{Participant, Quality, TrackInfo, TrackKind, TrackSource};

use super::events::{ActiveSpeaker, RoomEvent};

/// A remote participant as the room knows it now (a snapshot: read it again for later state).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RemoteParticipant {
    /// Server-assigned sid (`PA_…`); changes when the participant rejoins.
    pub sid: String,
    /// The identity from its token (stable).
    pub identity: String,
    /// Display name.
    pub name: String,
    /// Application metadata.
    pub metadata: String,
    /// The last connection quality the server reported for it.
    pub connection_quality: Option<Quality>,
    /// Its publications by track sid.
    pub track_publications: BTreeMap<String, RemoteTrackPublication>,
}

impl RemoteParticipant {
    /// Its first publication of `kind`, if any (by track sid order).
    pub fn publication_of_kind(&self, kind: TrackKind) -> Option<&RemoteTrackPublication> {
        self.track_publications
            .values()
            .find(|p| p.kind == Some(kind))
    }
}

/// A track a remote participant publishes, and whether we receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteTrackPublication {
    /// Track sid (`TR_…`).
    pub sid: String,
    /// Track name.
    pub name: String,
    /// Audio or video (`None` for other kinds).
    pub kind: Option<TrackKind>,
    /// Source label.
    pub source: TrackSource,
    /// Whether the publisher muted it.
    pub muted: bool,
    /// Video width as published.
    pub width: u32,
    /// Video height as published.
    pub height: u32,
    /// The publisher's sid.
    pub participant_sid: String,
    /// The publisher's identity.
    pub participant_identity: String,
    /// We receive it now (a [`crate::SubscribedTrack`] for it was handed out and flows).
    pub subscribed: bool,
    /// What the app asked for with [`crate::Room::subscribe`] / [`crate::Room::unsubscribe`]
    /// (`None`: the room's auto-subscribe setting decides). Kept across rejoins.
    pub wanted: Option<bool>,
    /// Whether the server forwards it (false after [`crate::Room::set_enabled`] with false).
    pub enabled: bool,
}

impl RemoteTrackPublication {
    fn new(participant: &Participant, t: &TrackInfo) -> Self {
        Self {
            sid: t.sid.clone(),
            name: t.name.clone(),
            kind: t.kind,
            source: t.source,
            muted: t.muted,
            width: t.width,
            height: t.height,
            participant_sid: participant.sid.clone(),
            participant_identity: participant.identity.clone(),
            subscribed: false,
            wanted: None,
            enabled: true,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Roster {
    /// By identity.
    participants: BTreeMap<String, RemoteParticipant>,
    /// Participant sid → identity (sids of the current engine).
    identities: HashMap<String, String>,
    /// Our own sid on the current engine (updates about it are not remote).
    pub(crate) local_sid: String,
    /// During a rejoin: identities and track sids the new engine has reported again.
    rejoin: Option<(Vec<String>, Vec<String>)>,
    /// Tracks subscribed before their publication was announced (the announcement marks them).
    early: Vec<String>,
}

impl Roster {
    pub(crate) fn participants(&self) -> Vec<RemoteParticipant> {
        self.participants.values().cloned().collect()
    }

    pub(crate) fn participant(&self, identity: &str) -> Option<RemoteParticipant> {
        self.participants.get(identity).cloned()
    }

    /// The publication with this track sid, and its participant.
    pub(crate) fn find_track(
        &self,
        track_sid: &str,
    ) -> Option<(&RemoteParticipant, &RemoteTrackPublication)> {
        self.participants
            .values()
            .find_map(|p| p.track_publications.get(track_sid).map(|t| (p, t)))
    }

    fn find_track_mut(&mut self, track_sid: &str) -> Option<&mut RemoteTrackPublication> {
        self.participants
            .values_mut()
            .find_map(|p| p.track_publications.get_mut(track_sid))
    }

    /// A participant joined or changed (the engine reports both through participant updates).
    pub(crate) fn participant_joined(&mut self, p: &Participant) -> Option<RoomEvent> {
        if p.sid == self.local_sid {
            return None;
        }
        self.identities.insert(p.sid.clone(), p.identity.clone());
        if let Some((seen, _)) = &mut self.rejoin {
            seen.push(p.identity.clone());
        }
        match self.participants.get_mut(&p.identity) {
            Some(known) => {
                let changed = known.name != p.name || known.metadata != p.metadata;
                if known.sid != p.sid {
                    // Rejoined (theirs or ours): the new sid names the same participant.
                    known.sid = p.sid.clone();
                    for t in known.track_publications.values_mut() {
                        t.participant_sid = p.sid.clone();
                    }
                }
                known.name = p.name.clone();
                known.metadata = p.metadata.clone();
                changed.then(|| RoomEvent::ParticipantUpdated(known.clone()))
            }
            None => {
                let rp = RemoteParticipant {
                    sid: p.sid.clone(),
                    identity: p.identity.clone(),
                    name: p.name.clone(),
                    metadata: p.metadata.clone(),
                    connection_quality: None,
                    track_publications: BTreeMap::new(),
                };
                self.participants.insert(p.identity.clone(), rp.clone());
                Some(RoomEvent::ParticipantConnected(rp))
            }
        }
    }

    /// A participant left: its publications go first (unsubscribed, unpublished), then it.
    pub(crate) fn participant_left(&mut self, identity: &str) -> Vec<RoomEvent> {
        let Some(p) = self.participants.get(identity).cloned() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for sid in p.track_publications.keys() {
            out.extend(self.track_unpublished(sid));
        }
        if let Some(p) = self.participants.remove(identity) {
            self.identities.retain(|_, i| i != identity);
            out.push(RoomEvent::ParticipantDisconnected(p));
        }
        out
    }

    /// A participant published a track (or the new engine reports it again after a rejoin).
    pub(crate) fn track_published(&mut self, p: &Participant, t: &TrackInfo) -> Vec<RoomEvent> {
        if p.sid == self.local_sid {
            return Vec::new();
        }
        let mut out = Vec::new();
        if !self.participants.contains_key(&p.identity) {
            out.extend(self.participant_joined(p));
        }
        if let Some((_, tracks)) = &mut self.rejoin {
            tracks.push(t.sid.clone());
        }
        let Some(rp) = self.participants.get_mut(&p.identity) else {
            return out;
        };
        match rp.track_publications.get_mut(&t.sid) {
            Some(known) => {
                // Reported again (after a rejoin): keep what the app asked for.
                let was_muted = known.muted;
                known.muted = t.muted;
                known.width = t.width;
                known.height = t.height;
                known.participant_sid = p.sid.clone();
                if was_muted != t.muted {
                    let publication = known.clone();
                    out.push(mute_event(t.muted, rp.clone(), publication));
                }
            }
            None => {
                let mut publication = RemoteTrackPublication::new(p, t);
                if let Some(i) = self.early.iter().position(|s| *s == t.sid) {
                    self.early.swap_remove(i);
                    publication.subscribed = true;
                }
                rp.track_publications
                    .insert(t.sid.clone(), publication.clone());
                out.push(RoomEvent::TrackPublished {
                    publication,
                    participant: rp.clone(),
                });
            }
        }
        out
    }

    /// A track was unpublished: unsubscribed first if we received it.
    pub(crate) fn track_unpublished(&mut self, track_sid: &str) -> Vec<RoomEvent> {
        let mut out = Vec::new();
        out.extend(self.track_unsubscribed(track_sid));
        let Some(identity) = self.find_track(track_sid).map(|(p, _)| p.identity.clone()) else {
            return out;
        };
        if let Some(rp) = self.participants.get_mut(&identity)
            && let Some(publication) = rp.track_publications.remove(track_sid)
        {
            out.push(RoomEvent::TrackUnpublished {
                publication,
                participant: rp.clone(),
            });
        }
        out
    }

    /// A track's mute state changed (events only when it really changed).
    pub(crate) fn track_muted(&mut self, track_sid: &str, muted: bool) -> Option<RoomEvent> {
        let publication = self.find_track_mut(track_sid)?;
        if publication.muted == muted {
            return None;
        }
        publication.muted = muted;
        let publication = publication.clone();
        let participant = self.participants.get(&publication.participant_identity)?;
        Some(mute_event(muted, participant.clone(), publication))
    }

    /// We receive a track now: the participant and publication (updated) for the event.
    pub(crate) fn track_subscribed(
        &mut self,
        track_sid: &str,
    ) -> Option<(RemoteParticipant, RemoteTrackPublication)> {
        let Some(publication) = self.find_track_mut(track_sid) else {
            if !self.early.iter().any(|s| s == track_sid) {
                self.early.push(track_sid.to_owned());
            }
            return None;
        };
        publication.subscribed = true;
        let identity = publication.participant_identity.clone();
        let participant = self.participants.get(&identity)?.clone();
        let publication = participant.track_publications.get(track_sid)?.clone();
        Some((participant, publication))
    }

    /// We no longer receive a track (events only if we did).
    pub(crate) fn track_unsubscribed(&mut self, track_sid: &str) -> Option<RoomEvent> {
        self.early.retain(|s| s != track_sid);
        let publication = self.find_track_mut(track_sid)?;
        if !publication.subscribed {
            return None;
        }
        publication.subscribed = false;
        let publication = publication.clone();
        let participant = self
            .participants
            .get(&publication.participant_identity)?
            .clone();
        Some(RoomEvent::TrackUnsubscribed {
            publication,
            participant,
        })
    }

    /// Remember what the app asked for (kept across rejoins).
    pub(crate) fn set_wanted(&mut self, track_sid: &str, wanted: bool) {
        if let Some(p) = self.find_track_mut(track_sid) {
            p.wanted = Some(wanted);
        }
    }

    pub(crate) fn set_enabled(&mut self, track_sid: &str, enabled: bool) {
        if let Some(p) = self.find_track_mut(track_sid) {
            p.enabled = enabled;
        }
    }

    /// Quality updates: one event per participant whose quality changed.
    pub(crate) fn qualities(&mut self, updates: &[(String, Quality)]) -> Vec<RoomEvent> {
        let mut out = Vec::new();
        for (sid, quality) in updates {
            if *sid == self.local_sid {
                continue;
            }
            let Some(identity) = self.identities.get(sid) else {
                continue;
            };
            if let Some(p) = self.participants.get_mut(identity)
                && p.connection_quality != Some(*quality)
            {
                p.connection_quality = Some(*quality);
                out.push(RoomEvent::ConnectionQualityChanged {
                    quality: *quality,
                    participant_identity: p.identity.clone(),
                });
            }
        }
        out
    }

    /// The active speakers by identity (ourselves included, marked local).
    pub(crate) fn speakers(&self, list: &[(String, f32)], local_identity: &str) -> RoomEvent {
        let speakers = list
            .iter()
            .filter_map(|(sid, level)| {
                if *sid == self.local_sid {
                    Some(ActiveSpeaker {
                        identity: local_identity.to_owned(),
                        level: *level,
                        local: true,
                    })
                } else {
                    self.identities.get(sid).map(|identity| ActiveSpeaker {
                        identity: identity.clone(),
                        level: *level,
                        local: false,
                    })
                }
            })
            .collect();
        RoomEvent::ActiveSpeakersChanged { speakers }
    }

    /// The session lost its engine and is rejoining: the old engine's sids mean nothing now, and
    /// the new engine will report the room again. Nothing we received flows until then.
    pub(crate) fn begin_rejoin(&mut self) {
        if self.rejoin.is_none() {
            self.rejoin = Some((Vec::new(), Vec::new()));
        }
    }

    /// The new engine is up (it reported everyone present before its connections came up):
    /// whoever and whatever it did not report again left while we were away.
    pub(crate) fn end_rejoin(&mut self) -> Vec<RoomEvent> {
        let Some((seen, tracks)) = self.rejoin.take() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let gone: Vec<String> = self
            .participants
            .keys()
            .filter(|i| !seen.contains(i))
            .cloned()
            .collect();
        for identity in gone {
            out.extend(self.participant_left(&identity));
        }
        let stale: Vec<String> = self
            .participants
            .values()
            .flat_map(|p| p.track_publications.keys())
            .filter(|sid| !tracks.contains(sid))
            .cloned()
            .collect();
        for sid in stale {
            out.extend(self.track_unpublished(&sid));
        }
        out
    }
}

fn mute_event(
    muted: bool,
    participant: RemoteParticipant,
    publication: RemoteTrackPublication,
) -> RoomEvent {
    if muted {
        RoomEvent::TrackMuted {
            publication,
            participant,
        }
    } else {
        RoomEvent::TrackUnmuted {
            publication,
            participant,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(sid: &str, identity: &str) -> Participant {
        Participant {
            sid: sid.into(),
            identity: identity.into(),
            name: String::new(),
            metadata: String::new(),
        }
    }

    fn track(sid: &str, name: &str, kind: TrackKind, muted: bool) -> TrackInfo {
        TrackInfo {
            sid: sid.into(),
            name: name.into(),
            kind: Some(kind),
            source: TrackSource::Microphone,
            muted,
            width: 0,
            height: 0,
        }
    }

    fn names(events: &[RoomEvent]) -> Vec<&'static str> {
        events.iter().map(RoomEvent::name).collect()
    }

    #[test]
    fn a_participants_life_reads_as_the_sdks_tell_it() {
        let mut r = Roster {
            local_sid: "PA_me".into(),
            ..Roster::default()
        };
        let bob = person("PA_bob", "bob");
        let ev = r.participant_joined(&bob).expect("new participant");
        assert_eq!(ev.name(), "ParticipantConnected");
        assert!(
            r.participant_joined(&bob).is_none(),
            "no event for no change"
        );
        let ev = r.track_published(&bob, &track("TR_a", "mic", TrackKind::Audio, false));
        assert_eq!(names(&ev), ["TrackPublished"]);
        let (p, t) = r.track_subscribed("TR_a").expect("known track");
        assert!(t.subscribed && p.track_publications["TR_a"].subscribed);
        assert_eq!(
            r.track_muted("TR_a", true).map(|e| e.name()),
            Some("TrackMuted")
        );
        assert!(
            r.track_muted("TR_a", true).is_none(),
            "mute is reported once"
        );
        assert_eq!(
            r.track_muted("TR_a", false).map(|e| e.name()),
            Some("TrackUnmuted")
        );
        // Unpublishing a received track unsubscribes it first.
        assert_eq!(
            names(&r.track_unpublished("TR_a")),
            ["TrackUnsubscribed", "TrackUnpublished"]
        );
        assert!(
            r.participant("bob")
                .expect("still here")
                .track_publications
                .is_empty()
        );
        r.track_published(&bob, &track("TR_b", "cam", TrackKind::Video, false));
        assert_eq!(
            names(&r.participant_left("bob")),
            ["TrackUnpublished", "ParticipantDisconnected"]
        );
        assert!(r.participants().is_empty());
        assert!(r.participant_left("bob").is_empty());
    }

    #[test]
    fn our_own_participant_is_not_in_the_roster() {
        let mut r = Roster {
            local_sid: "PA_me".into(),
            ..Roster::default()
        };
        let me = person("PA_me", "me");
        assert!(r.participant_joined(&me).is_none());
        assert!(
            r.track_published(&me, &track("TR_m", "mic", TrackKind::Audio, false))
                .is_empty()
        );
        assert!(r.participants().is_empty());
    }

    #[test]
    fn a_track_subscribed_before_it_was_announced_is_marked_subscribed() {
        let mut r = Roster::default();
        assert!(r.track_subscribed("TR_1").is_none());
        r.track_published(
            &person("PA_x", "x"),
            &track("TR_1", "mic", TrackKind::Audio, false),
        );
        let x = r.participant("x").expect("x");
        assert!(x.track_publications["TR_1"].subscribed);
    }

    #[test]
    fn a_track_announced_before_its_participant_creates_it() {
        let mut r = Roster::default();
        let ev = r.track_published(
            &person("PA_x", "x"),
            &track("TR_1", "mic", TrackKind::Audio, false),
        );
        assert_eq!(names(&ev), ["ParticipantConnected", "TrackPublished"]);
    }

    #[test]
    fn a_rejoin_keeps_who_stayed_and_drops_who_left() {
        let mut r = Roster::default();
        let (a, b) = (person("PA_a", "a"), person("PA_b", "b"));
        r.participant_joined(&a);
        r.participant_joined(&b);
        r.track_published(&a, &track("TR_a1", "mic", TrackKind::Audio, false));
        r.track_published(&a, &track("TR_a2", "cam", TrackKind::Video, false));
        r.set_wanted("TR_a1", true);
        r.begin_rejoin();
        // The new engine reports a (same sids) with one track; b is gone.
        assert!(r.participant_joined(&a).is_none());
        assert!(
            r.track_published(&a, &track("TR_a1", "mic", TrackKind::Audio, false))
                .is_empty()
        );
        let ev = r.end_rejoin();
        assert_eq!(names(&ev), ["ParticipantDisconnected", "TrackUnpublished"]);
        let a_now = r.participant("a").expect("a stayed");
        assert_eq!(a_now.track_publications.len(), 1);
        assert_eq!(a_now.track_publications["TR_a1"].wanted, Some(true));
        assert!(r.participant("b").is_none());
    }

    #[test]
    fn quality_events_only_on_change_and_speakers_by_identity() {
        let mut r = Roster {
            local_sid: "PA_me".into(),
            ..Roster::default()
        };
        r.participant_joined(&person("PA_a", "a"));
        let q = vec![
            ("PA_a".to_owned(), Quality::Good),
            ("PA_me".to_owned(), Quality::Poor),
        ];
        assert_eq!(names(&r.qualities(&q)), ["ConnectionQualityChanged"]);
        assert!(r.qualities(&q).is_empty());
        let RoomEvent::ActiveSpeakersChanged { speakers } = r.speakers(
            &[
                ("PA_me".into(), 0.5),
                ("PA_a".into(), 0.2),
                ("PA_zz".into(), 0.1),
            ],
            "me",
        ) else {
            panic!("speakers event")
        };
        assert_eq!(speakers.len(), 2);
        assert!(speakers[0].local && speakers[0].identity == "me");
        assert_eq!(speakers[1].identity, "a");
    }
}
