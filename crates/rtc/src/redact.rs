//! Redaction of secrets in text that goes to logs: ICE passwords in SDPs, SDES keys, access
//! tokens (JWTs, `access_token=` URL parameters, `Bearer` headers).
//!
//! Log the [`Redacted`] wrapper instead of the raw text; it formats lazily, so a disabled log
//! level costs nothing:
//!
//! ```
//! use wavecast_rtc::redact::{Redacted, token};
//!
//! let sdp = "v=0\r\na=ice-ufrag:Xy12\r\na=ice-pwd:QhC1dnU0Y8Xi4M0Ow3Hr7rNU\r\n";
//! let shown = Redacted(sdp).to_string();
//! assert!(shown.contains("a=ice-ufrag:Xy12"));
//! assert!(shown.contains("a=ice-pwd:[redacted]"));
//! assert!(!shown.contains("QhC1dnU0"));
//!
//! let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
//! assert_eq!(token(jwt), "[token redacted, 54 bytes]");
//! let url = format!("ws://127.0.0.1:7880/rtc?access_token={jwt}&auto_subscribe=1");
//! assert_eq!(
//!     Redacted(&url).to_string(),
//!     "ws://127.0.0.1:7880/rtc?access_token=[redacted]&auto_subscribe=1"
//! );
//! ```
//!
//! # Design
//! A single left-to-right scan with no allocation when nothing needs redacting ([`text`] returns
//! the input borrowed). Values are recognised by their markers, not by guessing at entropy:
//! `ice-pwd:` followed by ICE characters (RFC 8839: letters, digits, `+`, `/`), `inline:` keys
//! of `a=crypto` lines, TURN `credential: "…"` in `Debug` output, `access_token=`/`token=` parameters, `Bearer ` credentials, and
//! anything shaped like a compact JWT (`eyJ…` `.` `…` `.` `…`). The markers also match inside
//! `Debug` output of messages (escaped `\r\n` ends an ICE password), so a whole protobuf message
//! can be passed through [`text`].

use std::borrow::Cow;
use std::fmt;

/// What replaces a secret value.
pub const REDACTED: &str = "[redacted]";
/// What replaces a JWT found in free text.
pub const REDACTED_TOKEN: &str = "[redacted token]";

/// A token, for logs: only its length, nothing of its content.
pub fn token(token: &str) -> String {
    format!("[token redacted, {} bytes]", token.len())
}

/// Text (an SDP, a URL, a message's `Debug` output) with every secret this module knows replaced.
/// Borrowed when there was nothing to redact.
pub fn text(s: &str) -> Cow<'_, str> {
    let mut out: Option<String> = None;
    let bytes = s.as_bytes();
    // Start of the part of `s` not yet copied to `out`.
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let Some((skip, end, replacement)) = secret_at(s, i) else {
            i += 1;
            continue;
        };
        // `skip` bytes of marker stay, `skip..end` is the secret.
        let o = out.get_or_insert_with(|| String::with_capacity(s.len()));
        o.push_str(&s[copied..i + skip]);
        o.push_str(replacement);
        copied = end;
        i = end.max(i + 1);
    }
    match out {
        None => Cow::Borrowed(s),
        Some(mut o) => {
            o.push_str(&s[copied..]);
            Cow::Owned(o)
        }
    }
}

/// `text` lazily: `debug!("offer:\n{}", Redacted(&sdp))`.
#[derive(Clone, Copy)]
pub struct Redacted<'a>(pub &'a str);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&text(self.0))
    }
}

/// An [`std::io::Write`] that passes text through [`text`] on its way to `W`: the writer of a
/// log subscriber, so that no line from any crate — ours or a dependency's, at any level —
/// carries a secret this module knows (str0m traces its ICE credentials, tungstenite its
/// handshake with the bearer token).
///
/// Each `write` is redacted on its own; `tracing-subscriber`'s fmt layer writes a whole event
/// at once, so a secret is never split:
///
/// ```
/// use std::io::Write;
/// let mut out = wavecast_rtc::redact::RedactingWriter(Vec::new());
/// out.write_all(b"Request: GET /rtc authorization: Bearer abc.def\n").unwrap();
/// assert_eq!(String::from_utf8(out.0).unwrap(), "Request: GET /rtc authorization: Bearer [redacted]\n");
/// ```
#[derive(Debug)]
pub struct RedactingWriter<W>(pub W);

impl<W: std::io::Write> std::io::Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let shown = String::from_utf8_lossy(buf);
        self.0.write_all(text(&shown).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*text(self.0), f)
    }
}

/// Markers whose following value is a secret, with the length of the value that follows.
/// Measures the secret value that follows a marker (bytes).
type ValueLen = fn(&[u8]) -> usize;

const MARKERS: [(&str, ValueLen); 8] = [
    ("ice-pwd:", |b| run(b, is_ice_char)),
    // str0m's `IceCreds { ufrag, pass }` in `Debug` output (its trace of ICE restarts).
    ("pass: \"", quoted),
    // TURN credentials in `Debug` output of `ICEServer` (join and reconnect responses).
    ("credential: \"", quoted),
    ("inline:", |b| run(b, is_key_char)),
    ("access_token=", |b| run(b, is_param_char)),
    ("token=", |b| run(b, is_param_char)),
    ("Bearer ", |b| run(b, is_param_char)),
    ("bearer ", |b| run(b, is_param_char)),
];

