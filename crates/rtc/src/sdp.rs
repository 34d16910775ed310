//! The few facts the engine reads from a remote SDP itself: per media section its mid, kind,
//! direction, msid and SSRCs. str0m negotiates; this only maps sections to LiveKit tracks.

/// Kind of an m-section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SectionKind {
    Audio,
    Video,
    Application,
    Other,
}

/// One m-section of a remote description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Section {
    pub kind: SectionKind,
    pub mid: String,
    /// The direction as written by the remote side (`sendonly`, `recvonly`, `sendrecv`, `inactive`).
    pub direction: String,
    /// `a=msid:<stream> <track>`; LiveKit writes `<participantSid>|<trackSid>` as stream and the
    /// track sid (`TR_…`) as track.
    pub msid: Option<(String, String)>,
    /// SSRCs from `a=ssrc:` lines, first one is the media SSRC.
    pub ssrcs: Vec<u32>,
    /// Port 0 marks a rejected or stopped section.
    pub port_zero: bool,
}

impl Section {
    /// Whether the remote side sends media in this section.
    pub fn remote_sends(&self) -> bool {
        !self.port_zero && matches!(self.direction.as_str(), "sendonly" | "sendrecv")
    }

    /// The LiveKit track sid this section carries, when the remote side sends.
    pub fn track_sid(&self) -> Option<&str> {
        let (stream, track) = self.msid.as_ref()?;
        // `<participantSid>|<trackSid>` in the stream id; the track id is the track sid too.
        if track.starts_with("TR_") {
            return Some(track);
        }
        stream.split_once('|').map(|(_, t)| t)
    }

    /// The participant sid from the msid stream id, when present.
    pub fn participant_sid(&self) -> Option<&str> {
        let (stream, _) = self.msid.as_ref()?;
        stream.split_once('|').map(|(p, _)| p)
    }
}

/// Split an SDP into its m-sections.
pub(crate) fn sections(sdp: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for raw in sdp.lines() {
        let line = raw.trim_end();
        if let Some(rest) = line.strip_prefix("m=") {
            let mut parts = rest.split_whitespace();
            let kind = match parts.next() {
                Some("audio") => SectionKind::Audio,
                Some("video") => SectionKind::Video,
                Some("application") => SectionKind::Application,
                _ => SectionKind::Other,
            };
            let port_zero = parts.next() == Some("0");
            out.push(Section {
                kind,
                mid: String::new(),
                direction: "sendrecv".into(),
                msid: None,
                ssrcs: Vec::new(),
                port_zero,
            });
            continue;
        }
        let Some(cur) = out.last_mut() else { continue };
        if let Some(mid) = line.strip_prefix("a=mid:") {
            cur.mid = mid.to_owned();
        } else if let Some(msid) = line.strip_prefix("a=msid:") {
            let mut p = msid.split_whitespace();
            if let (Some(s), Some(t)) = (p.next(), p.next()) {
                cur.msid = Some((s.to_owned(), t.to_owned()));
            }
        } else if let Some(ssrc) = line.strip_prefix("a=ssrc:") {
            let mut p = ssrc.split_whitespace();
            let num = p.next().and_then(|n| n.parse::<u32>().ok());
            if let Some(num) = num {
                if !cur.ssrcs.contains(&num) {
                    cur.ssrcs.push(num);
                }
                // `a=ssrc:N msid:<stream> <track>` is the older form of msid.
                if cur.msid.is_none()
                    && let Some(rest) = p.next().and_then(|a| a.strip_prefix("msid:"))
                    && let Some(t) = p.next()
                {
                    cur.msid = Some((rest.to_owned(), t.to_owned()));
                }
            }
        } else if matches!(
            line,
            "a=sendonly" | "a=recvonly" | "a=sendrecv" | "a=inactive"
        ) {
            cur.direction = line[2..].to_owned();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:0\r\na=sendrecv\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 63 111\r\na=mid:1\r\na=sendonly\r\n\
a=msid:PA_abc|TR_xyz TR_xyz\r\na=ssrc:1234 cname:x\r\na=ssrc:1234 msid:PA_abc|TR_xyz TR_xyz\r\n\
m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=inactive\r\n";

    #[test]
    fn parses_mid_msid_ssrc_and_direction() {
        let s = sections(OFFER);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].kind, SectionKind::Application);
        assert_eq!(s[1].mid, "1");
        assert!(s[1].remote_sends());
        assert_eq!(s[1].track_sid(), Some("TR_xyz"));
        assert_eq!(s[1].participant_sid(), Some("PA_abc"));
        assert_eq!(s[1].ssrcs, vec![1234]);
        assert!(!s[2].remote_sends());
        assert!(s[2].port_zero);
    }
}
