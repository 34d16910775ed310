//! The roster: remote participants and their publications, as the room keeps them.
//!
//! Pure state: every method takes what the engine reported and returns the room events it
//! implies. The room's task applies engine events here as they arrive, before it queues any
//! notification, so the roster is right however slowly the app reads its events.
//!
//! [`RemoteParticipant`] and [`RemoteTrackPublication`] are handles onto this state (as in the
//! official SDKs): a handle the app keeps reads what is true now, and after the participant left
//! or the track was unpublished it keeps reading the last state it had.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use wavecast_rtc::{
    ClientProtocol, MediaCodec, Participant, ParticipantKind, Quality, TrackInfo, TrackKind,
    TrackSettings, TrackSource, VideoLayer,
};

use super::events::{ActiveSpeaker, RoomEvent};
use super::participant::Participant as RoomParticipant;
use crate::ids::{ParticipantIdentity, ParticipantSid, TrackSid};
use crate::session::lock;

/// A remote participant: a handle that stays current (clone it freely; every clone reads the
/// room's state now). Two handles are equal when they name the same visit of the participant.
#[derive(Clone)]
pub struct RemoteParticipant(Arc<ParticipantInner>);

struct ParticipantInner {
    identity: ParticipantIdentity,
    state: Mutex<ParticipantState>,
}

#[derive(Debug, Clone)]
struct ParticipantState {
    sid: ParticipantSid,
    name: String,
    metadata: String,
    attributes: BTreeMap<String, String>,
    kind: ParticipantKind,
    client_protocol: ClientProtocol,
    reads_deflate: bool,
    connection_quality: Option<Quality>,
    publications: BTreeMap<TrackSid, RemoteTrackPublication>,
}

