//! Mint and verify LiveKit access tokens.
//!
//! Tokens are the JWTs LiveKit servers accept: HS256 over the claims type of the official
//! `livekit-api` crate ([`Claims`], [`VideoGrants`]), so the wire format is exactly the one the
//! official SDKs produce. On top of that this crate adds what tools need:
//!
//! - grant [`Preset`]s (viewer, broadcaster, admin, recorder) and fully custom grants;
//! - an injectable clock ([`TokenBuilder::issued_at`], [`Verifier::verify_at`]) so expiry and
//!   not-before are testable without sleeping;
//! - a verifier with a clock-skew leeway and distinct errors for expired, not-yet-valid, bad
//!   signature, unknown key, malformed tokens and signing algorithms other than HS256 (the only
//!   one LiveKit issues);
//! - secrets that never show up in `Debug` output.
//!
//! ```
//! use std::time::Duration;
//! use wavecast_token::{Keys, Preset, TokenBuilder, Verifier};
//!
//! let keys = Keys::new("devkey", "secret");
//! let jwt = TokenBuilder::new("alice")
//!     .room("demo")
//!     .preset(Preset::Viewer)
//!     .ttl(Duration::from_secs(3600))
//!     .mint(&keys)?;
//! let claims = Verifier::new([keys]).verify(&jwt)?;
//! assert_eq!(claims.sub, "alice");
//! assert!(claims.video.can_subscribe() && !claims.video.can_publish());
//! # Ok::<(), wavecast_token::TokenError>(())
//! ```
//!
//! # Design
//! Minting and verifying are pure functions of their inputs and a timestamp; the `*_at` variants
//! take the timestamp explicitly and the plain variants read the system clock once. Nothing here
//! does IO.
#![deny(missing_docs)]

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
pub use livekit_api::access_token::{Claims, VideoGrants};

/// Default token lifetime: six hours, as the official SDKs use.
pub const DEFAULT_TTL: Duration = Duration::from_secs(6 * 3600);
/// Longest lifetime [`TokenBuilder`] mints: 366 days (a year, leap or not). A token is a
/// bearer credential; one that outlives a year is a leaked key in all but name, and a typo such
/// as `--ttl 100000000000days` should be refused, not minted.
pub const MAX_TTL: Duration = Duration::from_secs(366 * 24 * 3600);
/// Default clock-skew leeway accepted by [`Verifier`].
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(10);

/// Track sources a LiveKit grant can name in `canPublishSources`.
pub mod source {
    /// Camera video.
    pub const CAMERA: &str = "camera";
    /// Microphone audio.
    pub const MICROPHONE: &str = "microphone";
    /// Screen-share video.
    pub const SCREEN_SHARE: &str = "screen_share";
    /// Screen-share audio.
    pub const SCREEN_SHARE_AUDIO: &str = "screen_share_audio";
}

/// Errors from minting or verifying a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The API key or secret is empty.
    #[error("missing API {0}: both an API key and an API secret are needed to mint a token")]
    MissingKey(&'static str),
    /// The lifetime is zero or longer than [`MAX_TTL`].
    #[error(
        "invalid token lifetime (ttl) of {}s: it must be more than 0s and at most {}s (366 days)",
        ttl.as_secs_f64(),
        MAX_TTL.as_secs()
    )]
    InvalidTtl {
        /// The lifetime that was asked for.
        ttl: Duration,
    },
    /// The claims are inconsistent (for example a join grant without a room).
    #[error("invalid claims: {0}")]
    InvalidClaims(String),
    /// The token is not a well-formed LiveKit JWT.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The token names an API key this verifier does not know.
    #[error("unknown API key {key:?}: the token was issued for a key this verifier does not hold")]
    UnknownKey {
        /// The `iss` claim of the token.
        key: String,
    },
    /// The signature does not match the secret of the token's API key.
    #[error("bad signature: the token was not signed with the secret of API key {key:?}")]
    BadSignature {
        /// The `iss` claim of the token.
        key: String,
    },
    /// The token's `exp` lies in the past (beyond the leeway).
    #[error("token expired at {expired_at} (unix seconds); it is now {now}")]
    Expired {
        /// The `exp` claim.
        expired_at: u64,
        /// The time verification used.
        now: u64,
    },
    /// The token's `nbf` lies in the future (beyond the leeway).
    #[error("token not valid before {not_before} (unix seconds); it is now {now}")]
    NotYetValid {
        /// The `nbf` claim.
        not_before: u64,
        /// The time verification used.
        now: u64,
    },
    /// The token is signed with an algorithm other than HS256, the only one LiveKit issues and
    /// accepts (HS384/HS512 tokens are refused too, so nothing we accept is refused by a server).
    #[error("unsupported signing algorithm {alg:?}: LiveKit tokens are signed with HS256 only")]
    UnsupportedAlgorithm {
        /// The header's `alg` (`<missing>` when absent, the JSON text when not a string).
        alg: String,
    },
    /// Encoding failed inside the JWT library.
    #[error("could not sign token")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

