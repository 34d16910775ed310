//! Data packets: what livekit-client's `DataCryptor` does for LiveKit's `EncryptedPacket`
//! (`DataPacket.encrypted_packet`: encryption type GCM, IV, key index, and the encrypted bytes of
//! an `EncryptedPacketPayload`).
//!
//! Plain AES-GCM of the whole payload — no header in clear, no associated data, no trailer: the
//! IV and key index travel in the packet's own fields.

use std::sync::Arc;

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Nonce, Tag};

use crate::E2eeError;
use crate::frame::{IV_LENGTH, TAG_LENGTH};
use crate::key::KeySet;
use crate::provider::KeyRing;

/// An encrypted data packet payload and what the receiver needs to open it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedData {
    /// Ciphertext and tag (`EncryptedPacket.encrypted_value`).
    pub ciphertext: Vec<u8>,
    /// `EncryptedPacket.iv`.
    pub iv: [u8; IV_LENGTH],
    /// `EncryptedPacket.key_index`.
    pub key_index: u8,
}

/// Encrypt `payload` with `keys` under `iv` (for known-answer tests; senders use
/// [`DataEncryptor`]).
pub fn encrypt_data_with_iv(
    payload: &[u8],
    keys: &KeySet,
    iv: &[u8; IV_LENGTH],
) -> Result<Vec<u8>, E2eeError> {
    let mut out = Vec::with_capacity(payload.len() + TAG_LENGTH);
    out.extend_from_slice(payload);
    let tag = keys
        .cipher
        .encrypt_inout_detached(&Nonce::from(*iv), &[], out.as_mut_slice().into())
        .map_err(|_| E2eeError::Encrypt)?;
    out.extend_from_slice(&tag);
    Ok(out)
}

fn open(keys: &KeySet, ciphertext: &[u8], iv: &[u8]) -> Option<Vec<u8>> {
    let split = ciphertext.len().checked_sub(TAG_LENGTH)?;
    let nonce = Nonce::try_from(iv).ok()?;
    let tag = Tag::try_from(&ciphertext[split..]).ok()?;
    let mut out = ciphertext[..split].to_vec();
    keys.cipher
        .decrypt_inout_detached(&nonce, &[], out.as_mut_slice().into(), &tag)
        .ok()?;
    Some(out)
}

/// Encrypts one participant's data packets with its current key.
#[derive(Debug)]
pub struct DataEncryptor {
    ring: Arc<KeyRing>,
    /// First IV word: random per encryptor; then a 64-bit counter from a random start.
    salt: u32,
    counter: u64,
}

impl DataEncryptor {
    /// An encryptor with `ring`'s current key.
    pub fn new(ring: Arc<KeyRing>) -> Self {
        Self {
            ring,
            salt: rand::random(),
            counter: rand::random(),
        }
    }

    /// Encrypt one payload (an encoded `EncryptedPacketPayload`). Fails when no key is set.
    pub fn encrypt(&mut self, payload: &[u8]) -> Result<SealedData, E2eeError> {
        let (key_index, keys) = self
            .ring
            .current()
            .ok_or(E2eeError::MissingKey { index: 0 })?;
        let mut iv = [0u8; IV_LENGTH];
        iv[..4].copy_from_slice(&self.salt.to_be_bytes());
        iv[4..].copy_from_slice(&self.counter.to_be_bytes());
        self.counter = self.counter.wrapping_add(1);
        Ok(SealedData {
            ciphertext: encrypt_data_with_iv(payload, &keys, &iv)?,
            iv,
            key_index,
        })
    }
}

/// Decrypt a data packet from a participant whose keys are `ring`: the key at `key_index`, then
/// its ratchet steps within the provider's window (a step that opens it is adopted), as
/// livekit-client's `DataCryptor.decrypt`. Never panics, whatever the bytes.
pub fn decrypt_data(
    ring: &KeyRing,
    ciphertext: &[u8],
    iv: &[u8],
    key_index: u32,
) -> Result<Vec<u8>, E2eeError> {
    let index = u8::try_from(key_index).map_err(|_| E2eeError::MissingKey { index: u8::MAX })?;
    if iv.len() != IV_LENGTH {
        return Err(E2eeError::IvLength { len: iv.len() });
    }
    if ciphertext.len() < TAG_LENGTH {
        return Err(E2eeError::Truncated {
            len: ciphertext.len(),
            min: TAG_LENGTH,
        });
    }
    let keys = ring.get(index).ok_or(E2eeError::MissingKey { index })?;
    if let Some(plain) = open(&keys, ciphertext, iv) {
        return Ok(plain);
    }
    for n in 1..=ring.ratchet_window() as usize {
        let Some(step) = ring.ratchet_step(index, &keys, n) else {
            break;
        };
        if let Some(plain) = open(&step, ciphertext, iv) {
            ring.adopt_ratchet(index, &keys, n);
            return Ok(plain);
        }
    }
    Err(E2eeError::DecryptionFailed { index })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyMaterial, KeyProvider};

    #[test]
    fn data_round_trips_and_refuses_what_was_changed() {
        let keys = KeyProvider::with_shared_key(KeyMaterial::passphrase("data"));
        let mut tx = DataEncryptor::new(keys.ring("a"));
        let sealed = tx.encrypt(b"chat: hello").unwrap();
        let again = tx.encrypt(b"chat: hello").unwrap();
        assert_ne!(sealed.iv, again.iv, "a fresh IV per packet");
        let ring = keys.ring("a");
        let k = u32::from(sealed.key_index);
        assert_eq!(
            decrypt_data(&ring, &sealed.ciphertext, &sealed.iv, k).unwrap(),
            b"chat: hello"
        );
        let mut bad = sealed.ciphertext.clone();
        bad[0] ^= 1;
        assert!(decrypt_data(&ring, &bad, &sealed.iv, k).is_err());
        assert!(decrypt_data(&ring, &sealed.ciphertext, &sealed.iv[..8], k).is_err());
        assert!(decrypt_data(&ring, &sealed.ciphertext[..10], &sealed.iv, k).is_err());
        assert!(decrypt_data(&ring, &sealed.ciphertext, &sealed.iv, 300).is_err());
        assert_eq!(
            decrypt_data(&ring, &sealed.ciphertext, &sealed.iv, 5),
            Err(E2eeError::MissingKey { index: 5 })
        );
    }
}
