//! Key provider: one key ring shared by everyone (a shared passphrase) or one ring per
//! participant identity, each with up to `keyring_size` keys addressed by the key index every
//! encrypted frame carries; failure counting and ratcheting as livekit-client's
//! `ParticipantKeyHandler` does them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::E2eeError;
use crate::key::{DEFAULT_RATCHET_SALT, KeyMaterial, KeySet};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How a key provider behaves; the defaults are livekit-client's `KEY_PROVIDER_DEFAULTS`.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyProviderOptions {
    /// One key ring for every participant (a shared passphrase) instead of one per identity.
    pub shared_key: bool,
    /// Salt of key derivation and ratcheting.
    pub ratchet_salt: Vec<u8>,
    /// How many ratchet steps a receiver tries on a frame that does not decrypt (0: none).
    pub ratchet_window_size: u32,
    /// Failed frames after which a key index counts as invalid and its frames are dropped
    /// without trying (negative: never).
    pub failure_tolerance: i32,
    /// Keys per ring (1–256); key indices wrap modulo this.
    pub keyring_size: usize,
}

impl std::fmt::Debug for KeyProviderOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyProviderOptions")
            .field("shared_key", &self.shared_key)
            .field("ratchet_salt", &String::from_utf8_lossy(&self.ratchet_salt))
            .field("ratchet_window_size", &self.ratchet_window_size)
            .field("failure_tolerance", &self.failure_tolerance)
            .field("keyring_size", &self.keyring_size)
            .finish()
    }
}

impl Default for KeyProviderOptions {
    fn default() -> Self {
        Self {
            shared_key: false,
            ratchet_salt: DEFAULT_RATCHET_SALT.to_vec(),
            ratchet_window_size: 8,
            failure_tolerance: 10,
            keyring_size: 16,
        }
    }
}

impl KeyProviderOptions {
    /// A shared passphrase as livekit-client's `ExternalE2EEKeyProvider` uses it: one ring,
    /// no ratcheting, a wrong key never marked invalid (every frame is tried).
    pub fn shared() -> Self {
        Self {
            shared_key: true,
            ratchet_window_size: 0,
            failure_tolerance: -1,
            ..Self::default()
        }
    }
}

/// Where keys live: give it to every encryptor and decryptor of a room.
///
/// Cloning shares the same keys. Keys are never printed (`Debug` shows only the options).
#[derive(Clone)]
pub struct KeyProvider {
    inner: Arc<Inner>,
}

struct Inner {
    options: KeyProviderOptions,
    shared: Arc<KeyRing>,
    participants: Mutex<HashMap<String, Arc<KeyRing>>>,
}

impl std::fmt::Debug for KeyProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyProvider")
            .field("options", &self.inner.options)
            .field("keys", &"<redacted>")
            .finish()
    }
}

