//! Property tests for token verification: arbitrary strings and mutated real tokens are refused
//! with an error (never a panic, never accepted with other claims), and only HS256 is accepted.

use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use proptest::prelude::*;
use wavecast_token::{Keys, Preset, TokenBuilder, TokenError, Verifier, decode_unverified};

const NOW: u64 = 1_800_000_000;

fn keys() -> Keys {
    Keys::new("devkey", "secret")
}

fn verifier() -> Verifier {
    Verifier::new([keys()])
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

fn real_token() -> String {
    TokenBuilder::new("alice")
        .room("demo")
        .name("Alice")
        .metadata("{\"seat\":7}")
        .preset(Preset::Broadcaster)
        .ttl(Duration::from_secs(3600))
        .issued_at(NOW)
        .mint(&keys())
        .unwrap()
}

/// The variants a refusal may take; anything else (or a panic) is a bug.
fn is_refusal(e: &TokenError) -> bool {
    matches!(
        e,
        TokenError::Malformed(_)
            | TokenError::BadSignature { .. }
            | TokenError::UnknownKey { .. }
            | TokenError::UnsupportedAlgorithm { .. }
            | TokenError::Expired { .. }
            | TokenError::NotYetValid { .. }
    )
}

#[derive(Debug, Clone)]
enum Edit {
    /// Replace the character at a position (token characters and others).
    Set(usize, char),
    Delete(usize),
    Insert(usize, char),
    Truncate(usize),
    /// Swap two of the three parts.
    Swap(usize, usize),
    /// Re-encode the header or payload JSON with one byte changed.
    JsonByte(bool, usize, u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    let ch = prop_oneof![
        proptest::char::range('A', 'Z'),
        proptest::char::range('a', 'z'),
        Just('.'),
        Just('-'),
        Just('_'),
        Just('='),
        Just('+'),
        Just('/'),
        Just(' '),
        Just('é'),
        any::<char>(),
    ];
    prop_oneof![
        (any::<usize>(), ch.clone()).prop_map(|(i, c)| Edit::Set(i, c)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), ch).prop_map(|(i, c)| Edit::Insert(i, c)),
        any::<usize>().prop_map(Edit::Truncate),
        (0usize..3, 0usize..3).prop_map(|(a, b)| Edit::Swap(a, b)),
        (any::<bool>(), any::<usize>(), any::<u8>()).prop_map(|(h, i, b)| Edit::JsonByte(h, i, b)),
    ]
}

fn apply(token: &str, e: &Edit) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let at = |i: usize, n: usize| if n == 0 { 0 } else { i % n };
    match e {
        Edit::Set(i, c) => {
            if !chars.is_empty() {
                let i = at(*i, chars.len());
                chars[i] = *c;
            }
        }
        Edit::Delete(i) => {
            if !chars.is_empty() {
                let i = at(*i, chars.len());
                chars.remove(i);
            }
        }
        Edit::Insert(i, c) => {
            let i = at(*i, chars.len() + 1);
            chars.insert(i, *c);
        }
        Edit::Truncate(i) => chars.truncate(at(*i, chars.len() + 1)),
        Edit::Swap(a, b) => {
            let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
            if *a < parts.len() && *b < parts.len() {
                parts.swap(*a, *b);
            }
            return parts.join(".");
        }
        Edit::JsonByte(header, i, b) => {
            let parts: Vec<&str> = token.split('.').collect();
            let idx = if *header { 0 } else { 1 };
            let Some(Ok(mut json)) = parts.get(idx).map(|p| b64().decode(p)) else {
                return token.to_owned();
            };
            if !json.is_empty() {
                let n = json.len();
                json[i % n] = *b;
            }
            let mut parts: Vec<String> = parts.iter().map(|p| (*p).to_owned()).collect();
            parts[idx] = b64().encode(json);
            return parts.join(".");
        }
    }
    chars.into_iter().collect()
}