fn run(b: &[u8], allowed: fn(u8) -> bool) -> usize {
    b.iter().take_while(|&&c| allowed(c)).count()
}

/// The rest of a `Debug`-quoted string, up to its unescaped closing quote.
fn quoted(b: &[u8]) -> usize {
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' | b'\n' | b'\r' => return i,
            // An escape and the byte it escapes (ASCII in `Debug` output: `\"`, `\\`, `\u{..}`).
            b'\\' => i = (i + 2).min(b.len()),
            _ => i += 1,
        }
    }
    b.len()
}

/// ICE characters (RFC 8839 `ice-char`).
fn is_ice_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

/// SDES `key-params` up to the next separator (`|` lifetime, `;`, whitespace).
fn is_key_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='
}

/// A URL parameter or header value: up to `&`, whitespace, quotes or an escape.
fn is_param_char(b: u8) -> bool {
    !(b.is_ascii_whitespace() || matches!(b, b'&' | b'"' | b'\'' | b'\\' | b',' | b';' | b'#'))
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// A secret starting at byte `i`: (marker length kept, end of the secret, replacement).
fn secret_at(s: &str, i: usize) -> Option<(usize, usize, &'static str)> {
    let rest = &s.as_bytes()[i..];
    for (marker, value_len) in MARKERS {
        if rest.starts_with(marker.as_bytes()) {
            let after = &rest[marker.len()..];
            // A JWT right after any marker goes whole, even where the marker's own value
            // characters would stop at its first `.`.
            let value = value_len(after).max(jwt_at(after).unwrap_or(0));
            // Leave a marker with no value alone, and never re-redact our own placeholder.
            if value == 0 || rest[marker.len()..].starts_with(b"[redacted") {
                return None;
            }
            // A value ends at an ASCII byte or at the end of `s` (the bytes of a multi-byte
            // character are all allowed or all refused together, and an escape is followed by
            // an ASCII byte), so `end` is a char boundary.
            return Some((marker.len(), i + marker.len() + value, REDACTED));
        }
    }
    jwt_at(rest).map(|len| (0, i + len, REDACTED_TOKEN))
}

/// Length of a compact JWT starting at the beginning of `b` (`eyJ` = base64 of `{"`).
fn jwt_at(b: &[u8]) -> Option<usize> {
    if !b.starts_with(b"eyJ") {
        return None;
    }
    let mut end = 0;
    for segment in 0..3 {
        let len = b[end..].iter().take_while(|&&c| is_b64url(c)).count();
        if len == 0 && segment < 2 {
            return None;
        }
        end += len;
        if segment < 2 {
            if b.get(end) != Some(&b'.') {
                return None;
            }
            end += 1;
        }
    }
    Some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice_password_in_sdp_and_in_debug_output() {
        let sdp = "a=ice-ufrag:abcd\r\na=ice-pwd:n0t+S3cret/Value1234567\r\na=mid:0\r\n";
        let r = text(sdp);
        assert_eq!(r, "a=ice-ufrag:abcd\r\na=ice-pwd:[redacted]\r\na=mid:0\r\n");
        // `Debug` of a message holding the SDP escapes the line ends.
        let dbg = format!("{:?}", sdp);
        let r = text(&dbg);
        assert!(!r.contains("S3cret"), "{r}");
        assert!(r.contains("a=ice-pwd:[redacted]\\r\\na=mid:0"), "{r}");
    }

    #[test]
    fn tokens_in_urls_headers_and_free_text() {
        let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJkZXZrZXkifQ.AbC-_x9";
        assert_eq!(
            text(&format!("joining with {jwt}.")),
            "joining with [redacted token]."
        );
        assert_eq!(
            text(&format!("Authorization: Bearer {jwt}")),
            "Authorization: Bearer [redacted]"
        );
        assert_eq!(text("/rtc?token=abc&x=1"), "/rtc?token=[redacted]&x=1");
        assert_eq!(
            text(r#"IceRestart(IceCreds { ufrag: "8Yqov9", pass: "O0OGpYAQz8dD" })"#),
            r#"IceRestart(IceCreds { ufrag: "8Yqov9", pass: "[redacted]" })"#
        );
        assert_eq!(
            text(r#"ICEServer { urls: ["turn:x"], username: "u", credential: "s3cr\"et" }"#),
            r#"ICEServer { urls: ["turn:x"], username: "u", credential: "[redacted]" }"#
        );
        assert_eq!(
            text(
                "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32"
            ),
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:[redacted]|2^20|1:32"
        );
    }

    #[test]
    fn text_without_secrets_is_borrowed_and_markers_without_values_stay() {
        for s in [
            "",
            "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\n",
            "a=ice-pwd:\r\n",
            "token=",
            "eyJ.only",
            "eyJabc.def",
            "ünïcödé ice-pwd: x",
        ] {
            assert!(matches!(text(s), Cow::Borrowed(_)), "{s:?}");
        }
    }

    #[test]
    fn redacting_twice_changes_nothing_more() {
        let s = "a=ice-pwd:abc token=xyz eyJa.b.c inline:k==";
        let once = text(s).into_owned();
        assert_eq!(text(&once), once);
        assert!(matches!(text(&once), Cow::Borrowed(_)));
    }
}
