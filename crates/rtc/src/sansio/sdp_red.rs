//! Plain Opus for end-to-end encrypted audio: RED taken out of its m-line in our publisher
//! offer.
//!
//! A browser's frame decryptor (livekit-client's E2EE worker) is handed the whole RED payload
//! of a RED packet, not the Opus frame inside it, so encrypted audio must travel as plain
//! Opus — livekit-client turns RED off for E2EE for the same reason. str0m offers RED on every
//! audio m-line (one codec configuration per connection), and the server forwards what the
//! publisher negotiated; so the offer's m-lines of encrypted audio lose their RED payload type
//! before it is sent, and the server's answer then has plain Opus there.

use str0m::media::Mid;

/// `sdp` with the RED payload type removed from the audio m-lines whose `a=mid` is in `mids`
/// (its `m=` format, `a=rtpmap`, `a=fmtp` and `a=rtcp-fb` lines). Other sections are unchanged.
pub(crate) fn without_red(sdp: &str, mids: &[Mid]) -> String {
    if mids.is_empty() {
        return sdp.to_owned();
    }
    let eol = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    let lines: Vec<&str> = sdp.lines().collect();
    // Sections: the session part, then one per `m=` line.
    let mut starts: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("m="))
        .map(|(i, _)| i)
        .collect();
    starts.push(lines.len());
    let mut out: Vec<String> = lines[..starts[0]].iter().map(|l| l.to_string()).collect();
    for w in starts.windows(2) {
        let section = &lines[w[0]..w[1]];
        out.extend(strip_section(section, mids));
    }
    let mut s = out.join(eol);
    s.push_str(eol);
    s
}

fn strip_section(section: &[&str], mids: &[Mid]) -> Vec<String> {
    let keep = || section.iter().map(|l| l.to_string()).collect();
    if !section[0].starts_with("m=audio") {
        return keep();
    }
    let ours = section.iter().any(|l| {
        l.strip_prefix("a=mid:")
            .is_some_and(|m| mids.iter().any(|x| **x == *m.trim()))
    });
    if !ours {
        return keep();
    }
    let red: Vec<&str> = section
        .iter()
        .filter_map(|l| l.strip_prefix("a=rtpmap:"))
        .filter_map(|r| {
            let (pt, codec) = r.split_once(' ')?;
            codec.to_ascii_lowercase().starts_with("red/").then_some(pt)
        })
        .collect();
    if red.is_empty() {
        return keep();
    }
    let names_red = |l: &str| {
        ["a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"].iter().any(|p| {
            l.strip_prefix(p)
                .and_then(|r| r.split([' ', ':']).next())
                .is_some_and(|pt| red.contains(&pt))
        })
    };
    let mut out = Vec::with_capacity(section.len());
    for (i, l) in section.iter().enumerate() {
        if i == 0 {
            // m=audio PORT PROTO FMT…: the formats after the third field.
            let mut fields = l.split(' ');
            let head: Vec<&str> = fields.by_ref().take(3).collect();
            let formats: Vec<&str> = fields.filter(|f| !red.contains(f)).collect();
            out.push([head, formats].concat().join(" "));
        } else if !names_red(l) {
            out.push(l.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 63 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\n\
        a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\na=rtpmap:111 opus/48000/2\r\n\
        a=fmtp:111 minptime=10;useinbandfec=1\r\na=rtcp-fb:111 transport-cc\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 63 111\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendonly\r\n\
        a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\na=rtpmap:111 opus/48000/2\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\n";

    #[test]
    fn red_leaves_only_the_named_audio_sections() {
        let out = without_red(OFFER, &[Mid::from("1")]);
        let sections: Vec<&str> = out.split("m=").collect();
        // Session part and mid 0 as they were; mid 1 plain Opus; video untouched.
        assert!(sections[1].contains("a=rtpmap:63 red/48000/2"), "{out}");
        assert!(sections[1].starts_with("audio 9 UDP/TLS/RTP/SAVPF 63 111"));
        assert!(
            sections[2].starts_with("audio 9 UDP/TLS/RTP/SAVPF 111\r\n"),
            "{out}"
        );
        assert!(
            !sections[2].contains("red/") && !sections[2].contains("a=fmtp:63"),
            "{out}"
        );
        assert!(sections[2].contains("a=rtpmap:111 opus/48000/2"), "{out}");
        assert!(sections[3].contains("a=rtpmap:96 VP8/90000"));
        assert!(out.ends_with("\r\n") && !out.contains("\r\n\r\n"));
        assert!(out.starts_with("v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\n"));
        // It still parses, and nothing changes without mids.
        str0m::change::SdpOffer::from_sdp_string(&out).expect("a valid offer");
        assert_eq!(without_red(OFFER, &[]), OFFER);
    }
}