/// An API key and its secret. The secret never appears in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Keys {
    key: String,
    secret: String,
}

impl Keys {
    /// Pair an API key with its secret.
    pub fn new(key: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            secret: secret.into(),
        }
    }

    /// The API key (public, the token's `iss`).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The API secret. Handle with care: never log it.
    pub fn secret(&self) -> &str {
        &self.secret
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("key", &self.key)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// Grant presets for the roles wavecast's tools play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Preset {
    /// Join and subscribe only: no publishing, no data.
    Viewer,
    /// Join, publish camera, microphone and screen share, publish data, subscribe. Not
    /// `canUpdateOwnMetadata` (as LiveKit's default: apps often trust metadata set by their
    /// backend); add it with [`TokenBuilder::can_update_own_metadata`].
    Broadcaster,
    /// Room administration: create, list and administer rooms (no join).
    Admin,
    /// A hidden participant that records: join, subscribe, `hidden` and `recorder` set.
    Recorder,
}

impl Preset {
    /// Every preset, for listings and `--help`.
    pub const ALL: [Preset; 4] = [
        Preset::Viewer,
        Preset::Broadcaster,
        Preset::Admin,
        Preset::Recorder,
    ];

    /// The preset's name as used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Viewer => "viewer",
            Preset::Broadcaster => "broadcaster",
            Preset::Admin => "admin",
            Preset::Recorder => "recorder",
        }
    }

    /// The grants of this preset for `room` (the admin preset applies to `room` when it is not
    /// empty and to every room otherwise).
    pub fn grants(self, room: &str) -> VideoGrants {
        let room = room.to_owned();
        match self {
            Preset::Viewer => VideoGrants {
                room_join: true,
                room,
                can_subscribe: Some(true),
                can_publish: Some(false),
                can_publish_data: Some(false),
                ..Default::default()
            },
            Preset::Broadcaster => VideoGrants {
                room_join: true,
                room,
                can_subscribe: Some(true),
                can_publish: Some(true),
                can_publish_data: Some(true),
                can_publish_sources: [
                    source::CAMERA,
                    source::MICROPHONE,
                    source::SCREEN_SHARE,
                    source::SCREEN_SHARE_AUDIO,
                ]
                .map(String::from)
                .to_vec(),
                ..Default::default()
            },
            Preset::Admin => VideoGrants {
                room_create: true,
                room_list: true,
                room_admin: true,
                room,
                ..Default::default()
            },
            Preset::Recorder => VideoGrants {
                room_join: true,
                room,
                can_subscribe: Some(true),
                can_publish: Some(false),
                can_publish_data: Some(false),
                hidden: true,
                recorder: true,
                ..Default::default()
            },
        }
    }
}

impl std::str::FromStr for Preset {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Preset::ALL.iter().map(|p| p.name()).collect();
                format!("unknown preset {s:?}; expected one of {}", names.join(", "))
            })
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Builds the claims of one token; [`TokenBuilder::mint`] signs them.
#[derive(Debug, Clone)]
pub struct TokenBuilder {
    identity: String,
    name: String,
    metadata: String,
    attributes: HashMap<String, String>,
    room: String,
    grants: Option<VideoGrants>,
    ttl: Duration,
    issued_at: Option<u64>,
    not_before: Option<u64>,
}

