//! Either participant, as the SDKs' `Participant` enum: events about names, metadata and
//! attributes concern ourselves as well as the others.

use std::collections::BTreeMap;

use super::local::LocalParticipant;
use super::roster::RemoteParticipant;
use crate::ids::ParticipantIdentity;

/// A participant of the room: ourselves or another.
#[derive(Debug, Clone)]
pub enum Participant {
    /// Ourselves.
    Local(LocalParticipant),
    /// Someone else.
    Remote(RemoteParticipant),
}

impl Participant {
    /// The identity.
    pub fn identity(&self) -> ParticipantIdentity {
        match self {
            Participant::Local(p) => p.identity().clone(),
            Participant::Remote(p) => p.identity().clone(),
        }
    }

    /// The display name now.
    pub fn name(&self) -> String {
        match self {
            Participant::Local(p) => p.name(),
            Participant::Remote(p) => p.name(),
        }
    }

    /// The metadata now.
    pub fn metadata(&self) -> String {
        match self {
            Participant::Local(p) => p.metadata(),
            Participant::Remote(p) => p.metadata(),
        }
    }

    /// The attributes now.
    pub fn attributes(&self) -> BTreeMap<String, String> {
        match self {
            Participant::Local(p) => p.attributes(),
            Participant::Remote(p) => p.attributes(),
        }
    }

    /// Whether it is ourselves.
    pub fn is_local(&self) -> bool {
        matches!(self, Participant::Local(_))
    }

    /// The remote participant, if it is one.
    pub fn as_remote(&self) -> Option<&RemoteParticipant> {
        match self {
            Participant::Remote(p) => Some(p),
            Participant::Local(_) => None,
        }
    }
}

impl From<RemoteParticipant> for Participant {
    fn from(p: RemoteParticipant) -> Self {
        Participant::Remote(p)
    }
}

impl From<LocalParticipant> for Participant {
    fn from(p: LocalParticipant) -> Self {
        Participant::Local(p)
    }
}
