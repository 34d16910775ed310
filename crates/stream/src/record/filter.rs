//! Which participants and tracks to record.

use super::RecordError;

/// Participant identities and track names to record. A pattern is an exact name, or a prefix
/// followed by `*`; an empty list matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackFilter {
    participants: Vec<String>,
    tracks: Vec<String>,
}

fn check(what: &'static str, patterns: &[String]) -> Result<(), RecordError> {
    for p in patterns {
        let star = p.find('*');
        if p.is_empty() || star.is_some_and(|i| i != p.len() - 1) {
            return Err(RecordError::Filter {
                what,
                pattern: p.clone(),
                reason: "a name, or a prefix followed by one `*` at the end".into(),
            });
        }
    }
    Ok(())
}

fn matches(patterns: &[String], name: &str) -> bool {
    patterns.is_empty()
        || patterns.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => p == name,
        })
}

impl TrackFilter {
    /// A filter on participant identities and track names (`*` only as the last character).
    pub fn new(participants: Vec<String>, tracks: Vec<String>) -> Result<Self, RecordError> {
        check("participant", &participants)?;
        check("track", &tracks)?;
        Ok(Self {
            participants,
            tracks,
        })
    }

    /// Whether track `name` of participant `identity` is recorded.
    pub fn matches(&self, identity: &str, name: &str) -> bool {
        matches(&self.participants, identity) && matches(&self.tracks, name)
    }

    /// The participant patterns.
    pub fn participants(&self) -> &[String] {
        &self.participants
    }

    /// The track patterns.
    pub fn tracks(&self) -> &[String] {
        &self.tracks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_prefix_patterns() {
        let f =
            TrackFilter::new(vec!["ada".into(), "guest-*".into()], vec!["cam*".into()]).unwrap();
        assert!(f.matches("ada", "camera"));
        assert!(f.matches("guest-7", "cam"));
        assert!(!f.matches("adam", "camera"));
        assert!(!f.matches("ada", "mic"));
        assert!(TrackFilter::default().matches("anyone", "anything"));
    }

    #[test]
    fn bad_patterns_name_themselves() {
        let e = TrackFilter::new(vec!["a*b".into()], vec![]).unwrap_err();
        assert!(e.to_string().contains("a*b"), "{e}");
        assert!(TrackFilter::new(vec![], vec![String::new()]).is_err());
    }
}