impl KeyProvider {
    /// An empty provider (set keys before media flows).
    pub fn new(options: KeyProviderOptions) -> Result<Self, E2eeError> {
        if !(1..=256).contains(&options.keyring_size) {
            return Err(E2eeError::KeyringSize {
                size: options.keyring_size,
            });
        }
        let options2 = options.clone();
        Ok(Self {
            inner: Arc::new(Inner {
                shared: Arc::new(KeyRing::new("shared-key", &options2)),
                options,
                participants: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// A shared key at index 0 with [`KeyProviderOptions::shared`]: what livekit-client's
    /// `ExternalE2EEKeyProvider` with `setKey(passphrase)` does.
    pub fn with_shared_key(material: KeyMaterial) -> Self {
        let p = Self::new(KeyProviderOptions::shared()).expect("valid default options");
        p.set_shared_key(material, 0);
        p
    }

    /// The options.
    pub fn options(&self) -> &KeyProviderOptions {
        &self.inner.options
    }

    /// Set the shared key at `index` and make it the one frames are encrypted with.
    pub fn set_shared_key(&self, material: KeyMaterial, index: u8) {
        self.inner.shared.set_key(material, index);
    }

    /// Set `identity`'s key at `index` and make it current (with
    /// [`KeyProviderOptions::shared_key`], the shared key: every identity has the same ring).
    pub fn set_key(&self, identity: &str, material: KeyMaterial, index: u8) {
        self.ring(identity).set_key(material, index);
    }

    /// Ratchet `identity`'s key at `index` (the current one when `None`) and return the new
    /// material, to hand to the other participants. Fails when there is no key there.
    pub fn ratchet_key(&self, identity: &str, index: Option<u8>) -> Result<KeyMaterial, E2eeError> {
        self.ring(identity).ratchet(index)
    }

    /// The key ring frames of `identity` are encrypted with (shared: the one ring).
    pub fn ring(&self, identity: &str) -> Arc<KeyRing> {
        if self.inner.options.shared_key {
            return self.inner.shared.clone();
        }
        lock(&self.inner.participants)
            .entry(identity.to_owned())
            .or_insert_with(|| Arc::new(KeyRing::new(identity, &self.inner.options)))
            .clone()
    }
}

/// One participant's keys (or the shared ones): slots by key index, the current index, and
/// decryption failures per index.
pub struct KeyRing {
    identity: String,
    salt: Vec<u8>,
    ratchet_window: u32,
    failure_tolerance: i32,
    state: Mutex<RingState>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("identity", &self.identity)
            .field("keys", &"<redacted>")
            .finish()
    }
}

struct Slot {
    keys: Arc<KeySet>,
    /// Ratchet steps from `keys` computed so far (each costs two key derivations).
    ratchets: Vec<Arc<KeySet>>,
}

struct RingState {
    slots: Vec<Option<Slot>>,
    failures: Vec<u32>,
    current: usize,
}

impl KeyRing {
    fn new(identity: &str, options: &KeyProviderOptions) -> Self {
        let n = options.keyring_size;
        Self {
            identity: identity.to_owned(),
            salt: options.ratchet_salt.clone(),
            ratchet_window: options.ratchet_window_size,
            failure_tolerance: options.failure_tolerance,
            state: Mutex::new(RingState {
                slots: (0..n).map(|_| None).collect(),
                failures: vec![0; n],
                current: 0,
            }),
        }
    }

    /// Whose ring this is (`shared-key` for the shared ring).
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The slot a key set at `index` goes to (indices wrap around the ring, as the SDKs set
    /// them).
    fn slot_index(st: &RingState, index: u8) -> usize {
        usize::from(index) % st.slots.len()
    }

    /// The slot a received frame's `index` names: none past the ring (the SDKs find no key
    /// there; the index is not authenticated, so it must not wrap onto a key).
    fn named_slot(st: &RingState, index: u8) -> Option<usize> {
        let i = usize::from(index);
        (i < st.slots.len()).then_some(i)
    }

    /// Derive and store a key at `index`, make it current, and forget its failures.
    pub fn set_key(&self, material: KeyMaterial, index: u8) {
        let keys = Arc::new(material.derive(&self.salt));
        let mut st = lock(&self.state);
        let i = Self::slot_index(&st, index);
        st.slots[i] = Some(Slot {
            keys,
            ratchets: Vec::new(),
        });
        st.current = i;
        st.failures[i] = 0;
    }

    /// The key index frames are encrypted with now and its key, if set.
    pub(crate) fn current(&self) -> Option<(u8, Arc<KeySet>)> {
        let st = lock(&self.state);
        let slot = st.slots[st.current].as_ref()?;
        Some((st.current as u8, slot.keys.clone()))
    }

    /// The key at `index`, if set.
    pub(crate) fn get(&self, index: u8) -> Option<Arc<KeySet>> {
        let st = lock(&self.state);
        st.slots[Self::named_slot(&st, index)?]
            .as_ref()
            .map(|s| s.keys.clone())
    }

    /// Whether `frame` is one sealed with a key of this ring, checked without side effects
    /// (no failure counted, no ratchet, no replay window): for telling an encrypted frame from
    /// a plain one when a track's encryption is not known.
    pub fn opens(&self, codec: crate::Codec, frame: &[u8]) -> bool {
        let Some(&index) = frame.last() else {
            return false;
        };
        self.get(index)
            .is_some_and(|keys| crate::decrypt_with(codec, frame, &keys).is_ok())
    }

    /// Whether frames with `index` are dropped without trying (too many failures).
    pub fn is_invalid(&self, index: u8) -> bool {
        let st = lock(&self.state);
        self.failure_tolerance >= 0
            && Self::named_slot(&st, index)
                .is_some_and(|i| st.failures[i] > self.failure_tolerance as u32)
    }

    /// A frame with `index` failed to decrypt.
    pub(crate) fn failure(&self, index: u8) {
        if self.failure_tolerance < 0 {
            return;
        }
        let mut st = lock(&self.state);
        if let Some(i) = Self::named_slot(&st, index) {
            st.failures[i] = st.failures[i].saturating_add(1);
        }
    }

    /// A frame with `index` decrypted.
    pub(crate) fn success(&self, index: u8) {
        let mut st = lock(&self.state);
        if let Some(i) = Self::named_slot(&st, index) {
            st.failures[i] = 0;
        }
    }

    /// How many ratchet steps a failing frame may try.
    pub(crate) fn ratchet_window(&self) -> u32 {
        self.ratchet_window
    }

    /// Step `n` (1-based) of the ratchet from `base`, if the key at `index` is still `base`
    /// (`None` when a new key was set meanwhile). Steps are asked for in order; each is
    /// computed once and kept until the slot's key changes.
    pub(crate) fn ratchet_step(
        &self,
        index: u8,
        base: &Arc<KeySet>,
        n: usize,
    ) -> Option<Arc<KeySet>> {
        let previous = {
            let st = lock(&self.state);
            let slot = st.slots[Self::named_slot(&st, index)?].as_ref()?;
            if !Arc::ptr_eq(&slot.keys, base) || n == 0 || slot.ratchets.len() < n - 1 {
                return None;
            }
            if let Some(k) = slot.ratchets.get(n - 1) {
                return Some(k.clone());
            }
            slot.ratchets.last().unwrap_or(&slot.keys).clone()
        };
        // Derive outside the lock (two PBKDF2 runs): other tracks keep going meanwhile.
        let next = Arc::new(previous.material().ratchet(&self.salt).derive(&self.salt));
        let mut st = lock(&self.state);
        let i = Self::named_slot(&st, index)?;
        let slot = st.slots[i].as_mut()?;
        if !Arc::ptr_eq(&slot.keys, base) {
            return None;
        }
        if slot.ratchets.len() == n - 1 {
            slot.ratchets.push(next);
        }
        slot.ratchets.get(n - 1).cloned()
    }

    /// A ratchet step decrypted a frame: it becomes the key at `index` (unless a new key was
    /// set meanwhile), and the current one.
    pub(crate) fn adopt_ratchet(&self, index: u8, base: &Arc<KeySet>, step: usize) {
        let mut st = lock(&self.state);
        let Some(i) = Self::named_slot(&st, index) else {
            return;
        };
        let Some(slot) = st.slots[i].as_mut() else {
            return;
        };
        if !Arc::ptr_eq(&slot.keys, base) || step == 0 || slot.ratchets.len() < step {
            return;
        }
        let rest = slot.ratchets.split_off(step);
        slot.keys = slot.ratchets.pop().expect("step within ratchets");
        slot.ratchets = rest;
        st.current = i;
        st.failures[i] = 0;
    }

    /// Ratchet the key at `index` (current when `None`) one step, make it current, return the
    /// new material.
    pub fn ratchet(&self, index: Option<u8>) -> Result<KeyMaterial, E2eeError> {
        let (i, base) = {
            let st = lock(&self.state);
            let i = index.map_or(st.current, |x| Self::slot_index(&st, x));
            let base = st.slots[i]
                .as_ref()
                .map(|s| s.keys.clone())
                .ok_or(E2eeError::MissingKey { index: i as u8 })?;
            (i, base)
        };
        let material = base.material().ratchet(&self.salt);
        self.set_key(material.clone(), i as u8);
        Ok(material)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Codec, FrameDecryptor, FrameEncryptor};

    const OPUS: &[u8] = &[0x78, 1, 2, 3, 4, 5, 6, 7];

    #[test]
    fn a_receiver_follows_a_sender_that_ratcheted_within_its_window() {
        let options = KeyProviderOptions {
            shared_key: true,
            ..KeyProviderOptions::default()
        };
        let tx_keys = KeyProvider::new(options.clone()).unwrap();
        let rx_keys = KeyProvider::new(options).unwrap();
        let m = KeyMaterial::passphrase("ratchet me");
        tx_keys.set_shared_key(m.clone(), 0);
        rx_keys.set_shared_key(m, 0);
        let mut tx = FrameEncryptor::new(tx_keys.ring("a"));
        let mut rx = FrameDecryptor::new(rx_keys.ring("a"));
        assert!(
            rx.decrypt(Codec::Opus, &tx.encrypt(Codec::Opus, OPUS, 0).unwrap())
                .is_ok()
        );
        // The sender ratchets twice; the receiver catches up on the next frame by itself.
        tx_keys.ratchet_key("a", None).unwrap();
        let new = tx_keys.ratchet_key("a", Some(0)).unwrap();
        let f = tx.encrypt(Codec::Opus, OPUS, 960).unwrap();
        assert_eq!(rx.decrypt(Codec::Opus, &f).unwrap(), OPUS);
        assert_eq!(rx.stats().ratchets, 1);
        // …and keeps the ratcheted key: the next frame opens without ratcheting.
        assert_eq!(rx_keys.ring("a").get(0).unwrap().material(), &new);
        assert!(
            rx.decrypt(Codec::Opus, &tx.encrypt(Codec::Opus, OPUS, 1920).unwrap())
                .is_ok()
        );
        assert_eq!(rx.stats().ratchets, 1);
    }

    #[test]
    fn a_wrong_key_is_marked_invalid_after_the_tolerance_and_reset_by_a_new_key() {
        let options = KeyProviderOptions {
            shared_key: true,
            ratchet_window_size: 0,
            failure_tolerance: 2,
            ..KeyProviderOptions::default()
        };
        let rx_keys = KeyProvider::new(options).unwrap();
        rx_keys.set_shared_key(KeyMaterial::passphrase("wrong"), 0);
        let tx_keys = KeyProvider::with_shared_key(KeyMaterial::passphrase("right"));
        let mut tx = FrameEncryptor::new(tx_keys.ring("a"));
        let mut rx = FrameDecryptor::new(rx_keys.ring("a"));
        let mut errors = Vec::new();
        for n in 0..5 {
            let f = tx.encrypt(Codec::Opus, OPUS, n * 960).unwrap();
            errors.push(rx.decrypt(Codec::Opus, &f).unwrap_err());
        }
        assert_eq!(
            errors,
            [
                E2eeError::DecryptionFailed { index: 0 },
                E2eeError::DecryptionFailed { index: 0 },
                E2eeError::DecryptionFailed { index: 0 },
                E2eeError::InvalidKey { index: 0 },
                E2eeError::InvalidKey { index: 0 },
            ]
        );
        rx_keys.set_shared_key(KeyMaterial::passphrase("right"), 0);
        let f = tx.encrypt(Codec::Opus, OPUS, 9600).unwrap();
        assert_eq!(rx.decrypt(Codec::Opus, &f).unwrap(), OPUS);
    }

    #[test]
    fn per_participant_rings_are_separate_and_a_missing_key_is_named() {
        let keys = KeyProvider::new(KeyProviderOptions::default()).unwrap();
        keys.set_key("alice", KeyMaterial::passphrase("alice's"), 1);
        let mut tx = FrameEncryptor::new(keys.ring("alice"));
        let f = tx.encrypt(Codec::Vp8, &[0x50; 20], 0).unwrap();
        assert_eq!(*f.last().unwrap(), 1);
        assert!(
            FrameDecryptor::new(keys.ring("alice"))
                .decrypt(Codec::Vp8, &f)
                .is_ok()
        );
        assert_eq!(
            FrameDecryptor::new(keys.ring("bob")).decrypt(Codec::Vp8, &f),
            Err(E2eeError::MissingKey { index: 1 })
        );
        assert_eq!(
            FrameEncryptor::new(keys.ring("bob")).encrypt(Codec::Vp8, &[0x50; 20], 0),
            Err(E2eeError::MissingKey { index: 0 })
        );
        assert!(format!("{keys:?}").contains("redacted"));
    }

    #[test]
    fn key_indices_wrap_around_the_ring_and_sizes_are_checked() {
        let keys = KeyProvider::new(KeyProviderOptions {
            keyring_size: 4,
            ..KeyProviderOptions::shared()
        })
        .unwrap();
        keys.set_shared_key(KeyMaterial::passphrase("k"), 6);
        assert_eq!(keys.ring("x").current().unwrap().0, 2);
        // A received frame's index does not wrap: 6 names no key in a ring of 4.
        let mut tx = FrameEncryptor::new(keys.ring("x"));
        let mut f = tx.encrypt(Codec::Opus, OPUS, 0).unwrap();
        *f.last_mut().unwrap() = 6;
        assert_eq!(
            FrameDecryptor::new(keys.ring("x")).decrypt(Codec::Opus, &f),
            Err(E2eeError::MissingKey { index: 6 })
        );
        for size in [0, 257] {
            let o = KeyProviderOptions {
                keyring_size: size,
                ..KeyProviderOptions::default()
            };
            assert_eq!(
                KeyProvider::new(o).unwrap_err(),
                E2eeError::KeyringSize { size }
            );
        }
    }
}
