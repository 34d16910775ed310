//! End-to-end media encryption compatible with livekit-client and the LiveKit SDKs.
//!
//! Pure logic, no I/O: a [`KeyProvider`] (one shared key ring, or one per participant, keys
//! derived as the SDKs derive them — PBKDF2 for passphrases, HKDF for raw keys — with their
//! ratchet), and the frame cryptor: [`FrameEncryptor`] seals an encoded frame (a VP8 frame, an
//! Opus packet) into the SDKs' layout, [`FrameDecryptor`] opens one, ratchets within the
//! provider's window, counts failures against the key and refuses replays. Data packets
//! (LiveKit's `EncryptedPacket`) have [`DataEncryptor`] and [`decrypt_data`].
//!
//! ```
//! use wavecast_e2ee::{Codec, FrameDecryptor, FrameEncryptor, KeyMaterial, KeyProvider};
//!
//! let keys = KeyProvider::with_shared_key(KeyMaterial::passphrase("correct horse"));
//! let mut tx = FrameEncryptor::new(keys.ring("alice"));
//! let mut rx = FrameDecryptor::new(keys.ring("alice"));
//! let opus = [0x78, 1, 2, 3, 4];
//! let sealed = tx.encrypt(Codec::Opus, &opus, 960).unwrap();
//! assert_eq!(sealed[0], 0x78); // the TOC byte stays in clear
//! assert_eq!(rx.decrypt(Codec::Opus, &sealed).unwrap(), opus);
//! ```
//!
//! The format (read from livekit-client's e2ee worker and the SDKs, see docs/E2EE.md):
//! `header ‖ ciphertext ‖ tag(16) ‖ IV(12) ‖ 12 ‖ key index`, the header in clear and
//! authenticated. Keys never appear in `Debug` output or errors.
#![deny(missing_docs)]

mod data;
mod frame;
mod key;
mod provider;

pub use data::{DataEncryptor, SealedData, decrypt_data, encrypt_data_with_iv};
pub use frame::{
    Codec, DecryptStats, FrameDecryptor, FrameEncryptor, IV_LENGTH, OPUS_HEADER, REPLAY_WINDOW,
    TAG_LENGTH, TRAILER_LENGTH, VP8_DELTA_FRAME_HEADER, VP8_KEY_FRAME_HEADER, decrypt_with,
    encrypt_with_iv, key_index_of, livekit_client_iv,
};
pub use key::{DEFAULT_RATCHET_SALT, KeyDerivation, KeyMaterial, KeySet, PBKDF2_ITERATIONS};
pub use provider::{KeyProvider, KeyProviderOptions, KeyRing};

/// Why a frame was not encrypted or decrypted. Names no key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum E2eeError {
    /// The frame is shorter than its clear header plus the trailer.
    #[error("encrypted frame too short: {len} bytes, at least {min} needed")]
    Truncated {
        /// Its length.
        len: usize,
        /// The least a frame of its kind needs.
        min: usize,
    },
    /// The trailer names an IV length other than 12.
    #[error("encrypted frame names a {len}-byte IV (12 expected)")]
    IvLength {
        /// The length named.
        len: usize,
    },
    /// No key at the frame's key index (or, encrypting, no key set at all).
    #[error("no key at index {index}")]
    MissingKey {
        /// The key index.
        index: u8,
    },
    /// The key at the frame's index (and its ratchet window) does not decrypt it: a wrong
    /// key, or a tampered frame.
    #[error("frame does not decrypt with the key at index {index} (wrong key or tampered)")]
    DecryptionFailed {
        /// The key index.
        index: u8,
    },
    /// The key at the frame's index failed more often than the provider tolerates: its frames
    /// are dropped without trying until a new key is set.
    #[error("the key at index {index} is marked invalid after repeated failures")]
    InvalidKey {
        /// The key index.
        index: u8,
    },
    /// The frame's IV was accepted before: a replay.
    #[error("replayed frame (its IV was seen before)")]
    Replayed,
    /// AES-GCM refused to encrypt (a frame over 64 GiB).
    #[error("AES-GCM could not encrypt the frame")]
    Encrypt,
    /// A key provider's ring size outside 1–256.
    #[error("key ring size {size} outside 1..=256")]
    KeyringSize {
        /// The size asked for.
        size: usize,
    },
}
