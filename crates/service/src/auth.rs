//! Caller authentication: bearer JWTs from the application's own login, and the admin key.

use std::collections::HashMap;
use std::fmt;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use wavecast_config::{CallerAlgorithm, Secret};

use crate::ServiceError;
use crate::store::MAX_GROUPS;

/// Who is calling: the `sub` of their JWT and the groups it lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user id (`sub`).
    pub user: String,
    /// Groups from the configured groups claim (at most 64).
    pub groups: Vec<String>,
}

/// Who a request comes from, as established by authentication (never by comparing names):
/// the holder of the admin key, or a user of the application's login with their groups.
///
/// A user whose `sub` happens to be `admin` is a [`Principal::User`] like any other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The bearer presented `service.admin_key` (the operator's backend, `wavecast grant`).
    AdminKey,
    /// The bearer presented a login JWT the service verified.
    User(Caller),
}

impl Principal {
    /// The user, when the principal is one.
    pub fn user(&self) -> Option<&Caller> {
        match self {
            Principal::User(c) => Some(c),
            Principal::AdminKey => None,
        }
    }

    /// Whether this is the admin key.
    pub fn is_admin_key(&self) -> bool {
        matches!(self, Principal::AdminKey)
    }

    /// The key of this principal's rate limit (users by `sub`; the admin key has its own,
    /// which no `sub` can name).
    pub(crate) fn rate_key(&self) -> String {
        match self {
            Principal::AdminKey => "\0admin-key".into(),
            Principal::User(c) => format!("user:{}", c.user),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::AdminKey => f.write_str("the admin key"),
            Principal::User(c) => write!(f, "user {:?}", c.user),
        }
    }
}

/// Verifies callers' JWTs: signature (HS256 secret, or RS256 / ES256 public key), expiry,
/// not-before, issuer and audience.
#[derive(Clone)]
pub struct CallerAuth {
    key: DecodingKey,
    validation: Validation,
    groups_claim: String,
}

impl fmt::Debug for CallerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallerAuth")
            .field("algorithm", &self.validation.algorithms)
            .field("issuer", &self.validation.iss)
            .field("audience", &self.validation.aud)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// Why a caller's JWT was not accepted (the message is safe to return to the caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuthError(pub String);

impl CallerAuth {
    /// HS256 with a shared secret.
    pub fn hs256(secret: &Secret, issuer: &str, audience: &str) -> Self {
        Self::with_key(
            DecodingKey::from_secret(secret.expose().as_bytes()),
            Algorithm::HS256,
            issuer,
            audience,
        )
    }

    /// RS256 or ES256 with a PEM public key.
    pub fn public_key(
        algorithm: CallerAlgorithm,
        pem: &[u8],
        issuer: &str,
        audience: &str,
    ) -> Result<Self, String> {
        let (key, alg) = match algorithm {
            CallerAlgorithm::Rs256 => (
                DecodingKey::from_rsa_pem(pem)
                    .map_err(|e| format!("not an RSA public key: {e}"))?,
                Algorithm::RS256,
            ),
            CallerAlgorithm::Es256 => (
                DecodingKey::from_ec_pem(pem).map_err(|e| format!("not an EC public key: {e}"))?,
                Algorithm::ES256,
            ),
            CallerAlgorithm::Hs256 => return Err("HS256 takes a secret, not a public key".into()),
        };
        Ok(Self::with_key(key, alg, issuer, audience))
    }

    fn with_key(key: DecodingKey, alg: Algorithm, issuer: &str, audience: &str) -> Self {
        let mut validation = Validation::new(alg);
        validation.leeway = 10;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        Self {
            key,
            validation,
            groups_claim: "groups".into(),
        }
    }

    /// Read groups from this claim instead of `groups`.
    pub fn groups_claim(mut self, claim: impl Into<String>) -> Self {
        self.groups_claim = claim.into();
        self
    }

