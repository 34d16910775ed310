//! The frame cryptor: one encrypted frame as livekit-client and the SDKs lay it out.
//!
//! ```text
//! header (in clear) ‖ AES-GCM(rest of the frame) ‖ tag (16) ‖ IV (12) ‖ IV length (1) ‖ key index (1)
//! ```
//! The header is also the AES-GCM associated data, so it is authenticated: 10 bytes of a VP8
//! key frame (frame tag, start code, size — what a forwarding server reads), 3 of a VP8 delta
//! frame, the TOC byte of an Opus packet, nothing of a VP9 frame. An empty frame (Opus DTX)
//! passes as it is.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Nonce, Tag};

use crate::E2eeError;
use crate::key::KeySet;
use crate::provider::KeyRing;

/// Length of the IV the SDKs send (AES-GCM's 96-bit nonce).
pub const IV_LENGTH: usize = 12;
/// AES-GCM tag length.
pub const TAG_LENGTH: usize = 16;
/// IV length byte and key index byte.
pub const TRAILER_LENGTH: usize = 2;
/// Bytes in clear at the start of a VP8 key frame.
pub const VP8_KEY_FRAME_HEADER: usize = 10;
/// Bytes in clear at the start of a VP8 delta frame.
pub const VP8_DELTA_FRAME_HEADER: usize = 3;
/// Bytes in clear at the start of an Opus packet (its TOC byte).
pub const OPUS_HEADER: usize = 1;
/// Accepted IVs a decryptor remembers to refuse replays.
pub const REPLAY_WINDOW: usize = 1024;

/// The codec of a frame: decides how many bytes stay in clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// Opus audio (any audio, as the SDKs treat it: 1 byte in clear).
    Opus,
    /// VP8 video: key frames keep 10 bytes in clear, delta frames 3.
    Vp8,
    /// VP9 video: nothing in clear.
    Vp9,
}

impl Codec {
    /// Bytes of `frame` kept in clear. For VP8 the key/delta decision is the frame tag's bit 0
    /// (0 = key frame, RFC 6386 §9.1) — in clear, so sender and receiver agree.
    pub fn header_len(self, frame: &[u8]) -> usize {
        match self {
            Codec::Opus => OPUS_HEADER,
            Codec::Vp8 => match frame.first() {
                Some(b) if b & 1 == 0 => VP8_KEY_FRAME_HEADER,
                _ => VP8_DELTA_FRAME_HEADER,
            },
            Codec::Vp9 => 0,
        }
    }
}

/// The IV livekit-client builds: SSRC ‖ RTP timestamp ‖ (RTP timestamp − send count mod 0xffff),
/// big-endian. Any IV unique under a key works (the receiver reads it from the frame); our
/// encryptor uses [`FrameEncryptor`]'s own, with a counter that never repeats.
pub fn livekit_client_iv(ssrc: u32, rtp_timestamp: u32, send_count: u32) -> [u8; IV_LENGTH] {
    let mut iv = [0u8; IV_LENGTH];
    iv[..4].copy_from_slice(&ssrc.to_be_bytes());
    iv[4..8].copy_from_slice(&rtp_timestamp.to_be_bytes());
    iv[8..].copy_from_slice(
        &rtp_timestamp
            .wrapping_sub(send_count % 0xffff)
            .to_be_bytes(),
    );
    iv
}

/// Encrypt `frame` with `keys` under `iv`, marked with `key_index`. Public for known-answer
/// tests; senders use [`FrameEncryptor`], which picks unique IVs.
pub fn encrypt_with_iv(
    codec: Codec,
    frame: &[u8],
    keys: &KeySet,
    key_index: u8,
    iv: &[u8; IV_LENGTH],
) -> Result<Vec<u8>, E2eeError> {
    if frame.is_empty() {
        return Ok(Vec::new());
    }
    let header = codec.header_len(frame);
    if frame.len() < header {
        return Err(E2eeError::Truncated {
            len: frame.len(),
            min: header,
        });
    }
    let mut out = Vec::with_capacity(frame.len() + TAG_LENGTH + IV_LENGTH + TRAILER_LENGTH);
    out.extend_from_slice(frame);
    let (aad, body) = out.split_at_mut(header);
    let tag = keys
        .cipher
        .encrypt_inout_detached(&Nonce::from(*iv), aad, body.into())
        .map_err(|_| E2eeError::Encrypt)?;
    out.extend_from_slice(&tag);
    out.extend_from_slice(iv);
    out.push(IV_LENGTH as u8);
    out.push(key_index);
    Ok(out)
}

