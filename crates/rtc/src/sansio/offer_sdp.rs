//! What our publisher offer changes after str0m wrote it (str0m has one codec configuration
//! per connection, not per m-line): plain Opus for end-to-end encrypted audio, and each video
//! track's codec first in its m-line.
//!
//! RED out of encrypted audio's m-line:
//! A browser's frame decryptor (livekit-client's E2EE worker) is handed the whole RED payload
//! of a RED packet, not the Opus frame inside it, so encrypted audio must travel as plain
//! Opus — livekit-client turns RED off for E2EE for the same reason. str0m offers RED on every
//! audio m-line (one codec configuration per connection), and the server forwards what the
//! publisher negotiated; so the offer's m-lines of encrypted audio lose their RED payload type
//! before it is sent, and the server's answer then has plain Opus there.

use str0m::media::Mid;

use crate::track::MediaCodec;

/// `sdp` with the RED payload type removed from the audio m-lines whose `a=mid` is in `mids`
/// (its `m=` format, `a=rtpmap`, `a=fmtp` and `a=rtcp-fb` lines). Other sections are unchanged.
pub(crate) fn without_red(sdp: &str, mids: &[Mid]) -> String {
    if mids.is_empty() {
        return sdp.to_owned();
    }
    map_sections(sdp, |section| strip_section(section, mids))
}

/// `sdp` with each named video m-line's payload types of `codec` (and their RTX) moved to the
/// front of its `m=` format list, as WebRTC's `setCodecPreferences` does: the server answers
/// with that codec first. Other sections are unchanged.
pub(crate) fn prefer_codecs(sdp: &str, prefs: &[(Mid, MediaCodec)]) -> String {
    if prefs.is_empty() {
        return sdp.to_owned();
    }
    map_sections(sdp, |section| {
        let mid = section
            .iter()
            .find_map(|l| l.strip_prefix("a=mid:"))
            .map(str::trim);
        let codec = prefs
            .iter()
            .find(|(m, _)| Some(&**m) == mid)
            .map(|(_, c)| *c);
        match codec {
            Some(c) if section[0].starts_with("m=video") => reorder(section, c),
            _ => section.iter().map(|l| l.to_string()).collect(),
        }
    })
}

fn reorder(section: &[&str], codec: MediaCodec) -> Vec<String> {
    let name = codec.to_string();
    let wanted: Vec<&str> = section
        .iter()
        .filter_map(|l| l.strip_prefix("a=rtpmap:"))
        .filter_map(|r| r.split_once(' '))
        .filter(|(_, c)| {
            c.split('/')
                .next()
                .is_some_and(|n| n.eq_ignore_ascii_case(&name))
        })
        .map(|(pt, _)| pt)
        .collect();
    // RTX payload types whose `apt=` names one of them.
    let rtx: Vec<&str> = section
        .iter()
        .filter_map(|l| l.strip_prefix("a=fmtp:"))
        .filter_map(|r| r.split_once(' '))
        .filter(|(_, params)| {
            params
                .split(';')
                .filter_map(|p| p.trim().strip_prefix("apt="))
                .any(|apt| wanted.contains(&apt))
        })
        .map(|(pt, _)| pt)
        .collect();
    let mut fields = section[0].split(' ');
    let head: Vec<&str> = fields.by_ref().take(3).collect();
    let formats: Vec<&str> = fields.collect();
    let first = formats
        .iter()
        .filter(|f| wanted.contains(f) || rtx.contains(f));
    let rest = formats
        .iter()
        .filter(|f| !wanted.contains(f) && !rtx.contains(f));
    let mline = head
        .iter()
        .chain(first)
        .chain(rest)
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    std::iter::once(mline)
        .chain(section[1..].iter().map(|l| l.to_string()))
        .collect()
}

/// `sdp` with each section (from one `m=` line to the next) replaced by what `f` makes of it;
/// the session part is kept.
fn map_sections(sdp: &str, mut f: impl FnMut(&[&str]) -> Vec<String>) -> String {
    let eol = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    let lines: Vec<&str> = sdp.lines().collect();
    let mut starts: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("m="))
        .map(|(i, _)| i)
        .collect();
    starts.push(lines.len());
    let mut out: Vec<String> = lines[..starts[0]].iter().map(|l| l.to_string()).collect();
    for w in starts.windows(2) {
        out.extend(f(&lines[w[0]..w[1]]));
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

    const VIDEO: &str = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 100 101\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
        a=sendonly\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
        a=rtpmap:98 VP9/90000\r\na=fmtp:98 profile-id=0\r\na=rtpmap:99 rtx/90000\r\n\
        a=fmtp:99 apt=98\r\na=rtpmap:100 H264/90000\r\n\
        a=fmtp:100 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
        a=rtpmap:101 rtx/90000\r\na=fmtp:101 apt=100\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\n\
        a=sendonly\r\na=rtpmap:96 VP8/90000\r\n";

    #[test]
    fn the_preferred_codec_and_its_rtx_go_first_in_their_section_only() {
        let out = prefer_codecs(VIDEO, &[(Mid::from("0"), MediaCodec::H264)]);
        let sections: Vec<&str> = out.split("m=").collect();
        assert!(
            sections[1].starts_with("video 9 UDP/TLS/RTP/SAVPF 100 101 96 97 98 99\r\n"),
            "{out}"
        );
        assert!(sections[2].starts_with("video 9 UDP/TLS/RTP/SAVPF 96\r\n"));
        let vp9 = prefer_codecs(VIDEO, &[(Mid::from("0"), MediaCodec::Vp9)]);
        assert!(
            vp9.contains("SAVPF 98 99 96 97 100 101\r\nc=IN IP4 0.0.0.0\r\na=mid:0"),
            "{vp9}"
        );
        str0m::change::SdpOffer::from_sdp_string(&out).expect("a valid offer");
        assert_eq!(prefer_codecs(VIDEO, &[]), VIDEO);
        // Audio sections and unknown mids are left alone.
        assert_eq!(
            prefer_codecs(VIDEO, &[(Mid::from("7"), MediaCodec::Vp9)]),
            VIDEO
        );
    }
}
