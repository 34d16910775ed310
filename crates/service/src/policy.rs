//! Access policy: who may join which room as what, decided from grants and the time.
//!
//! Pure logic (no IO): [`decide`] takes the caller's grants and a timestamp, so expiry,
//! not-before and revocation are tested without a clock or a database.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use wavecast_token::{Preset, VideoGrants};

/// Longest room name or pattern accepted (LiveKit itself allows more; nobody needs it).
pub const MAX_ROOM_LEN: usize = 128;

/// The role a grant gives; each maps to a [`Preset`] of LiveKit grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Join and subscribe only.
    Viewer,
    /// A hidden participant that records.
    Recorder,
    /// Join, publish and subscribe.
    Broadcaster,
    /// Room administration (no join).
    Admin,
}

impl Role {
    /// The role's name, as stored and as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Recorder => "recorder",
            Role::Broadcaster => "broadcaster",
            Role::Admin => "admin",
        }
    }

    /// The LiveKit grants a token of this role carries for `room`: the role's [`Preset`], except
    /// that `admin` is **room-scoped** — only `roomAdmin` for `room` (list, remove, mute and update
    /// its participants, update its metadata: what LiveKit checks against the token's room).
    /// `roomCreate` and `roomList` are never minted for a caller: LiveKit checks create, list and
    /// delete without looking at the token's room, so they would give power over every room.
    /// Those stay with the service's own key (the admin key's endpoints, stream lifecycle).
    pub fn grants(self, room: &str) -> VideoGrants {
        match self {
            Role::Admin => VideoGrants {
                room_admin: true,
                room: room.to_owned(),
                ..Default::default()
            },
            other => other.preset().grants(room),
        }
    }

    /// The LiveKit grant preset the role starts from (see [`Role::grants`] for what is minted).
    pub fn preset(self) -> Preset {
        match self {
            Role::Viewer => Preset::Viewer,
            Role::Recorder => Preset::Recorder,
            Role::Broadcaster => Preset::Broadcaster,
            Role::Admin => Preset::Admin,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "recorder" => Ok(Role::Recorder),
            "broadcaster" => Ok(Role::Broadcaster),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role {other:?}: use viewer, broadcaster, admin or recorder"
            )),
        }
    }
}

/// Whom a grant is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Subject {
    /// One user (the `sub` of the caller's JWT).
    User(String),
    /// Everyone whose JWT lists the group.
    Group(String),
}

impl Subject {
    /// `user` or `group`.
    pub fn kind(&self) -> &'static str {
        match self {
            Subject::User(_) => "user",
            Subject::Group(_) => "group",
        }
    }

    /// The user id or group name.
    pub fn name(&self) -> &str {
        match self {
            Subject::User(s) | Subject::Group(s) => s,
        }
    }
}

/// One stored grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Grant id.
    pub id: String,
    /// Whom it is for.
    pub subject: Subject,
    /// Exact room name, or a prefix ending in `*` (`*` alone: every room).
    pub room: String,
    /// The role it gives.
    pub role: Role,
    /// Unix seconds before which it does not apply.
    pub not_before: Option<i64>,
    /// Unix seconds from which it no longer applies.
    pub expires_at: Option<i64>,
    /// Unix seconds when it was revoked.
    pub revoked_at: Option<i64>,
    /// Unix seconds when it was made.
    pub created_at: i64,
}

impl Grant {
    /// Whether the grant's room or pattern covers `room`.
    pub fn covers(&self, room: &str) -> bool {
        match self.room.strip_suffix('*') {
            Some(prefix) => room.starts_with(prefix),
            None => self.room == room,
        }
    }

    /// Why the grant does not apply at `now`, or `None` when it does.
    pub fn refusal_at(&self, now: i64) -> Option<Refusal> {
        if let Some(at) = self.revoked_at {
            return Some(Refusal::Revoked { at });
        }
        if let Some(at) = self.not_before
            && now < at
        {
            return Some(Refusal::NotYetValid { from: at });
        }
        if let Some(at) = self.expires_at
            && now >= at
        {
            return Some(Refusal::Expired { at });
        }
        None
    }
}