impl TokenBuilder {
    /// A token for participant `identity` (may be empty for admin-only tokens).
    pub fn new(identity: impl Into<String>) -> Self {
        Self {
            identity: identity.into(),
            name: String::new(),
            metadata: String::new(),
            attributes: HashMap::new(),
            room: String::new(),
            grants: None,
            ttl: DEFAULT_TTL,
            issued_at: None,
            not_before: None,
        }
    }

    /// Display name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Participant metadata (free text, often JSON).
    pub fn metadata(mut self, metadata: impl Into<String>) -> Self {
        self.metadata = metadata.into();
        self
    }

    /// Add one participant attribute.
    pub fn attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }

    /// The room the grants apply to.
    pub fn room(mut self, room: impl Into<String>) -> Self {
        self.room = room.into();
        self
    }

    /// Use a preset's grants (for the builder's room).
    pub fn preset(mut self, preset: Preset) -> Self {
        self.grants = Some(preset.grants(""));
        self
    }

    /// Use fully custom grants. An empty `room` in them is filled from [`TokenBuilder::room`].
    pub fn grants(mut self, grants: VideoGrants) -> Self {
        self.grants = Some(grants);
        self
    }

    /// Let the participant change its own name, metadata and attributes (`canUpdateOwnMetadata`)
    /// — or not. Applies to the grants set so far: call it after [`TokenBuilder::preset`] or
    /// [`TokenBuilder::grants`].
    pub fn can_update_own_metadata(mut self, allowed: bool) -> Self {
        self.grants
            .get_or_insert_with(VideoGrants::default)
            .can_update_own_metadata = Some(allowed);
        self
    }

    /// Lifetime from the issue time (default [`DEFAULT_TTL`]); more than zero and at most
    /// [`MAX_TTL`], or [`TokenBuilder::claims`] and [`TokenBuilder::mint`] refuse it (see
    /// [`check_ttl`]).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Issue time in unix seconds (default: now). `nbf` defaults to it and `exp` is `iat + ttl`.
    pub fn issued_at(mut self, unix_seconds: u64) -> Self {
        self.issued_at = Some(unix_seconds);
        self
    }

    /// An explicit not-before time in unix seconds.
    pub fn not_before(mut self, unix_seconds: u64) -> Self {
        self.not_before = Some(unix_seconds);
        self
    }

    /// The claims this builder describes, issued by `api_key`.
    pub fn claims(&self, api_key: &str) -> Result<Claims, TokenError> {
        check_ttl(self.ttl)?;
        let now = self.issued_at.unwrap_or_else(unix_now);
        let mut video = self.grants.clone().unwrap_or_default();
        if video.room.is_empty() {
            video.room = self.room.clone();
        }
        if video.room_join && (self.identity.is_empty() || video.room.is_empty()) {
            return Err(TokenError::InvalidClaims(
                "a join grant needs both an identity and a room".into(),
            ));
        }
        let claims = Claims {
            exp: to_usize(now.saturating_add(self.ttl.as_secs())),
            iss: api_key.to_owned(),
            nbf: to_usize(self.not_before.unwrap_or(now)),
            sub: self.identity.clone(),
            name: self.name.clone(),
            video,
            metadata: self.metadata.clone(),
            attributes: self.attributes.clone(),
            ..Default::default()
        };
        Ok(claims)
    }

    /// Sign the claims with `keys`, giving a compact JWT.
    pub fn mint(&self, keys: &Keys) -> Result<String, TokenError> {
        if keys.key.is_empty() {
            return Err(TokenError::MissingKey("key"));
        }
        if keys.secret.is_empty() {
            return Err(TokenError::MissingKey("secret"));
        }
        let claims = self.claims(&keys.key)?;
        encode(&claims, keys)
    }
}

/// Accept a token lifetime: more than zero and at most [`MAX_TTL`]. A lifetime under a
/// second counts as zero (tokens carry whole seconds).
pub fn check_ttl(ttl: Duration) -> Result<Duration, TokenError> {
    if ttl.as_secs() == 0 || ttl > MAX_TTL {
        return Err(TokenError::InvalidTtl { ttl });
    }
    Ok(ttl)
}

