//! Key material and what is derived from it: the AES-GCM frame key and the ratchet.
//!
//! As livekit-client's `deriveKeys`/`ratchet` and the SDKs' frame cryptor do it:
//! - a passphrase (or any byte string given to the SDKs as a "shared key") is PBKDF2 material:
//!   the AES-128 key is PBKDF2-HMAC-SHA256(material, salt, 100 000 iterations, 16 bytes);
//! - a raw random key (livekit-client's `createKeyMaterialFromBuffer`) is HKDF material: the key
//!   is HKDF-SHA256(salt, material, info = 128 zero bytes, 16 bytes);
//! - ratcheting derives 32 bytes the same way from the material, and those bytes become the new
//!   material (same function).
//!
//! The salt is the key provider's ratchet salt, `LKFrameEncryptionKey` by default.

use aes_gcm::{Aes128Gcm, KeyInit};
use sha2::Sha256;
use zeroize::Zeroizing;

/// PBKDF2 iterations the SDKs use, for the frame key and for each ratchet step.
pub const PBKDF2_ITERATIONS: u32 = 100_000;
/// The SDKs' default ratchet salt (also the salt of the frame key's derivation).
pub const DEFAULT_RATCHET_SALT: &[u8] = b"LKFrameEncryptionKey";
/// Length of the HKDF `info` the SDKs pass: 128 zero bytes.
const HKDF_INFO_LEN: usize = 128;
/// AES-128: the SDKs' default key size.
const KEY_LEN: usize = 16;
/// What a ratchet step derives: 256 bits.
const CHAIN_KEY_LEN: usize = 32;

/// How a key's material is turned into frame keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyDerivation {
    /// PBKDF2-HMAC-SHA256, 100 000 iterations: passphrases, and the SDKs' shared keys.
    Pbkdf2,
    /// HKDF-SHA256: raw random keys (livekit-client `setKey(ArrayBuffer)`).
    Hkdf,
}

/// The secret a key provider is given: bytes and how they are derived. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterial {
    bytes: Zeroizing<Vec<u8>>,
    derivation: KeyDerivation,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("derivation", &self.derivation)
            .field("bytes", &"<redacted>")
            .finish()
    }
}

impl KeyMaterial {
    /// A passphrase, as livekit-client's `ExternalE2EEKeyProvider.setKey(string)` takes it
    /// (its UTF-8 bytes, PBKDF2).
    pub fn passphrase(passphrase: &str) -> Self {
        Self::new(passphrase.as_bytes(), KeyDerivation::Pbkdf2)
    }

    /// Bytes with the derivation they are meant for: PBKDF2 for the Python and Rust SDKs'
    /// `shared_key` (their default), HKDF for livekit-client's `setKey(ArrayBuffer)`.
    pub fn new(bytes: &[u8], derivation: KeyDerivation) -> Self {
        Self {
            bytes: Zeroizing::new(bytes.to_vec()),
            derivation,
        }
    }

    /// How it is derived.
    pub fn derivation(&self) -> KeyDerivation {
        self.derivation
    }

    /// The material's bytes (a secret: for exporting a ratcheted key to another participant).
    pub fn expose_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// `len` bytes derived from the material with `salt`, as WebCrypto's `deriveBits` does
    /// for this material's algorithm with the SDKs' parameters.
    fn derive_bits(&self, salt: &[u8], out: &mut [u8]) {
        match self.derivation {
            KeyDerivation::Pbkdf2 => {
                pbkdf2::pbkdf2_hmac::<Sha256>(&self.bytes, salt, PBKDF2_ITERATIONS, out);
            }
            KeyDerivation::Hkdf => {
                let hk = hkdf::Hkdf::<Sha256>::new(Some(salt), &self.bytes);
                // 16 or 32 bytes from SHA-256 HKDF: always within its 255 × 32 limit.
                hk.expand(&[0u8; HKDF_INFO_LEN], out)
                    .expect("HKDF output of at most 32 bytes");
            }
        }
    }

    /// The frame key derived with `salt`.
    pub fn derive(&self, salt: &[u8]) -> KeySet {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        self.derive_bits(salt, &mut key[..]);
        let cipher = Aes128Gcm::new_from_slice(&key[..]).expect("16-byte AES-128 key");
        KeySet {
            material: self.clone(),
            cipher,
        }
    }

    /// The next material in the ratchet (`salt` is the ratchet salt).
    pub fn ratchet(&self, salt: &[u8]) -> KeyMaterial {
        let mut chain = Zeroizing::new([0u8; CHAIN_KEY_LEN]);
        self.derive_bits(salt, &mut chain[..]);
        KeyMaterial::new(&chain[..], self.derivation)
    }
}

/// Material and the AES-GCM key derived from it (one slot of a key ring). Never printed.
#[derive(Clone)]
pub struct KeySet {
    material: KeyMaterial,
    pub(crate) cipher: Aes128Gcm,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("material", &self.material)
            .field("cipher", &"<redacted>")
            .finish()
    }
}

impl KeySet {
    /// The material this key was derived from.
    pub fn material(&self) -> &KeyMaterial {
        &self.material
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let m = KeyMaterial::passphrase("hunter2-very-secret");
        let s = format!("{m:?} {:?}", m.derive(DEFAULT_RATCHET_SALT));
        assert!(!s.contains("hunter2"), "{s}");
        assert!(s.contains("redacted"), "{s}");
        let bytes = format!("{:?}", "hunter2-very-secret".as_bytes());
        assert!(!s.contains(&bytes[1..20]), "{s}");
    }

    #[test]
    fn ratchet_is_deterministic_and_changes_the_material() {
        for d in [KeyDerivation::Pbkdf2, KeyDerivation::Hkdf] {
            let m = KeyMaterial::new(b"0123456789abcdef", d);
            let a = m.ratchet(DEFAULT_RATCHET_SALT);
            let b = m.ratchet(DEFAULT_RATCHET_SALT);
            assert_eq!(a, b);
            assert_ne!(a, m);
            assert_eq!(a.expose_bytes().len(), CHAIN_KEY_LEN);
            assert_eq!(a.derivation(), d);
            assert_ne!(a.ratchet(b"other salt"), a.ratchet(DEFAULT_RATCHET_SALT));
        }
    }
}