fn sign(alg: Algorithm, claims: &wavecast_token::Claims, secret: &[u8]) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret)).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_are_refused(s in prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,40}",
        "eyJ[A-Za-z0-9_-]{0,60}\\.eyJ[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,43}",
    ]) {
        let e = verifier().verify_at(&s, NOW).unwrap_err();
        prop_assert!(is_refusal(&e), "{e:?}");
        prop_assert!(!e.to_string().is_empty());
        // Decoding for display copes too: claims or an error.
        let _ = decode_unverified(&s);
    }

    #[test]
    fn mutated_real_tokens_are_refused_or_unchanged(edits in proptest::collection::vec(edit(), 1..4)) {
        let token = real_token();
        let original = verifier().verify_at(&token, NOW).unwrap();
        let mutated = edits.iter().fold(token.clone(), |t, e| apply(&t, e));
        match verifier().verify_at(&mutated, NOW) {
            // Accepted only if the signed content (header and payload) is unchanged.
            Ok(claims) => {
                let signed = |t: &str| t.trim().rsplit_once('.').map(|(s, _)| s.to_owned());
                prop_assert_eq!(signed(&mutated), signed(&token));
                prop_assert_eq!(claims.sub, original.sub);
                prop_assert_eq!(claims.exp, original.exp);
                prop_assert_eq!(claims.video.room, original.video.room);
            }
            Err(e) => prop_assert!(is_refusal(&e), "{e:?}"),
        }
    }

    /// Regression: HS384 and HS512 tokens with a valid signature were accepted.
    #[test]
    fn only_hs256_is_accepted(identity in "[a-z]{1,12}", room in "[a-z]{1,12}",
                              metadata in any::<String>(), ttl in 60u64..100_000,
                              alg in prop_oneof![Just(Algorithm::HS256), Just(Algorithm::HS384), Just(Algorithm::HS512)]) {
        let claims = TokenBuilder::new(&identity)
            .room(&room)
            .metadata(&metadata)
            .preset(Preset::Viewer)
            .ttl(Duration::from_secs(ttl))
            .issued_at(NOW)
            .claims("devkey")
            .unwrap();
        let jwt = sign(alg, &claims, b"secret");
        match verifier().verify_at(&jwt, NOW) {
            Ok(c) => {
                prop_assert_eq!(alg, Algorithm::HS256);
                prop_assert_eq!(c.sub, identity);
                prop_assert_eq!(c.video.room, room);
                prop_assert_eq!(c.metadata, metadata);
            }
            Err(TokenError::UnsupportedAlgorithm { alg: shown }) => {
                prop_assert_ne!(alg, Algorithm::HS256);
                prop_assert_eq!(shown, format!("{alg:?}"));
            }
            Err(e) => prop_assert!(false, "{alg:?}: unexpected {e:?}"),
        }
        // Signed with another secret: refused whatever the algorithm, never accepted.
        let forged = sign(alg, &claims, b"not-the-secret");
        prop_assert!(verifier().verify_at(&forged, NOW).is_err());
    }

    #[test]
    fn any_alg_header_other_than_hs256_is_refused(alg in prop_oneof![
        any::<String>(),
        Just("none".to_owned()), Just("HS256 ".to_owned()), Just("hs256".to_owned()),
        Just("RS256".to_owned()), Just("ES256".to_owned()), Just("EdDSA".to_owned()),
    ]) {
        let token = real_token();
        let rest = token.split_once('.').unwrap().1;
        let header = serde_json::json!({"alg": alg, "typ": "JWT"}).to_string();
        let forged = format!("{}.{rest}", b64().encode(header));
        let e = verifier().verify_at(&forged, NOW).unwrap_err();
        if alg == "HS256" {
            // Same algorithm, different header bytes: the signature no longer matches.
            prop_assert!(matches!(e, TokenError::BadSignature { .. }), "{e:?}");
        } else {
            prop_assert!(matches!(&e, TokenError::UnsupportedAlgorithm { alg: a } if *a == alg), "{e:?}");
        }
    }

    #[test]
    fn verification_time_is_total(now in any::<u64>(), leeway in any::<u64>()) {
        let v = verifier().leeway(Duration::from_secs(leeway));
        match v.verify_at(&real_token(), now) {
            Ok(c) => {
                prop_assert!((c.nbf as u64).saturating_sub(leeway) <= now);
                prop_assert!((c.exp as u64).saturating_add(leeway) >= now);
            }
            Err(e) => prop_assert!(matches!(e, TokenError::Expired { .. } | TokenError::NotYetValid { .. }), "{e:?}"),
        }
    }
}
