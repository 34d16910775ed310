//! Who joins which room through which URL (pure; unit-tested).

use crate::config::LoadTestConfig;

/// One participant the load test will join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    /// `pub-<i>` or `sub-<j>`.
    pub(crate) identity: String,
    /// `<prefix>-<room>`.
    pub(crate) room: String,
    /// Index of the room.
    pub(crate) room_index: usize,
    /// The URL this member joins through.
    pub(crate) url: String,
}

/// Every publisher and subscriber, in join order (publishers first).
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) publishers: Vec<Member>,
    pub(crate) subscribers: Vec<Member>,
    /// Publishers per room.
    pub(crate) publishers_in_room: Vec<usize>,
}

/// Publisher `i` and subscriber `j` go to rooms `i % R` and `j % R`. Within a room the members
/// take the URLs in turn, starting one further per room, so with several nodes every room has
/// members on different nodes.
pub(crate) fn plan(config: &LoadTestConfig) -> Plan {
    let urls: Vec<&str> = config.urls().collect();
    let rooms = config.rooms.max(1);
    let mut members_in_room = vec![0usize; rooms];
    let mut member = |identity: String, r: usize| {
        let url = urls[(r + members_in_room[r]) % urls.len()].to_owned();
        members_in_room[r] += 1;
        Member {
            identity,
            room: format!("{}-{r}", config.room_prefix),
            room_index: r,
            url,
        }
    };
    let publishers: Vec<Member> = (0..config.publishers)
        .map(|i| member(format!("pub-{i}"), i % rooms))
        .collect();
    let subscribers = (0..config.subscribers)
        .map(|j| member(format!("sub-{j}"), j % rooms))
        .collect();
    let mut publishers_in_room = vec![0; rooms];
    for p in &publishers {
        publishers_in_room[p.room_index] += 1;
    }
    Plan {
        publishers,
        subscribers,
        publishers_in_room,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wavecast_token::Keys;

    #[test]
    fn spreads_rooms_and_alternates_urls_within_a_room() {
        let mut c = LoadTestConfig::new("ws://a", Keys::new("k", "s"));
        c.extra_urls = vec!["ws://b".into()];
        c.publishers = 2;
        c.subscribers = 6;
        c.rooms = 2;
        let p = plan(&c);
        assert_eq!(p.publishers_in_room, vec![1, 1]);
        assert_eq!(p.publishers[0].room, "load-0");
        assert_eq!(p.publishers[1].room, "load-1");
        assert_eq!(p.subscribers[3].identity, "sub-3");
        assert_eq!(p.subscribers[3].room, "load-1");
        for r in 0..2 {
            let urls: std::collections::HashSet<&str> = p
                .publishers
                .iter()
                .chain(&p.subscribers)
                .filter(|m| m.room_index == r)
                .map(|m| m.url.as_str())
                .collect();
            assert_eq!(urls.len(), 2, "room {r} uses both nodes");
        }
    }

    #[test]
    fn one_url_for_everybody_without_extra_urls() {
        let c = LoadTestConfig::new("ws://a", Keys::new("k", "s"));
        let p = plan(&c);
        assert!(p.subscribers.iter().all(|m| m.url == "ws://a"));
        assert_eq!(p.subscribers.len(), 10);
    }
}