/// Sign arbitrary claims with `keys` (HS256), as LiveKit expects.
pub fn encode(claims: &Claims, keys: &Keys) -> Result<String, TokenError> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(keys.secret.as_bytes()),
    )
    .map_err(TokenError::Sign)
}

/// Read a token's claims without checking its signature or validity window.
///
/// For display only (`wavecast token decode`); never for authorisation.
pub fn decode_unverified(token: &str) -> Result<Claims, TokenError> {
    let (_, payload) = split(token)?;
    serde_json::from_slice(&payload).map_err(|e| TokenError::Malformed(format!("claims: {e}")))
}

/// Verifies tokens against a set of API keys with a clock-skew leeway.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: Vec<Keys>,
    leeway: Duration,
}

impl Verifier {
    /// A verifier that accepts tokens issued by any of `keys`.
    pub fn new(keys: impl IntoIterator<Item = Keys>) -> Self {
        Self {
            keys: keys.into_iter().collect(),
            leeway: DEFAULT_LEEWAY,
        }
    }

    /// Accept `exp`/`nbf` this far off (default [`DEFAULT_LEEWAY`]).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Verify against the system clock.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        self.verify_at(token, unix_now())
    }

    /// Verify as if it were `now` (unix seconds).
    pub fn verify_at(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        let (header, payload) = split(token)?;
        let header: serde_json::Value = serde_json::from_slice(&header)
            .map_err(|e| TokenError::Malformed(format!("header: {e}")))?;
        match header.get("alg") {
            Some(serde_json::Value::String(a)) if a == "HS256" => {}
            Some(serde_json::Value::String(a)) => {
                return Err(TokenError::UnsupportedAlgorithm { alg: a.clone() });
            }
            Some(other) => {
                return Err(TokenError::UnsupportedAlgorithm {
                    alg: other.to_string(),
                });
            }
            None => {
                return Err(TokenError::UnsupportedAlgorithm {
                    alg: "<missing>".into(),
                });
            }
        }
        let unverified: Claims = serde_json::from_slice(&payload)
            .map_err(|e| TokenError::Malformed(format!("claims: {e}")))?;
        let keys = self
            .keys
            .iter()
            .find(|k| k.key == unverified.iss)
            .ok_or_else(|| TokenError::UnknownKey {
                key: unverified.iss.clone(),
            })?;

        // Only HS256 reaches this point; pinning it here (not parsing the header again) keeps
        // the library from accepting another algorithm whatever the header says.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Claims>(
            token,
            &DecodingKey::from_secret(keys.secret.as_bytes()),
            &validation,
        )
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature {
                key: unverified.iss.clone(),
            },
            _ => TokenError::Malformed(e.to_string()),
        })?;
        let claims = data.claims;
        let leeway = self.leeway.as_secs();
        let exp = claims.exp as u64;
        let nbf = claims.nbf as u64;
        if exp.saturating_add(leeway) < now {
            return Err(TokenError::Expired {
                expired_at: exp,
                now,
            });
        }
        if nbf > now.saturating_add(leeway) {
            return Err(TokenError::NotYetValid {
                not_before: nbf,
                now,
            });
        }
        Ok(claims)
    }
}