/// The parts of an encrypted frame.
struct Parts<'a> {
    header: &'a [u8],
    ciphertext: &'a [u8],
    tag: &'a [u8],
    iv: &'a [u8],
    key_index: u8,
}

fn parse(codec: Codec, frame: &[u8]) -> Result<Parts<'_>, E2eeError> {
    let header = codec.header_len(frame);
    let min = header + TAG_LENGTH + IV_LENGTH + TRAILER_LENGTH;
    if frame.len() < min {
        return Err(E2eeError::Truncated {
            len: frame.len(),
            min,
        });
    }
    let key_index = frame[frame.len() - 1];
    let iv_len = usize::from(frame[frame.len() - 2]);
    if iv_len != IV_LENGTH {
        return Err(E2eeError::IvLength { len: iv_len });
    }
    let iv_start = frame.len() - TRAILER_LENGTH - IV_LENGTH;
    let tag_start = iv_start - TAG_LENGTH;
    Ok(Parts {
        header: &frame[..header],
        ciphertext: &frame[header..tag_start],
        tag: &frame[tag_start..iv_start],
        iv: &frame[iv_start..iv_start + IV_LENGTH],
        key_index,
    })
}

/// The key index an encrypted frame names (its last byte), if it has one.
pub fn key_index_of(frame: &[u8]) -> Option<u8> {
    frame.last().copied()
}

fn open(keys: &KeySet, parts: &Parts<'_>) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(parts.header.len() + parts.ciphertext.len());
    out.extend_from_slice(parts.header);
    out.extend_from_slice(parts.ciphertext);
    let nonce = Nonce::try_from(parts.iv).ok()?;
    let tag = Tag::try_from(parts.tag).ok()?;
    let (aad, body) = out.split_at_mut(parts.header.len());
    keys.cipher
        .decrypt_inout_detached(&nonce, aad, body.into(), &tag)
        .ok()?;
    Some(out)
}

/// Decrypt `frame` with exactly `keys` (no ratchet, no replay check). For tests and tools.
pub fn decrypt_with(codec: Codec, frame: &[u8], keys: &KeySet) -> Result<Vec<u8>, E2eeError> {
    if frame.is_empty() {
        return Ok(Vec::new());
    }
    let parts = parse(codec, frame)?;
    open(keys, &parts).ok_or(E2eeError::DecryptionFailed {
        index: parts.key_index,
    })
}

/// Encrypts one track's frames with its sender's current key.
#[derive(Debug)]
pub struct FrameEncryptor {
    ring: Arc<KeyRing>,
    /// First IV word: random per encryptor (livekit-client puts the SSRC there).
    salt: u32,
    /// Third IV word: a counter from a random start, never repeating within 2³² frames.
    counter: u32,
    encrypted: u64,
}

impl FrameEncryptor {
    /// An encryptor with `ring`'s current key (read at every frame, so a new key applies at
    /// once).
    pub fn new(ring: Arc<KeyRing>) -> Self {
        Self {
            ring,
            salt: rand::random(),
            counter: rand::random(),
            encrypted: 0,
        }
    }

