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

    fn slot_index(st: &RingState, index: u8) -> usize {
        usize::from(index) % st.slots.len()
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
        st.slots[Self::slot_index(&st, index)]
            .as_ref()
            .map(|s| s.keys.clone())
    }

    /// Whether frames with `index` are dropped without trying (too many failures).
    pub fn is_invalid(&self, index: u8) -> bool {
        let st = lock(&self.state);
        self.failure_tolerance >= 0
            && st.failures[Self::slot_index(&st, index)] > self.failure_tolerance as u32
    }

    /// A frame with `index` failed to decrypt.
    pub(crate) fn failure(&self, index: u8) {
        if self.failure_tolerance < 0 {
            return;
        }
        let mut st = lock(&self.state);
        let i = Self::slot_index(&st, index);
        st.failures[i] = st.failures[i].saturating_add(1);
    }

    /// A frame with `index` decrypted.
    pub(crate) fn success(&self, index: u8) {
        let mut st = lock(&self.state);
        let i = Self::slot_index(&st, index);
        st.failures[i] = 0;
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
            let slot = st.slots[Self::slot_index(&st, index)].as_ref()?;
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
        let i = Self::slot_index(&st, index);
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
        let i = Self::slot_index(&st, index);
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