impl PartialEq for RemoteParticipant {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for RemoteParticipant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = lock(&self.0.state);
        f.debug_struct("RemoteParticipant")
            .field("identity", &self.0.identity)
            .field("sid", &s.sid)
            .field("name", &s.name)
            .field("kind", &s.kind)
            .field("publications", &s.publications.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl RemoteParticipant {
    fn new(p: &Participant) -> Self {
        Self(Arc::new(ParticipantInner {
            identity: p.identity.as_str().into(),
            state: Mutex::new(ParticipantState {
                sid: p.sid.as_str().into(),
                name: p.name.clone(),
                metadata: p.metadata.clone(),
                attributes: p.attributes.clone(),
                kind: p.kind,
                client_protocol: ClientProtocol::from_number(p.client_protocol),
                reads_deflate: p.reads_deflate,
                connection_quality: None,
                publications: BTreeMap::new(),
            }),
        }))
    }

    /// A participant the roster has not heard of (a track or data that came before the
    /// announcement): known by identity only.
    pub(crate) fn unannounced(identity: &str) -> Self {
        Self::new(&Participant {
            identity: identity.to_owned(),
            ..Participant::default()
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ParticipantState> {
        lock(&self.0.state)
    }

    /// The identity from its token (stable across its rejoins).
    pub fn identity(&self) -> &ParticipantIdentity {
        &self.0.identity
    }

    /// Its server-assigned sid (`PA_…`); changes when the participant (or we) rejoin.
    pub fn sid(&self) -> ParticipantSid {
        self.state().sid.clone()
    }

    /// Display name.
    pub fn name(&self) -> String {
        self.state().name.clone()
    }

    /// Application metadata.
    pub fn metadata(&self) -> String {
        self.state().metadata.clone()
    }

    /// Key/value attributes.
    pub fn attributes(&self) -> BTreeMap<String, String> {
        self.state().attributes.clone()
    }

    /// What kind of participant it is (a client, an agent, SIP, …).
    pub fn kind(&self) -> ParticipantKind {
        self.state().kind
    }

    /// The data-plane protocol its client advertised (how we send it streams and RPC).
    pub fn client_protocol(&self) -> ClientProtocol {
        self.state().client_protocol
    }

    /// Its client reads DEFLATE-compressed data streams.
    pub fn reads_deflate(&self) -> bool {
        self.state().reads_deflate
    }

    /// The last connection quality the server reported for it.
    pub fn connection_quality(&self) -> Option<Quality> {
        self.state().connection_quality
    }

    /// Its publications now, by track sid.
    pub fn track_publications(&self) -> BTreeMap<TrackSid, RemoteTrackPublication> {
        self.state().publications.clone()
    }

    /// One publication by track sid.
    pub fn track_publication(&self, sid: &str) -> Option<RemoteTrackPublication> {
        self.state().publications.get(sid).cloned()
    }

    /// Its first publication of `kind`, if any (by track sid order).
    pub fn publication_of_kind(&self, kind: TrackKind) -> Option<RemoteTrackPublication> {
        self.state()
            .publications
            .values()
            .find(|p| p.kind() == Some(kind))
            .cloned()
    }
}

/// A track a remote participant publishes, and whether we receive it: a handle that stays
/// current, like [`RemoteParticipant`].
#[derive(Clone)]
pub struct RemoteTrackPublication(Arc<PublicationInner>);

struct PublicationInner {
    sid: TrackSid,
    name: String,
    kind: Option<TrackKind>,
    source: TrackSource,
    participant_identity: ParticipantIdentity,
    encrypted: bool,
    state: Mutex<PublicationState>,
}

#[derive(Debug, Clone)]
struct PublicationState {
    muted: bool,
    width: u32,
    height: u32,
    participant_sid: ParticipantSid,
    subscribed: bool,
    wanted: Option<bool>,
    /// How the app asked the server to forward it (kept across rejoins).
    settings: TrackSettings,
    codec: Option<MediaCodec>,
    layers: Vec<VideoLayer>,
}

impl PartialEq for RemoteTrackPublication {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for RemoteTrackPublication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = lock(&self.0.state);
        f.debug_struct("RemoteTrackPublication")
            .field("sid", &self.0.sid)
            .field("name", &self.0.name)
            .field("kind", &self.0.kind)
            .field("participant", &self.0.participant_identity)
            .field("muted", &s.muted)
            .field("subscribed", &s.subscribed)
            .finish_non_exhaustive()
    }
}

impl RemoteTrackPublication {
    fn new(participant: &Participant, t: &TrackInfo) -> Self {
        Self(Arc::new(PublicationInner {
            sid: t.sid.as_str().into(),
            name: t.name.clone(),
            kind: t.kind,
            source: t.source,
            participant_identity: participant.identity.as_str().into(),
            encrypted: t.encrypted,
            state: Mutex::new(PublicationState {
                muted: t.muted,
                width: t.width,
                height: t.height,
                participant_sid: participant.sid.as_str().into(),
                subscribed: false,
                wanted: None,
                settings: TrackSettings::default(),
                codec: t.codec,
                layers: t.layers.clone(),
            }),
        }))
    }

    /// A publication known only from its subscribed track (subscribed before it was announced).
    pub(crate) fn unannounced(
        sid: &str,
        name: &str,
        kind: TrackKind,
        participant_identity: &str,
    ) -> Self {
        let p = Self::new(
            &Participant {
                identity: participant_identity.to_owned(),
                ..Participant::default()
            },
            &TrackInfo {
                sid: sid.to_owned(),
                name: name.to_owned(),
                kind: Some(kind),
                source: TrackSource::default(),
                muted: false,
                width: 0,
                height: 0,
                encrypted: false,
                codec: None,
                layers: Vec::new(),
            },
        );
        p.state().subscribed = true;
        p
    }

    fn state(&self) -> std::sync::MutexGuard<'_, PublicationState> {
        lock(&self.0.state)
    }

    /// Track sid (`TR_…`).
    pub fn sid(&self) -> &TrackSid {
        &self.0.sid
    }

    /// Track name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Audio or video (`None` for other kinds).
    pub fn kind(&self) -> Option<TrackKind> {
        self.0.kind
    }

    /// Source label.
    pub fn source(&self) -> TrackSource {
        self.0.source
    }

    /// The publisher's identity.
    pub fn participant_identity(&self) -> &ParticipantIdentity {
        &self.0.participant_identity
    }

    /// The publisher's sid now.
    pub fn participant_sid(&self) -> ParticipantSid {
        self.state().participant_sid.clone()
    }

    /// Whether its frames are end-to-end encrypted (the publisher announced AES-GCM).
    pub fn is_encrypted(&self) -> bool {
        self.0.encrypted
    }

    /// Whether the publisher muted it.
    pub fn is_muted(&self) -> bool {
        self.state().muted
    }

    /// Video width and height as published.
    pub fn dimensions(&self) -> (u32, u32) {
        let s = self.state();
        (s.width, s.height)
    }

    /// Everything the server said of it, as the engine reports tracks.
    pub fn info(&self) -> TrackInfo {
        let s = self.state();
        TrackInfo {
            sid: self.0.sid.to_string(),
            name: self.0.name.clone(),
            kind: self.0.kind,
            source: self.0.source,
            muted: s.muted,
            width: s.width,
            height: s.height,
            encrypted: self.0.encrypted,
            codec: s.codec,
            layers: s.layers.clone(),
        }
    }

    /// Its codec as the server names it (`None` until it knows).
    pub fn codec(&self) -> Option<MediaCodec> {
        self.state().codec
    }

    /// Its simulcast layers as announced, smallest first (one without simulcast).
    pub fn layers(&self) -> Vec<VideoLayer> {
        self.state().layers.clone()
    }

    /// How the app asked the server to forward it ([`crate::Room::update_track_settings`]).
    pub fn settings(&self) -> TrackSettings {
        self.state().settings
    }

    /// We receive it now (a [`crate::SubscribedTrack`] for it was handed out and flows).
    pub fn is_subscribed(&self) -> bool {
        self.state().subscribed
    }

    /// What the app asked for with [`crate::Room::subscribe`] / [`crate::Room::unsubscribe`]
    /// (`None`: the room's auto-subscribe setting decides). Kept across rejoins.
    pub fn wanted(&self) -> Option<bool> {
        self.state().wanted
    }

    /// Whether the server forwards it (false after [`crate::Room::set_enabled`] with false).
    pub fn is_enabled(&self) -> bool {
        self.state().settings.enabled
    }
}

#[derive(Default)]
pub(crate) struct Roster {
    /// By identity.
    participants: BTreeMap<ParticipantIdentity, RemoteParticipant>,
    /// Participant sid → identity (sids of the current engine).
    identities: HashMap<String, ParticipantIdentity>,
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

    /// The participant whose sid this is on the current engine.
    pub(crate) fn participant_by_sid(&self, sid: &str) -> Option<RemoteParticipant> {
        self.participant(self.identities.get(sid)?)
    }

    /// The publication with this track sid, and its participant.
    pub(crate) fn find_track(
        &self,
        track_sid: &str,
    ) -> Option<(RemoteParticipant, RemoteTrackPublication)> {
        self.participants
            .values()
            .find_map(|p| p.track_publication(track_sid).map(|t| (p.clone(), t)))
    }

    /// A participant joined or changed (the engine reports both through participant updates).
    pub(crate) fn participant_joined(&mut self, p: &Participant) -> Vec<RoomEvent> {
        if p.sid == self.local_sid {
            return Vec::new();
        }
        self.identities
            .insert(p.sid.clone(), p.identity.as_str().into());
        if let Some((seen, _)) = &mut self.rejoin {
            seen.push(p.identity.clone());
        }
        let Some(known) = self.participants.get(p.identity.as_str()) else {
            let rp = RemoteParticipant::new(p);
            self.participants
                .insert(p.identity.as_str().into(), rp.clone());
            return vec![RoomEvent::ParticipantConnected(rp)];
        };
        let mut out = Vec::new();
        let mut s = known.state();
        if s.sid != p.sid {
            // Rejoined (theirs or ours): the new sid names the same participant.
            s.sid = p.sid.as_str().into();
            for t in s.publications.values() {
                t.state().participant_sid = p.sid.as_str().into();
            }
        }
        s.kind = p.kind;
        s.client_protocol = ClientProtocol::from_number(p.client_protocol);
        s.reads_deflate = p.reads_deflate;
        let before = Participant {
            name: s.name.clone(),
            metadata: s.metadata.clone(),
            attributes: s.attributes.clone(),
            ..Participant::default()
        };
        s.name = p.name.clone();
        s.metadata = p.metadata.clone();
        s.attributes = p.attributes.clone();
        drop(s);
        out.extend(info_changes(&known.clone().into(), &before, p));
        out
    }

    /// A participant left: its publications go first (unsubscribed, unpublished), then it.
    pub(crate) fn participant_left(&mut self, identity: &str) -> Vec<RoomEvent> {
        let Some(p) = self.participants.get(identity).cloned() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for sid in p.track_publications().keys() {
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
        if !self.participants.contains_key(p.identity.as_str()) {
            out.extend(self.participant_joined(p));
        }
        if let Some((_, tracks)) = &mut self.rejoin {
            tracks.push(t.sid.clone());
        }
        let Some(rp) = self.participants.get(p.identity.as_str()).cloned() else {
            return out;
        };
        let known = rp.track_publication(&t.sid);
        match known {
            Some(known) => {
                // Reported again (after a rejoin): keep what the app asked for.
                let was_muted = {
                    let mut s = known.state();
                    let was_muted = s.muted;
                    s.muted = t.muted;
                    s.width = t.width;
                    s.height = t.height;
                    s.codec = t.codec.or(s.codec);
                    s.layers = t.layers.clone();
                    s.participant_sid = p.sid.as_str().into();
                    was_muted
                };
                if was_muted != t.muted {
                    out.push(mute_event(t.muted, rp, known));
                }
            }
            None => {
                let publication = RemoteTrackPublication::new(p, t);
                if let Some(i) = self.early.iter().position(|s| *s == t.sid) {
                    self.early.swap_remove(i);
                    publication.state().subscribed = true;
                }
                rp.state()
                    .publications
                    .insert(t.sid.as_str().into(), publication.clone());
                out.push(RoomEvent::TrackPublished {
                    publication,
                    participant: rp,
                });
            }
        }
        out
    }

    /// A track was unpublished: unsubscribed first if we received it.
    pub(crate) fn track_unpublished(&mut self, track_sid: &str) -> Vec<RoomEvent> {
        let mut out = Vec::new();
        out.extend(self.track_unsubscribed(track_sid));
        let Some((participant, _)) = self.find_track(track_sid) else {
            return out;
        };
        let removed = participant.state().publications.remove(track_sid);
        if let Some(publication) = removed {
            out.push(RoomEvent::TrackUnpublished {
                publication,
                participant,
            });
        }
        out
    }

    /// A track's mute state changed (events only when it really changed).
    pub(crate) fn track_muted(&mut self, track_sid: &str, muted: bool) -> Option<RoomEvent> {
        let (participant, publication) = self.find_track(track_sid)?;
        {
            let mut s = publication.state();
            if s.muted == muted {
                return None;
            }
            s.muted = muted;
        }
        Some(mute_event(muted, participant, publication))
    }

    /// We receive a track now: the participant and publication (updated) for the event.
    pub(crate) fn track_subscribed(
        &mut self,
        track_sid: &str,
    ) -> Option<(RemoteParticipant, RemoteTrackPublication)> {
        let Some((participant, publication)) = self.find_track(track_sid) else {
            if !self.early.iter().any(|s| s == track_sid) {
                self.early.push(track_sid.to_owned());
            }
            return None;
        };
        publication.state().subscribed = true;
        Some((participant, publication))
    }

    /// We no longer receive a track (events only if we did).
    pub(crate) fn track_unsubscribed(&mut self, track_sid: &str) -> Option<RoomEvent> {
        self.early.retain(|s| s != track_sid);
        let (participant, publication) = self.find_track(track_sid)?;
        {
            let mut s = publication.state();
            if !s.subscribed {
                return None;
            }
            s.subscribed = false;
        }
        Some(RoomEvent::TrackUnsubscribed {
            publication,
            participant,
        })
    }

    /// The server could not subscribe us to a track.
    pub(crate) fn track_subscription_failed(
        &mut self,
        track_sid: &str,
        reason: String,
    ) -> RoomEvent {
        let found = self.find_track(track_sid);
        if let Some((_, publication)) = &found {
            publication.state().subscribed = false;
        }
        RoomEvent::TrackSubscriptionFailed {
            participant: found.map(|(p, _)| p),
            track_sid: track_sid.into(),
            reason,
        }
    }

    /// Remember what the app asked for (kept across rejoins).
    pub(crate) fn set_wanted(&mut self, track_sid: &str, wanted: bool) {
        if let Some((_, p)) = self.find_track(track_sid) {
            p.state().wanted = Some(wanted);
        }
    }

    pub(crate) fn set_settings(&mut self, track_sid: &str, settings: TrackSettings) {
        if let Some((_, p)) = self.find_track(track_sid) {
            p.state().settings = settings;
        }
    }

    /// Quality updates of remote participants: one event per participant whose quality changed.
    pub(crate) fn qualities(&mut self, updates: &[(String, Quality)]) -> Vec<RoomEvent> {
        let mut out = Vec::new();
        for (sid, quality) in updates {
            if *sid == self.local_sid {
                continue;
            }
            let Some(p) = self.participant_by_sid(sid) else {
                continue;
            };
            let changed = {
                let mut s = p.state();
                let changed = s.connection_quality != Some(*quality);
                s.connection_quality = Some(*quality);
                changed
            };
            if changed {
                out.push(RoomEvent::ConnectionQualityChanged {
                    quality: *quality,
                    participant: p,
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
                        identity: local_identity.into(),
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
        let gone: Vec<ParticipantIdentity> = self
            .participants
            .keys()
            .filter(|i| !seen.iter().any(|s| *i == s))
            .cloned()
            .collect();
        for identity in gone {
            out.extend(self.participant_left(&identity));
        }
        let stale: Vec<TrackSid> = self
            .participants
            .values()
            .flat_map(|p| p.track_publications().into_keys())
            .filter(|sid| !tracks.iter().any(|t| sid == t))
            .collect();
        for sid in stale {
            out.extend(self.track_unpublished(&sid));
        }
        out
    }
}

/// The attributes that changed from `old` to `new`: new and changed keys with their values,
/// removed keys with an empty value (as the SDKs report them).
/// The name, metadata and attribute events between two states of a participant.
pub(crate) fn info_changes(
    participant: &RoomParticipant,
    old: &Participant,
    new: &Participant,
) -> Vec<RoomEvent> {
    let mut out = Vec::new();
    if old.name != new.name {
        out.push(RoomEvent::ParticipantNameChanged {
            participant: participant.clone(),
            old_name: old.name.clone(),
            name: new.name.clone(),
        });
    }
    if old.metadata != new.metadata {
        out.push(RoomEvent::ParticipantMetadataChanged {
            participant: participant.clone(),
            old_metadata: old.metadata.clone(),
            metadata: new.metadata.clone(),
        });
    }
    if old.attributes != new.attributes {
        out.push(RoomEvent::ParticipantAttributesChanged {
            participant: participant.clone(),
            changed_attributes: changed(&old.attributes, &new.attributes),
        });
    }
    out
}

fn changed(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for k in old.keys().filter(|k| !new.contains_key(*k)) {
        out.insert(k.clone(), String::new());
    }
    out
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
            ..Participant::default()
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
            encrypted: false,
            codec: None,
            layers: Vec::new(),
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
        let ev = r.participant_joined(&bob);
        assert_eq!(names(&ev), ["ParticipantConnected"]);
        assert!(
            r.participant_joined(&bob).is_empty(),
            "no event for no change"
        );
        let ev = r.track_published(&bob, &track("TR_a", "mic", TrackKind::Audio, false));
        assert_eq!(names(&ev), ["TrackPublished"]);
        let (p, t) = r.track_subscribed("TR_a").expect("known track");
        assert!(t.is_subscribed() && p.track_publications()["TR_a"].is_subscribed());
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
                .track_publications()
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
        assert!(r.participant_joined(&me).is_empty());
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
        assert!(x.track_publications()["TR_1"].is_subscribed());
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
        assert!(r.participant_joined(&a).is_empty());
        assert!(
            r.track_published(&a, &track("TR_a1", "mic", TrackKind::Audio, false))
                .is_empty()
        );
        let ev = r.end_rejoin();
        assert_eq!(names(&ev), ["ParticipantDisconnected", "TrackUnpublished"]);
        let a_now = r.participant("a").expect("a stayed");
        assert_eq!(a_now.track_publications().len(), 1);
        assert_eq!(a_now.track_publications()["TR_a1"].wanted(), Some(true));
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

    #[test]
    fn a_kept_handle_reads_the_current_state() {
        let mut r = Roster::default();
        let bob = person("PA_bob", "bob");
        let handle = match r.participant_joined(&bob).pop() {
            Some(RoomEvent::ParticipantConnected(p)) => p,
            other => panic!("{other:?}"),
        };
        r.track_published(&bob, &track("TR_a", "mic", TrackKind::Audio, false));
        let publication = handle
            .track_publication("TR_a")
            .expect("seen through the handle");
        r.track_muted("TR_a", true);
        assert!(
            publication.is_muted(),
            "the publication handle follows the mute"
        );
        let renamed = Participant {
            name: "Bob".into(),
            metadata: "{}".into(),
            attributes: [("role".to_owned(), "host".to_owned())].into(),
            ..bob.clone()
        };
        let ev = r.participant_joined(&renamed);
        assert_eq!(
            names(&ev),
            [
                "ParticipantNameChanged",
                "ParticipantMetadataChanged",
                "ParticipantAttributesChanged"
            ]
        );
        assert_eq!(handle.name(), "Bob");
        assert_eq!(handle.attributes()["role"], "host");
        let RoomEvent::ParticipantAttributesChanged {
            changed_attributes, ..
        } = &ev[2]
        else {
            panic!("attributes event")
        };
        assert_eq!(changed_attributes["role"], "host");
        // Removed attributes are reported with an empty value.
        let ev = r.participant_joined(&Participant {
            attributes: Default::default(),
            ..renamed
        });
        let RoomEvent::ParticipantAttributesChanged {
            changed_attributes, ..
        } = &ev[0]
        else {
            panic!("attributes event")
        };
        assert_eq!(changed_attributes["role"], "");
        // After leaving, the handle keeps its last state.
        r.participant_left("bob");
        assert_eq!(handle.name(), "Bob");
        assert!(handle.track_publications().is_empty());
    }

    #[test]
    fn a_failed_subscription_names_the_publisher() {
        let mut r = Roster::default();
        let bob = person("PA_bob", "bob");
        r.track_published(&bob, &track("TR_a", "cam", TrackKind::Video, false));
        let RoomEvent::TrackSubscriptionFailed {
            participant,
            track_sid,
            reason,
        } = r.track_subscription_failed("TR_a", "SE_CODEC_UNSUPPORTED".into())
        else {
            panic!("failure event")
        };
        assert_eq!(participant.expect("known").identity(), "bob");
        assert_eq!(track_sid, "TR_a");
        assert_eq!(reason, "SE_CODEC_UNSUPPORTED");
    }
}
