//! How a session authenticates: a ready token, or a key and secret to mint one per join.

use super::*;

/// How the session authenticates.
#[derive(Clone)]
pub enum Credentials {
    /// A ready token, used for the first join. Later joins use the newest token the server
    /// sent (`RefreshToken`, right after the join and then every few minutes), so a session
    /// rejoins after its first token expired; only when the server never refreshed it does an
    /// expired token make a rejoin fail with [`EndReason::Refused`].
    Token(String),
    /// A key and secret: a fresh token is minted from the builder for every join, so expiry
    /// never breaks a rejoin.
    Mint {
        /// API key and secret.
        keys: Keys,
        /// Identity, room, grants and lifetime of the tokens.
        builder: Box<TokenBuilder>,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Token(_) => f.write_str("Credentials::Token(<redacted>)"),
            Credentials::Mint { keys, builder } => f
                .debug_struct("Credentials::Mint")
                .field("keys", keys)
                .field("builder", builder)
                .finish(),
        }
    }
}

impl Credentials {
    /// A ready token.
    pub fn token(token: impl Into<String>) -> Self {
        Credentials::Token(token.into())
    }

    /// Mint tokens for `identity` in `room` with a preset's grants.
    pub fn mint(keys: Keys, identity: &str, room: &str, preset: Preset) -> Self {
        Credentials::Mint {
            keys,
            builder: Box::new(TokenBuilder::new(identity).room(room).preset(preset)),
        }
    }

    pub(super) fn token_now(&self) -> Result<String, SessionError> {
        match self {
            Credentials::Token(t) => Ok(t.clone()),
            Credentials::Mint { keys, builder } => builder.mint(keys).map_err(|source| {
                let (identity, room) = builder
                    .claims(keys.key())
                    .map(|c| (c.sub, c.video.room))
                    .unwrap_or_default();
                SessionError::Token {
                    identity,
                    room,
                    source,
                }
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_credentials_are_redacted() {
        let c = Credentials::token("eyJ.secretpart.sig");
        assert!(!format!("{c:?}").contains("secretpart"));
        let c = Credentials::mint(Keys::new("devkey", "hunter2"), "a", "r", Preset::Viewer);
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(c.token_now().is_ok());
    }

    #[test]
    fn minting_errors_name_identity_and_room() {
        let c = Credentials::mint(Keys::new("", ""), "alice", "demo", Preset::Viewer);
        let e = c.token_now().unwrap_err();
        assert!(!e.is_retryable());
        assert!(
            e.to_string().contains("alice") && e.to_string().contains("demo"),
            "{e}"
        );
    }
}
