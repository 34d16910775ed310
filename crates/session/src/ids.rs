//! Typed ids, as the official SDKs have them: a participant's identity (from its token, stable),
//! its sid (server-assigned, new on every join) and a track's sid are different things, and the
//! types keep them apart.
//!
//! Each is a string underneath: it reads as `&str` (`Deref`, `AsRef`, `Borrow`, so maps keyed by
//! it are searched with a `&str`), prints as itself and compares with strings.
//!
//! ```
//! use wavecast_session::{ParticipantIdentity, TrackSid};
//! let alice = ParticipantIdentity::from("alice");
//! assert_eq!(alice, "alice");
//! assert_eq!(alice.as_str().len(), 5);
//! let sid: TrackSid = "TR_abc".into();
//! assert!(sid.starts_with("TR_"));
//! ```

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The id from its text.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id's text, owned.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&self.0, f)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl From<&String> for $name {
            fn from(s: &String) -> Self {
                Self(s.clone())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }
    };
}

id_type!(
    /// A participant's identity: the `sub` of its token, chosen by whoever minted it. Stable
    /// across rejoins; unique in a room.
    ParticipantIdentity
);
id_type!(
    /// A participant's server-assigned sid (`PA_…`): new on every join, so it names one visit.
    ParticipantSid
);
id_type!(
    /// A track publication's server-assigned sid (`TR_…`).
    TrackSid
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn ids_read_and_compare_as_their_text() {
        let id = ParticipantIdentity::new("bob");
        assert_eq!(id, "bob");
        assert_eq!("bob", id);
        assert_eq!(id, String::from("bob"));
        assert_eq!(id.to_string(), "bob");
        assert_eq!(format!("{id:?}"), "\"bob\"");
        let mut by_sid = BTreeMap::new();
        by_sid.insert(TrackSid::from("TR_1"), 1);
        assert_eq!(by_sid.get("TR_1"), Some(&1), "maps are searched by &str");
        assert_eq!(String::from(TrackSid::from("TR_2")), "TR_2");
    }
}