    /// Verify a JWT and return the caller.
    pub fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let data = jsonwebtoken::decode::<HashMap<String, serde_json::Value>>(
            token,
            &self.key,
            &self.validation,
        )
        .map_err(|e| {
            AuthError(match e.kind() {
                ErrorKind::ExpiredSignature => "the bearer token has expired".into(),
                ErrorKind::ImmatureSignature => "the bearer token is not valid yet".into(),
                ErrorKind::InvalidIssuer => "the bearer token has the wrong issuer".into(),
                ErrorKind::InvalidAudience => "the bearer token has the wrong audience".into(),
                ErrorKind::InvalidSignature => "the bearer token's signature is invalid".into(),
                ErrorKind::InvalidAlgorithm => {
                    "the bearer token is signed with another algorithm".into()
                }
                ErrorKind::MissingRequiredClaim(c) => {
                    format!("the bearer token lacks the {c:?} claim")
                }
                _ => format!("the bearer token is malformed: {e}"),
            })
        })?;
        let claims = data.claims;
        let user = match claims.get("sub") {
            Some(serde_json::Value::String(s))
                if !s.is_empty() && s.len() <= 128 && !s.chars().any(char::is_control) =>
            {
                s.clone()
            }
            _ => {
                return Err(AuthError(
                    "the bearer token's sub must be a non-empty string of at most 128 bytes \
                     without control characters"
                        .into(),
                ));
            }
        };
        let groups = match claims.get(&self.groups_claim) {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::Array(items)) if items.len() <= MAX_GROUPS => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .filter(|g| !g.chars().any(char::is_control))
                        .map(str::to_owned)
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    AuthError(format!(
                        "the bearer token's {:?} claim must be an array of strings without control characters",
                        self.groups_claim
                    ))
                })?,
            Some(_) => {
                return Err(AuthError(format!(
                    "the bearer token's {:?} claim must be an array of at most {MAX_GROUPS} strings",
                    self.groups_claim
                )));
            }
        };
        Ok(Caller { user, groups })
    }
}

/// The admin key, compared in constant time.
#[derive(Clone)]
pub struct AdminKey(Secret);

impl fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminKey([redacted])")
    }
}

impl AdminKey {
    /// Wrap the configured key.
    pub fn new(secret: Secret) -> Self {
        Self(secret)
    }

    /// Whether `presented` is the key (time independent of where they differ).
    pub fn matches(&self, presented: &str) -> bool {
        let a = self.0.expose().as_bytes();
        let b = presented.as_bytes();
        let mut diff = a.len() ^ b.len();
        for i in 0..a.len().max(b.len()) {
            let x = a.get(i).copied().unwrap_or(0);
            let y = b.get(i).copied().unwrap_or(0);
            diff |= usize::from(x ^ y);
        }
        diff == 0
    }
}