/// Why no token is issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// No grant covers the room (for the asked role).
    #[error("no grant gives you access to this room{}", role_note(.role))]
    Missing {
        /// The role asked for, if any.
        role: Option<Role>,
    },
    /// The covering grant was revoked.
    #[error("your grant for this room was revoked at {at} (unix seconds)")]
    Revoked {
        /// When.
        at: i64,
    },
    /// The covering grant has expired.
    #[error("your grant for this room expired at {at} (unix seconds)")]
    Expired {
        /// When.
        at: i64,
    },
    /// The covering grant is not valid yet.
    #[error("your grant for this room is not valid before {from} (unix seconds)")]
    NotYetValid {
        /// From when it applies.
        from: i64,
    },
}

fn role_note(role: &Option<Role>) -> String {
    role.map(|r| format!(" as {r}")).unwrap_or_default()
}

impl Refusal {
    /// A stable machine-readable code for JSON errors.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Missing { .. } => "no_grant",
            Refusal::Revoked { .. } => "grant_revoked",
            Refusal::Expired { .. } => "grant_expired",
            Refusal::NotYetValid { .. } => "grant_not_yet_valid",
        }
    }

    /// Which refusal explains best when several grants fail: a future grant says when access
    /// starts, then an expired one, then a revoked one.
    fn rank(&self) -> u8 {
        match self {
            Refusal::NotYetValid { .. } => 3,
            Refusal::Expired { .. } => 2,
            Refusal::Revoked { .. } => 1,
            Refusal::Missing { .. } => 0,
        }
    }
}

/// Pick the grant that lets the caller into `room` at `now` (the highest role among the valid
/// ones, or exactly `role` when asked), or say why none does.
pub fn decide<'g>(
    grants: &'g [Grant],
    room: &str,
    role: Option<Role>,
    now: i64,
) -> Result<&'g Grant, Refusal> {
    let mut best: Option<&Grant> = None;
    let mut why: Option<Refusal> = None;
    for g in grants
        .iter()
        .filter(|g| g.covers(room) && role.is_none_or(|r| r == g.role))
    {
        match g.refusal_at(now) {
            None => {
                if best.is_none_or(|b| g.role > b.role) {
                    best = Some(g);
                }
            }
            Some(r) => {
                if why.as_ref().is_none_or(|w| r.rank() > w.rank()) {
                    why = Some(r);
                }
            }
        }
    }
    best.ok_or_else(|| why.unwrap_or(Refusal::Missing { role }))
}

/// Check a room name: 1 to [`MAX_ROOM_LEN`] characters from `A-Z a-z 0-9 - _ .`.
pub fn check_room(room: &str) -> Result<(), String> {
    check_name(room, "room", false)
}

/// Check a grant's room pattern: a room name, optionally ending in `*`, or `*` alone.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    check_name(pattern, "room pattern", true)
}

