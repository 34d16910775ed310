//! Requests the server answers by request id: updating our own name, metadata and attributes
//! (`UpdateParticipantMetadata`, answered by `RequestResponse`).
//!
//! As in the official SDKs, an update is done when the server says OK or when our own
//! participant info shows the requested values, and fails with the server's reason, or when
//! neither came within [`REQUEST_TIMEOUT`].

use std::collections::BTreeMap;

use super::*;

/// How long an update waits for the server (the SDKs wait 5 s).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What to change on our own participant; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParticipantUpdate {
    /// The new display name.
    pub name: Option<String>,
    /// The new metadata.
    pub metadata: Option<String>,
    /// Attributes to set; an empty value removes the key. Keys not named stay as they are.
    pub attributes: Option<BTreeMap<String, String>>,
}

impl ParticipantUpdate {
    /// Whether `p` shows every requested value.
    pub fn is_applied(&self, p: &Participant) -> bool {
        self.name.as_ref().is_none_or(|n| *n == p.name)
            && self.metadata.as_ref().is_none_or(|m| *m == p.metadata)
            && self.attributes.as_ref().is_none_or(|a| {
                a.iter().all(|(k, v)| {
                    let now = p.attributes.get(k).map(String::as_str).unwrap_or("");
                    now == v
                })
            })
    }

    /// `p` with the requested values applied.
    pub fn apply(&self, p: &Participant) -> Participant {
        let mut p = p.clone();
        if let Some(n) = &self.name {
            p.name = n.clone();
        }
        if let Some(m) = &self.metadata {
            p.metadata = m.clone();
        }
        for (k, v) in self.attributes.iter().flatten() {
            if v.is_empty() {
                p.attributes.remove(k);
            } else {
                p.attributes.insert(k.clone(), v.clone());
            }
        }
        p
    }
}

pub(super) struct PendingUpdate {
    request_id: u32,
    update: ParticipantUpdate,
    reply: Reply<()>,
    deadline: Instant,
}

impl Core {
    pub(super) fn update_participant(&mut self, update: ParticipantUpdate, reply: Reply<()>) {
        self.next_request_id = self.next_request_id.wrapping_add(1).max(1);
        let request_id = self.next_request_id;
        self.send_signal(proto::signal_request::Message::UpdateMetadata(
            proto::UpdateParticipantMetadata {
                name: update.name.clone().unwrap_or_default(),
                metadata: update.metadata.clone().unwrap_or_default(),
                attributes: update
                    .attributes
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
                request_id,
            },
        ));
        self.pending_updates.push(PendingUpdate {
            request_id,
            update,
            reply,
            deadline: self.now + REQUEST_TIMEOUT,
        });
    }

    /// The server's answer to a request of ours.
    pub(super) fn on_request_response(&mut self, r: proto::RequestResponse) {
        let Some(i) = self
            .pending_updates
            .iter()
            .position(|p| p.request_id == r.request_id)
        else {
            if let Some(reason) = RequestRefusal::from_proto(r.reason) {
                warn!(
                    "the server refused request {}: {reason} {}",
                    r.request_id, r.message
                );
            }
            return;
        };
        if r.reason == proto::request_response::Reason::Queued as i32 {
            return; // an answer follows
        }
        let p = self.pending_updates.swap_remove(i);
        match RequestRefusal::from_proto(r.reason) {
            None => {
                // Confirmed: our own state shows it now, even if the participant update that
                // says so comes later.
                let updated = p.update.apply(&self.local);
                self.set_local(updated);
                (p.reply)(Ok(()));
            }
            Some(reason) => (p.reply)(Err(EngineError::RequestRefused {
                request: "the participant update",
                reason,
                message: r.message,
            })),
        }
    }

    /// The server's view of ourselves: keep it, report a change, finish updates it shows.
    pub(super) fn on_local_participant(&mut self, p: &proto::ParticipantInfo) {
        self.set_local(Participant::from_proto(p));
        let local = self.local.clone();
        let mut i = 0;
        while i < self.pending_updates.len() {
            if self.pending_updates[i].update.is_applied(&local) {
                let p = self.pending_updates.swap_remove(i);
                (p.reply)(Ok(()));
            } else {
                i += 1;
            }
        }
    }

    fn set_local(&mut self, p: Participant) {
        if p != self.local {
            self.local = p.clone();
            self.emit(EngineEvent::LocalParticipantUpdated(p));
        }
    }

    pub(super) fn expire_pending_updates(&mut self) {
        let now = self.now;
        let mut i = 0;
        while i < self.pending_updates.len() {
            if self.pending_updates[i].deadline <= now {
                let p = self.pending_updates.swap_remove(i);
                (p.reply)(Err(EngineError::RequestTimeout {
                    request: "the participant update",
                    timeout_ms: REQUEST_TIMEOUT.as_millis() as u64,
                }));
            } else {
                i += 1;
            }
        }
    }

    pub(super) fn pending_updates_deadline(&self) -> Option<Instant> {
        self.pending_updates.iter().map(|p| p.deadline).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_is_applied_when_every_requested_value_shows() {
        let p = Participant {
            name: "a".into(),
            attributes: [("k".to_owned(), "v".to_owned())].into(),
            ..Default::default()
        };
        let u = ParticipantUpdate {
            name: Some("b".into()),
            attributes: Some([("k".to_owned(), String::new()), ("n".into(), "1".into())].into()),
            ..Default::default()
        };
        assert!(!u.is_applied(&p));
        let q = u.apply(&p);
        assert_eq!(q.name, "b");
        assert_eq!(q.attributes, [("n".to_owned(), "1".to_owned())].into());
        assert!(u.is_applied(&q), "an empty value means removed");
        assert!(ParticipantUpdate::default().is_applied(&p));
    }
}