    /// Encrypt one frame whose RTP timestamp is `rtp_timestamp` (its low 32 bits enter the
    /// IV). Fails when no key is set.
    pub fn encrypt(
        &mut self,
        codec: Codec,
        frame: &[u8],
        rtp_timestamp: u64,
    ) -> Result<Vec<u8>, E2eeError> {
        let (index, keys) = self
            .ring
            .current()
            .ok_or(E2eeError::MissingKey { index: 0 })?;
        let mut iv = [0u8; IV_LENGTH];
        iv[..4].copy_from_slice(&self.salt.to_be_bytes());
        iv[4..8].copy_from_slice(&(rtp_timestamp as u32).to_be_bytes());
        iv[8..].copy_from_slice(&self.counter.to_be_bytes());
        self.counter = self.counter.wrapping_add(1);
        let out = encrypt_with_iv(codec, frame, &keys, index, &iv)?;
        self.encrypted += 1;
        Ok(out)
    }

    /// Frames encrypted so far.
    pub fn encrypted(&self) -> u64 {
        self.encrypted
    }
}

/// Counters of a decryptor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecryptStats {
    /// Frames decrypted.
    pub decrypted: u64,
    /// Frames refused: no key, wrong key, malformed, tampered or replayed.
    pub failed: u64,
    /// Of those, replays (a frame whose IV was accepted before).
    pub replayed: u64,
    /// Ratchet steps that decrypted a frame and replaced the key.
    pub ratchets: u64,
}

/// Decrypts one track's frames with its sender's key ring: tries the key index the frame
/// names, ratchets within the provider's window when it fails, counts failures against the
/// key, and refuses replays (an IV accepted before, among the last [`REPLAY_WINDOW`]).
#[derive(Debug)]
pub struct FrameDecryptor {
    ring: Arc<KeyRing>,
    seen: HashSet<[u8; IV_LENGTH]>,
    order: VecDeque<[u8; IV_LENGTH]>,
    stats: DecryptStats,
}

impl FrameDecryptor {
    /// A decryptor reading keys from `ring`.
    pub fn new(ring: Arc<KeyRing>) -> Self {
        Self {
            ring,
            seen: HashSet::new(),
            order: VecDeque::new(),
            stats: DecryptStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> DecryptStats {
        self.stats
    }

    /// The plain frame, or why it was refused (never panics, whatever the bytes).
    pub fn decrypt(&mut self, codec: Codec, frame: &[u8]) -> Result<Vec<u8>, E2eeError> {
        let r = self.attempt(codec, frame);
        match &r {
            Ok(_) => self.stats.decrypted += 1,
            Err(e) => {
                self.stats.failed += 1;
                if matches!(e, E2eeError::Replayed) {
                    self.stats.replayed += 1;
                }
            }
        }
        r
    }

    fn attempt(&mut self, codec: Codec, frame: &[u8]) -> Result<Vec<u8>, E2eeError> {
        if frame.is_empty() {
            return Ok(Vec::new());
        }
        let parts = parse(codec, frame)?;
        let index = parts.key_index;
        if self.ring.is_invalid(index) {
            return Err(E2eeError::InvalidKey { index });
        }
        let Some(keys) = self.ring.get(index) else {
            self.ring.failure(index);
            return Err(E2eeError::MissingKey { index });
        };
        let plain = match open(&keys, &parts) {
            Some(p) => p,
            None => match self.ratchet(&keys, &parts) {
                Some(p) => p,
                None => {
                    self.ring.failure(index);
                    return Err(E2eeError::DecryptionFailed { index });
                }
            },
        };
        self.ring.success(index);
        let iv: [u8; IV_LENGTH] = parts.iv.try_into().expect("IV of IV_LENGTH");
        if !self.seen.insert(iv) {
            return Err(E2eeError::Replayed);
        }
        self.order.push_back(iv);
        if self.order.len() > REPLAY_WINDOW
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        Ok(plain)
    }

    /// Try the ratchet steps after `base`; adopt the one that decrypts.
    fn ratchet(&mut self, base: &Arc<KeySet>, parts: &Parts<'_>) -> Option<Vec<u8>> {
        let window = self.ring.ratchet_window() as usize;
        for n in 1..=window {
            let keys = self.ring.ratchet_step(parts.key_index, base, n)?;
            if let Some(p) = open(&keys, parts) {
                self.ring.adopt_ratchet(parts.key_index, base, n);
                self.stats.ratchets += 1;
                return Some(p);
            }
        }
        None
    }
}