/// Check a user id or group name (the same characters, plus `@`, `:`, `+` and `|`).
pub fn check_subject(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_ROOM_LEN {
        return Err(format!(
            "subject must be 1 to {MAX_ROOM_LEN} bytes long, got {}",
            name.len()
        ));
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.@:+|".contains(*c)))
    {
        Some(c) => Err(format!(
            "subject contains {c:?}: allowed are A-Z a-z 0-9 and - _ . @ : + |"
        )),
        None => Ok(()),
    }
}

fn check_name(s: &str, what: &str, pattern: bool) -> Result<(), String> {
    if s.is_empty() || s.len() > MAX_ROOM_LEN {
        return Err(format!(
            "{what} must be 1 to {MAX_ROOM_LEN} bytes long, got {}",
            s.len()
        ));
    }
    let body = if pattern {
        s.strip_suffix('*').unwrap_or(s)
    } else {
        s
    };
    match body
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.".contains(*c)))
    {
        Some(c) => Err(format!(
            "{what} contains {c:?}: allowed are A-Z a-z 0-9 and - _ .{}",
            if pattern { " (and a final *)" } else { "" }
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(room: &str, role: Role) -> Grant {
        Grant {
            id: format!("{room}-{role}"),
            subject: Subject::User("alice".into()),
            room: room.into(),
            role,
            not_before: None,
            expires_at: None,
            revoked_at: None,
            created_at: 0,
        }
    }

    #[test]
    fn patterns_cover_prefixes_and_exact_names() {
        assert!(grant("demo", Role::Viewer).covers("demo"));
        assert!(!grant("demo", Role::Viewer).covers("demo2"));
        assert!(grant("stream-*", Role::Viewer).covers("stream-abc"));
        assert!(!grant("stream-*", Role::Viewer).covers("other"));
        assert!(grant("*", Role::Viewer).covers("anything"));
    }

    #[test]
    fn highest_valid_role_wins() {
        let gs = [grant("*", Role::Viewer), grant("demo", Role::Broadcaster)];
        assert_eq!(
            decide(&gs, "demo", None, 100).unwrap().role,
            Role::Broadcaster
        );
        assert_eq!(decide(&gs, "other", None, 100).unwrap().role, Role::Viewer);
        assert_eq!(
            decide(&gs, "demo", Some(Role::Viewer), 100).unwrap().role,
            Role::Viewer
        );
        assert_eq!(
            decide(&gs, "other", Some(Role::Admin), 100),
            Err(Refusal::Missing {
                role: Some(Role::Admin)
            })
        );
    }

    // The chat seed's bug: an expired grant still let its holder in.
    #[test]
    fn expired_grant_is_refused_at_and_after_expiry() {
        let mut g = grant("demo", Role::Viewer);
        g.expires_at = Some(1000);
        let gs = [g];
        assert!(decide(&gs, "demo", None, 999).is_ok());
        assert_eq!(
            decide(&gs, "demo", None, 1000),
            Err(Refusal::Expired { at: 1000 })
        );
        assert_eq!(
            decide(&gs, "demo", None, 5000),
            Err(Refusal::Expired { at: 1000 })
        );
    }

    #[test]
    fn revoked_and_future_grants_are_refused_with_their_reason() {
        let mut r = grant("demo", Role::Viewer);
        r.revoked_at = Some(50);
        let mut f = grant("demo", Role::Broadcaster);
        f.not_before = Some(200);
        assert_eq!(
            decide(std::slice::from_ref(&r), "demo", None, 100),
            Err(Refusal::Revoked { at: 50 })
        );
        assert_eq!(
            decide(&[r.clone(), f.clone()], "demo", None, 100),
            Err(Refusal::NotYetValid { from: 200 })
        );
        assert_eq!(
            decide(&[r, f], "demo", None, 200).unwrap().role,
            Role::Broadcaster
        );
        assert_eq!(
            decide(&[], "demo", None, 0),
            Err(Refusal::Missing { role: None })
        );
    }

    #[test]
    fn names_are_checked() {
        assert!(check_room("stream-1_a.b").is_ok());
        assert!(check_room("").is_err());
        assert!(check_room(&"a".repeat(MAX_ROOM_LEN + 1)).is_err());
        assert!(check_room("x'; DROP TABLE grants; --").is_err());
        assert!(check_room("a*").is_err());
        assert!(check_pattern("a*").is_ok());
        assert!(check_pattern("*").is_ok());
        assert!(check_pattern("a*b").is_err());
        assert!(check_subject("alice@example.org").is_ok());
        assert!(check_subject("robert'); --").is_err());
    }

    #[test]
    fn admin_role_mints_only_room_scoped_powers() {
        let g = Role::Admin.grants("a");
        assert!(g.room_admin && g.room == "a");
        assert!(!g.room_create && !g.room_list && !g.room_join, "{g:?}");
        assert_eq!(Role::Viewer.grants("a"), Preset::Viewer.grants("a"));
    }
}
