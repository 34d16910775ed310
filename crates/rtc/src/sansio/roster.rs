//! The roster of remote participants and their publications, from participant updates.

use super::*;

impl Core {
    pub(super) fn on_participant(&mut self, p: &proto::ParticipantInfo) {
        if p.sid == self.local.sid {
            self.on_local_participant(p);
            return;
        }
        if p.identity == self.local.identity {
            return; // an earlier visit of ours
        }
        let info = Participant::from_proto(p);
        let disconnected = p.state == proto::participant_info::State::Disconnected as i32;
        if disconnected {
            if let Some(old) = self.participants.remove(&p.sid) {
                for t in old.tracks.keys() {
                    self.emit(EngineEvent::TrackUnpublished {
                        participant_sid: p.sid.clone(),
                        track_sid: t.clone(),
                    });
                }
                self.emit(EngineEvent::ParticipantLeft(old.info));
            }
            return;
        }
        let is_new = !self.participants.contains_key(&p.sid);
        let entry = self
            .participants
            .entry(p.sid.clone())
            .or_insert_with(|| RemoteParticipant {
                info: info.clone(),
                tracks: HashMap::new(),
            });
        let mut out = Vec::new();
        if is_new {
            out.push(EngineEvent::ParticipantJoined(info.clone()));
        } else if entry.info != info {
            entry.info = info.clone();
            out.push(EngineEvent::ParticipantUpdated(info.clone()));
        }
        let mut seen = Vec::with_capacity(p.tracks.len());
        for t in &p.tracks {
            let ti = TrackInfo::from_proto(t);
            seen.push(ti.sid.clone());
            match entry.tracks.get(&ti.sid) {
                None => {
                    out.push(EngineEvent::TrackPublished {
                        participant: info.clone(),
                        track: Box::new(ti.clone()),
                    });
                    entry.tracks.insert(ti.sid.clone(), ti);
                }
                Some(old) if old.muted != ti.muted => {
                    out.push(EngineEvent::TrackMuted {
                        participant_sid: p.sid.clone(),
                        track_sid: ti.sid.clone(),
                        muted: ti.muted,
                    });
                    entry.tracks.insert(ti.sid.clone(), ti);
                }
                Some(_) => {
                    entry.tracks.insert(ti.sid.clone(), ti);
                }
            }
        }
        let gone: Vec<String> = entry
            .tracks
            .keys()
            .filter(|k| !seen.contains(k))
            .cloned()
            .collect();
        for sid in gone {
            entry.tracks.remove(&sid);
            out.push(EngineEvent::TrackUnpublished {
                participant_sid: p.sid.clone(),
                track_sid: sid,
            });
        }
        for ev in out {
            self.emit(ev);
        }
    }
}