/// Seconds since the unix epoch from the system clock.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// Split a compact JWT and base64url-decode header and payload.
fn split(token: &str) -> Result<(Vec<u8>, Vec<u8>), TokenError> {
    use base64::Engine as _;
    let mut parts = token.trim().split('.');
    let (Some(h), Some(p), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed(
            "expected three dot-separated parts".into(),
        ));
    };
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = engine
        .decode(h)
        .map_err(|e| TokenError::Malformed(format!("header: {e}")))?;
    let payload = engine
        .decode(p)
        .map_err(|e| TokenError::Malformed(format!("payload: {e}")))?;
    Ok((header, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn keys() -> Keys {
        Keys::new("devkey", "secret")
    }

    fn mint(b: TokenBuilder) -> String {
        b.issued_at(NOW).mint(&keys()).expect("mint")
    }

    #[test]
    fn presets_round_trip_with_identical_claims() {
        for preset in Preset::ALL {
            let jwt = mint(
                TokenBuilder::new("alice")
                    .room("demo")
                    .name("Alice")
                    .metadata("{\"x\":1}")
                    .attribute("team", "blue")
                    .preset(preset),
            );
            let claims = Verifier::new([keys()])
                .verify_at(&jwt, NOW + 5)
                .expect("verify");
            assert_eq!(claims.sub, "alice");
            assert_eq!(claims.name, "Alice");
            assert_eq!(claims.metadata, "{\"x\":1}");
            assert_eq!(
                claims.attributes.get("team").map(String::as_str),
                Some("blue")
            );
            assert_eq!(claims.video.room, "demo");
            assert_eq!(claims.exp as u64, NOW + DEFAULT_TTL.as_secs());
            assert_eq!(claims.nbf as u64, NOW);
            let expected = preset.grants("demo");
            assert_eq!(claims.video.room_join, expected.room_join, "{preset}");
            assert_eq!(
                claims.video.can_publish(),
                expected.can_publish(),
                "{preset}"
            );
            assert_eq!(claims.video.hidden, expected.hidden, "{preset}");
        }
    }

    #[test]
    fn zero_and_too_long_lifetimes_are_refused() {
        let builder = TokenBuilder::new("a").room("r").preset(Preset::Viewer);
        for ttl in [
            Duration::ZERO,
            Duration::from_millis(999),
            MAX_TTL + Duration::from_secs(1),
            Duration::from_secs(100_000_000_000 * 86_400),
        ] {
            let err = builder.clone().ttl(ttl).mint(&keys()).unwrap_err();
            assert!(
                matches!(err, TokenError::InvalidTtl { ttl: t } if t == ttl),
                "{ttl:?}: {err}"
            );
            assert!(err.to_string().contains("ttl"), "{err}");
            assert!(builder.clone().ttl(ttl).claims("k").is_err());
        }
        for ttl in [Duration::from_secs(1), MAX_TTL] {
            let jwt = mint(builder.clone().ttl(ttl));
            let claims = Verifier::new([keys()]).verify_at(&jwt, NOW).unwrap();
            assert_eq!(claims.exp as u64, NOW + ttl.as_secs());
        }
    }

    #[test]
    fn updating_own_metadata_is_granted_only_when_asked() {
        let claims = |b: TokenBuilder| b.claims("k").unwrap().video;
        let base = || TokenBuilder::new("a").room("r").preset(Preset::Broadcaster);
        assert!(!claims(base()).can_update_own_metadata());
        let v = claims(base().can_update_own_metadata(true));
        assert!(v.can_update_own_metadata() && v.can_publish() && v.room_join);
        assert!(!claims(base().can_update_own_metadata(false)).can_update_own_metadata());
    }

    #[test]
    fn viewer_cannot_publish_and_broadcaster_can() {
        assert!(!Preset::Viewer.grants("r").can_publish());
        assert!(Preset::Viewer.grants("r").can_subscribe());
        let b = Preset::Broadcaster.grants("r");
        assert!(b.can_publish() && b.can_publish_data());
        assert!(!b.can_update_own_metadata());
        assert_eq!(b.can_publish_sources.len(), 4);
        let a = Preset::Admin.grants("");
        assert!(a.room_create && a.room_list && a.room_admin && !a.room_join);
        let r = Preset::Recorder.grants("r");
        assert!(r.hidden && r.recorder && !r.can_publish());
    }

    #[test]
    fn expired_and_not_yet_valid_are_distinct_and_respect_leeway() {
        let jwt = mint(
            TokenBuilder::new("a")
                .room("r")
                .preset(Preset::Viewer)
                .ttl(Duration::from_secs(60)),
        );
        let v = Verifier::new([keys()]).leeway(Duration::from_secs(10));
        assert!(v.verify_at(&jwt, NOW + 69).is_ok(), "inside leeway");
        assert!(
            matches!(v.verify_at(&jwt, NOW + 71), Err(TokenError::Expired { expired_at, .. }) if expired_at == NOW + 60)
        );
        assert!(v.verify_at(&jwt, NOW - 9).is_ok(), "inside leeway");
        assert!(
            matches!(v.verify_at(&jwt, NOW - 11), Err(TokenError::NotYetValid { not_before, .. }) if not_before == NOW)
        );
    }

    #[test]
    fn wrong_secret_unknown_key_tampered_and_garbage() {
        let jwt = mint(TokenBuilder::new("a").room("r").preset(Preset::Viewer));
        let wrong = Verifier::new([Keys::new("devkey", "other")]);
        assert!(matches!(
            wrong.verify_at(&jwt, NOW),
            Err(TokenError::BadSignature { .. })
        ));
        let unknown = Verifier::new([Keys::new("otherkey", "secret")]);
        assert!(
            matches!(unknown.verify_at(&jwt, NOW), Err(TokenError::UnknownKey { key }) if key == "devkey")
        );

        // Tamper: grant publishing in the payload, keep the signature.
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let parts: Vec<&str> = jwt.split('.').collect();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&engine.decode(parts[1]).unwrap()).unwrap();
        claims["video"]["canPublish"] = true.into();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            engine.encode(claims.to_string()),
            parts[2]
        );
        let v = Verifier::new([keys()]);
        assert!(matches!(
            v.verify_at(&forged, NOW),
            Err(TokenError::BadSignature { .. })
        ));

        for bad in ["", "abc", "a.b", "a.b.c.d", "!!.??.x"] {
            assert!(
                matches!(v.verify_at(bad, NOW), Err(TokenError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn tokens_signed_hs384_or_hs512_are_refused_with_their_own_error() {
        // Regression: HS384/HS512 tokens with a valid signature were accepted, although LiveKit
        // issues and accepts HS256 only.
        let claims = TokenBuilder::new("a")
            .room("r")
            .preset(Preset::Viewer)
            .issued_at(NOW)
            .claims("devkey")
            .unwrap();
        let v = Verifier::new([keys()]);
        for alg in [Algorithm::HS384, Algorithm::HS512] {
            let jwt = jsonwebtoken::encode(
                &Header::new(alg),
                &claims,
                &EncodingKey::from_secret(b"secret"),
            )
            .unwrap();
            let err = v.verify_at(&jwt, NOW).unwrap_err();
            assert!(
                matches!(&err, TokenError::UnsupportedAlgorithm { alg: a } if *a == format!("{alg:?}")),
                "{alg:?}: {err}"
            );
            assert!(err.to_string().contains("HS256 only"), "{err}");
        }
        // An HS256 header with other fields is still fine; `none` and a missing alg are not.
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let jwt = mint(TokenBuilder::new("a").room("r").preset(Preset::Viewer));
        let rest = jwt.split_once('.').unwrap().1;
        for (header, shown) in [
            (r#"{"alg":"none","typ":"JWT"}"#, "none"),
            (r#"{"typ":"JWT"}"#, "<missing>"),
            (r#"{"alg":256}"#, "256"),
        ] {
            let forged = format!("{}.{rest}", engine.encode(header));
            let err = v.verify_at(&forged, NOW).unwrap_err();
            assert!(
                matches!(&err, TokenError::UnsupportedAlgorithm { alg } if alg == shown),
                "{header}: {err}"
            );
        }
    }

    #[test]
    fn join_grant_without_room_is_refused_and_empty_keys_too() {
        let err = TokenBuilder::new("a")
            .preset(Preset::Viewer)
            .mint(&keys())
            .unwrap_err();
        assert!(matches!(err, TokenError::InvalidClaims(_)));
        let err = TokenBuilder::new("a")
            .room("r")
            .mint(&Keys::new("k", ""))
            .unwrap_err();
        assert!(matches!(err, TokenError::MissingKey("secret")));
    }

    #[test]
    fn secret_is_redacted_in_debug() {
        let dbg = format!("{:?}", Keys::new("devkey", "supersecret"));
        assert!(
            dbg.contains("devkey") && !dbg.contains("supersecret"),
            "{dbg}"
        );
    }

    #[test]
    fn preset_parse_errors_list_the_choices() {
        assert_eq!("viewer".parse::<Preset>().unwrap(), Preset::Viewer);
        let e = "veiwer".parse::<Preset>().unwrap_err();
        assert!(e.contains("viewer, broadcaster, admin, recorder"), "{e}");
    }
}