/// Build the caller verifier from the `[service]` section.
pub fn caller_auth(s: &wavecast_config::ServiceConfig) -> Result<CallerAuth, ServiceError> {
    if s.auth_issuer.is_empty() {
        return Err(ServiceError::Config {
            key: "service.auth_issuer",
            message:
                "is not set: the `iss` your login puts in its JWTs (WAVECAST_SERVICE__AUTH_ISSUER)"
                    .into(),
        });
    }
    if s.auth_audience.is_empty() {
        return Err(ServiceError::Config {
            key: "service.auth_audience",
            message: "is not set: the `aud` your login puts in its JWTs (WAVECAST_SERVICE__AUTH_AUDIENCE)".into(),
        });
    }
    let auth = match s.auth_algorithm {
        CallerAlgorithm::Hs256 => {
            let secret = s.auth_secret.as_ref().ok_or(ServiceError::Config {
                key: "service.auth_secret",
                message: "is not set but service.auth_algorithm is hs256: set \
                          WAVECAST_SERVICE__AUTH_SECRET or [service] auth_secret"
                    .into(),
            })?;
            CallerAuth::hs256(secret, &s.auth_issuer, &s.auth_audience)
        }
        alg => {
            let path = s.auth_public_key.as_ref().ok_or(ServiceError::Config {
                key: "service.auth_public_key",
                message: format!(
                    "is not set but service.auth_algorithm is {alg}: name a PEM public key file"
                ),
            })?;
            let pem = std::fs::read(path).map_err(|e| ServiceError::PublicKey {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            CallerAuth::public_key(alg, &pem, &s.auth_issuer, &s.auth_audience).map_err(
                |message| ServiceError::PublicKey {
                    path: path.display().to_string(),
                    message,
                },
            )?
        }
    };
    Ok(auth.groups_claim(&s.groups_claim))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    const SECRET: &str = "a-login-secret-of-some-length";

    fn jwt(claims: serde_json::Value, secret: &str) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn now() -> i64 {
        wavecast_token::unix_now() as i64
    }

    fn auth() -> CallerAuth {
        CallerAuth::hs256(&Secret::new(SECRET), "https://login.example", "wavecast")
    }

    #[test]
    fn accepts_a_good_token_with_groups() {
        let t = jwt(
            serde_json::json!({"sub": "alice", "iss": "https://login.example", "aud": "wavecast",
                               "exp": now() + 60, "groups": ["staff"]}),
            SECRET,
        );
        assert_eq!(
            auth().verify(&t).unwrap(),
            Caller {
                user: "alice".into(),
                groups: vec!["staff".into()]
            }
        );
    }

    #[test]
    fn refuses_wrong_issuer_audience_secret_and_expired() {
        let base = serde_json::json!({"sub": "a", "iss": "https://login.example", "aud": "wavecast", "exp": now() + 60});
        let with = |k: &str, v: serde_json::Value| {
            let mut c = base.clone();
            c[k] = v;
            c
        };
        let cases = [
            (jwt(with("iss", "evil".into()), SECRET), "issuer"),
            (jwt(with("aud", "other".into()), SECRET), "audience"),
            (jwt(base.clone(), "another-secret-entirely"), "signature"),
            (jwt(with("exp", (now() - 3600).into()), SECRET), "expired"),
            (
                jwt(with("nbf", (now() + 3600).into()), SECRET),
                "not valid yet",
            ),
            (jwt(with("groups", "staff".into()), SECRET), "array"),
            ("not.a.jwt".into(), "malformed"),
        ];
        for (t, want) in cases {
            let e = auth().verify(&t).unwrap_err().0;
            assert!(e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn rs256_and_es256_callers_verify_with_the_public_key_only() {
        let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/");
        let read = |f: &str| std::fs::read(format!("{data}{f}")).unwrap();
        for (alg, jalg, private, public) in [
            (
                CallerAlgorithm::Rs256,
                Algorithm::RS256,
                "rs256-private.pem",
                "rs256-public.pem",
            ),
            (
                CallerAlgorithm::Es256,
                Algorithm::ES256,
                "es256-private.pem",
                "es256-public.pem",
            ),
        ] {
            let key = match alg {
                CallerAlgorithm::Rs256 => EncodingKey::from_rsa_pem(&read(private)).unwrap(),
                _ => EncodingKey::from_ec_pem(&read(private)).unwrap(),
            };
            let claims = serde_json::json!({"sub": "carol", "iss": "https://login.example",
                                            "aud": "wavecast", "exp": now() + 60});
            let t = jsonwebtoken::encode(&Header::new(jalg), &claims, &key).unwrap();
            let auth =
                CallerAuth::public_key(alg, &read(public), "https://login.example", "wavecast")
                    .unwrap();
            assert_eq!(auth.verify(&t).unwrap().user, "carol", "{alg}");
            // An HS256 token signed with the public key's bytes (the classic confusion attack).
            let forged = jwt(claims.clone(), &String::from_utf8(read(public)).unwrap());
            assert!(
                auth.verify(&forged).is_err(),
                "{alg} accepted an HS256 token"
            );
            // A private key is not a public key file.
            assert!(
                CallerAuth::public_key(alg, b"not a pem", "i", "a").is_err(),
                "{alg}"
            );
        }
    }

    #[test]
    fn admin_key_compares_whole_keys_and_debug_hides_secrets() {
        let k = AdminKey::new(Secret::new("admin-key-0123456789"));
        assert!(k.matches("admin-key-0123456789"));
        assert!(!k.matches("admin-key-012345678"));
        assert!(!k.matches("admin-key-0123456789x"));
        assert!(!k.matches(""));
        assert!(!format!("{k:?}").contains("0123456789"));
        assert!(!format!("{:?}", auth()).contains(SECRET));
    }
}
