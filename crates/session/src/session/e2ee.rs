//! End-to-end encryption on the session's tracks (`wavecast-e2ee`, livekit-client's format).
//!
//! Where frames are touched: a published track's frames are encrypted after encoding and before
//! the engine packetises them (every write into a [`PublishedTrack`](super::PublishedTrack), the
//! session's publishers included), and the track is announced with `encryption: GCM`; a
//! subscribed track announced as encrypted has its frames decrypted after the engine
//! depacketised them and before anyone decodes or records them (in the
//! [`SubscribedTrack`](super::SubscribedTrack) handle, on the reader's thread). A frame that does
//! not decrypt is dropped — never handed on — and the handle reports the track's state when it
//! changes ([`SessionEvent::E2eeStateChanged`], the room's `RoomEvent::E2eeStateChanged`).
//!
//! An encrypted track in a session without keys is withheld (its frames dropped, state
//! [`E2eeState::MissingKey`]) unless its reader asked for the encrypted frames
//! ([`SubscribedTrack::pass_encrypted`](super::SubscribedTrack::pass_encrypted): the recorder
//! stores them as they are).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::mpsc;
use tracing::warn;
pub use wavecast_e2ee::{
    Codec, DecryptStats, E2eeError, KeyDerivation, KeyMaterial, KeyProvider, KeyProviderOptions,
};
use wavecast_e2ee::{DataEncryptor, FrameDecryptor, FrameEncryptor};
use wavecast_rtc::data_message::{DataSealer, DecryptedData, EncryptedData, SealedPayload};
use wavecast_rtc::{EncodedFrame, MediaCodec, TrackKind};

use super::outbox::SessionEvent;
use super::tracks::{TrackKey, lock};

/// End-to-end encryption for a room: the keys. Give the same passphrase (or keys) to every
/// participant, as livekit-client's `ExternalE2EEKeyProvider` and the SDKs' key providers take
/// them.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct E2eeOptions {
    /// Where the keys are (a shared key, or one per participant identity).
    pub key_provider: KeyProvider,
    /// Encrypt the data packets we send too (user data, chat and other data streams, RPC), as
    /// livekit-client's `encryption` option does (on by default; participants without the key
    /// then read none of them). Encrypted packets that arrive are decrypted either way.
    pub encrypt_data: bool,
}

impl E2eeOptions {
    /// Encrypt media and data with the keys of `key_provider`.
    pub fn new(key_provider: KeyProvider) -> Self {
        Self {
            key_provider,
            encrypt_data: true,
        }
    }

    /// Send data packets in clear (media stays encrypted): for rooms whose other apps use
    /// livekit-client's older `e2ee` option and keyless participants that must read data.
    pub fn plain_data(mut self) -> Self {
        self.encrypt_data = false;
        self
    }

    /// One passphrase shared by everyone (livekit-client's `ExternalE2EEKeyProvider` with
    /// `setKey(passphrase)`; the SDKs' `shared_key`).
    pub fn shared_passphrase(passphrase: &str) -> Self {
        Self::new(KeyProvider::with_shared_key(KeyMaterial::passphrase(
            passphrase,
        )))
    }
}

/// What a subscribed track's decryption reports when it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum E2eeState {
    /// Frames decrypt.
    Ok,
    /// No key for the frames: none at the key index they name, or the room has no keys at all
    /// (the frames are withheld).
    MissingKey,
    /// Frames do not decrypt with the key (a wrong key, or tampered frames): they are dropped.
    DecryptionFailed,
}

/// End-to-end encryption counters of a session (all tracks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct E2eeStats {
    /// Frames encrypted for our published tracks.
    pub encrypted: u64,
    /// Frames of ours dropped because there was no key to encrypt them with.
    pub encrypt_failed: u64,
    /// Subscribed frames decrypted.
    pub decrypted: u64,
    /// Subscribed frames dropped: no key, wrong key, malformed, tampered or replayed.
    pub decrypt_failed: u64,
    /// Of those, replays.
    pub replayed: u64,
    /// Encrypted frames handed on as they are (to readers that asked for them, and when the
    /// session has no keys).
    pub passed_encrypted: u64,
    /// State changes not reported because the session's event stream was full.
    pub reports_dropped: u64,
    /// Encrypted data packets (LiveKit's `EncryptedPacket`: livekit-client's data channel
    /// encryption) decrypted and handed on as plain data, streams or RPC.
    pub data_decrypted: u64,
    /// Encrypted data packets dropped: no keys, wrong key, or not a payload we read.
    pub data_decrypt_failed: u64,
    /// Data packets of ours encrypted (user data, stream packets, RPC).
    pub data_encrypted: u64,
    /// Data packets of ours not sent for want of a key.
    pub data_encrypt_failed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    encrypted: AtomicU64,
    encrypt_failed: AtomicU64,
    decrypted: AtomicU64,
    decrypt_failed: AtomicU64,
    replayed: AtomicU64,
    passed_encrypted: AtomicU64,
    data_decrypted: AtomicU64,
    data_decrypt_failed: AtomicU64,
    data_encrypted: AtomicU64,
    data_encrypt_failed: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A session's encryption: its keys (if any), counters, and where state changes go.
#[derive(Debug)]
pub(crate) struct E2ee {
    provider: Option<KeyProvider>,
    /// Seal the data packets we send.
    encrypt_data: bool,
    /// Our data encryptors, by our identity (one per join identity; the same one normally).
    data_encryptors: Mutex<std::collections::HashMap<String, DataEncryptor>>,
    counters: Counters,
    events: OnceLock<mpsc::WeakSender<SessionEvent>>,
    /// State changes not delivered because the event stream was full.
    dropped_reports: AtomicU64,
    /// Whether a data packet that could not be opened was logged already.
    data_warned: AtomicBool,
}

impl E2ee {
    pub(crate) fn new(options: Option<&E2eeOptions>) -> Arc<Self> {
        Arc::new(Self {
            provider: options.map(|o| o.key_provider.clone()),
            encrypt_data: options.is_some_and(|o| o.encrypt_data),
            data_encryptors: Mutex::new(std::collections::HashMap::new()),
            counters: Counters::default(),
            events: OnceLock::new(),
            dropped_reports: AtomicU64::new(0),
            data_warned: AtomicBool::new(false),
        })
    }

    /// Where state changes go (a weak sender: tracks the app holds never keep the stream open).
    pub(crate) fn report_to(&self, events: &mpsc::Sender<SessionEvent>) {
        let _ = self.events.set(events.downgrade());
    }

    pub(crate) fn stats(&self) -> E2eeStats {
        let c = &self.counters;
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        E2eeStats {
            encrypted: r(&c.encrypted),
            encrypt_failed: r(&c.encrypt_failed),
            decrypted: r(&c.decrypted),
            decrypt_failed: r(&c.decrypt_failed),
            replayed: r(&c.replayed),
            passed_encrypted: r(&c.passed_encrypted),
            reports_dropped: r(&self.dropped_reports),
            data_decrypted: r(&c.data_decrypted),
            data_decrypt_failed: r(&c.data_decrypt_failed),
            data_encrypted: r(&c.data_encrypted),
            data_encrypt_failed: r(&c.data_encrypt_failed),
        }
    }

    fn report(&self, key: &TrackKey, track_sid: &str, state: E2eeState) {
        let sent = self
            .events
            .get()
            .and_then(mpsc::WeakSender::upgrade)
            .is_some_and(|tx| {
                tx.try_send(SessionEvent::E2eeStateChanged {
                    key: key.clone(),
                    track_sid: track_sid.to_owned(),
                    state,
                })
                .is_ok()
            });
        if !sent {
            self.dropped_reports.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The engine's sealer of our data packets, when the session encrypts data.
    pub(crate) fn data_sealer(self: &Arc<Self>) -> Option<DataSealer> {
        if !self.encrypt_data {
            return None;
        }
        let provider = self.provider.clone()?;
        let e2ee = Arc::clone(self);
        Some(DataSealer(Arc::new(move |identity: &str, plain: &[u8]| {
            let mut encryptors = lock(&e2ee.data_encryptors);
            let encryptor = encryptors
                .entry(identity.to_owned())
                .or_insert_with(|| DataEncryptor::new(provider.ring(identity)));
            match encryptor.encrypt(plain) {
                Ok(s) => {
                    bump(&e2ee.counters.data_encrypted);
                    Some(SealedPayload {
                        iv: s.iv.to_vec(),
                        key_index: u32::from(s.key_index),
                        encrypted_value: s.ciphertext,
                    })
                }
                Err(e) => {
                    bump(&e2ee.counters.data_encrypt_failed);
                    if !e2ee.data_warned.swap(true, Ordering::Relaxed) {
                        warn!("e2ee: cannot encrypt our data packets, not sending them: {e}");
                    }
                    None
                }
            }
        })))
    }

    /// Open an encrypted data packet from `identity` (`None`: dropped and counted — no keys, a
    /// wrong key, or a payload of a kind we do not read).
    pub(crate) fn open_data(
        &self,
        identity: &str,
        packet: &EncryptedData,
    ) -> Option<DecryptedData> {
        let opened = match &self.provider {
            None => Err("the room has no end-to-end keys".to_owned()),
            Some(p) => wavecast_e2ee::decrypt_data(
                &p.ring(identity),
                &packet.encrypted_value,
                &packet.iv,
                packet.key_index,
            )
            .map_err(|e| e.to_string())
            .and_then(|plain| EncryptedData::open(&plain).map_err(|e| e.to_string())),
        };
        match opened {
            Ok(DecryptedData::Other) => {
                bump(&self.counters.data_decrypt_failed);
                None
            }
            Ok(d) => {
                bump(&self.counters.data_decrypted);
                Some(d)
            }
            Err(why) => {
                bump(&self.counters.data_decrypt_failed);
                if !self.data_warned.swap(true, Ordering::Relaxed) {
                    warn!("e2ee: an encrypted data packet from {identity} dropped: {why}");
                }
                None
            }
        }
    }

    /// The encryptor for a track we publish as `identity`, when the session has keys.
    pub(crate) fn sealer(self: &Arc<Self>, identity: &str, codec: MediaCodec) -> Option<Sealer> {
        let provider = self.provider.as_ref()?;
        Some(Sealer {
            encryptor: Mutex::new(FrameEncryptor::new(provider.ring(identity))),
            codec: sealed_codec(codec).unwrap_or(Codec::Vp8),
            e2ee: self.clone(),
            warned: AtomicBool::new(false),
        })
    }
}

fn codec_of(kind: TrackKind) -> Codec {
    match kind {
        TrackKind::Audio => Codec::Opus,
        TrackKind::Video => Codec::Vp8,
    }
}

/// How the frame cryptor treats a codec's frames (its clear header bytes); `None` for H.264,
/// whose NAL-aware framing we do not implement: such tracks are not published encrypted, and
/// encrypted ones are not opened.
pub(crate) fn sealed_codec(codec: MediaCodec) -> Option<Codec> {
    match codec {
        MediaCodec::Opus => Some(Codec::Opus),
        MediaCodec::Vp8 => Some(Codec::Vp8),
        MediaCodec::Vp9 => Some(Codec::Vp9),
        _ => None,
    }
}

/// Encrypts one published track's frames (shared by all its handles, so IVs never repeat).
#[derive(Debug)]
pub(crate) struct Sealer {
    encryptor: Mutex<FrameEncryptor>,
    codec: Codec,
    e2ee: Arc<E2ee>,
    warned: AtomicBool,
}

impl Sealer {
    /// The encrypted frame, or `None` (dropped, counted) when there is no key to encrypt with.
    pub(crate) fn seal(&self, frame: &[u8], rtp_time: u64) -> Option<Vec<u8>> {
        match lock(&self.encryptor).encrypt(self.codec, frame, rtp_time) {
            Ok(sealed) => {
                bump(&self.e2ee.counters.encrypted);
                Some(sealed)
            }
            Err(e) => {
                bump(&self.e2ee.counters.encrypt_failed);
                if !self.warned.swap(true, Ordering::Relaxed) {
                    warn!("e2ee: cannot encrypt our frames, dropping them: {e}");
                }
                None
            }
        }
    }
}

enum Mode {
    /// Not encrypted: frames pass.
    Plain,
    /// Encrypted and we have keys.
    Decrypt(Box<FrameDecryptor>),
    /// Encrypted, no keys, the reader wants plain frames: dropped.
    Withhold,
    /// Encrypted, no keys, the reader asked for the encrypted frames.
    Pass,
}

/// Decrypts one subscribed track's frames, in its handle.
pub(crate) struct Opener {
    e2ee: Arc<E2ee>,
    mode: Mode,
    codec: Codec,
    /// The last state reported.
    state: Option<E2eeState>,
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Opener {
    pub(crate) fn new(e2ee: Arc<E2ee>, kind: TrackKind) -> Self {
        Self {
            e2ee,
            mode: Mode::Plain,
            codec: codec_of(kind),
            state: None,
        }
    }

    /// Follow the track's announcement (on subscribe and on every move to a new engine track).
    pub(crate) fn configure(&mut self, key: &TrackKey, encrypted: bool, pass_encrypted: bool) {
        self.mode = match (encrypted, &self.e2ee.provider) {
            (false, _) => Mode::Plain,
            (true, Some(p)) => match std::mem::replace(&mut self.mode, Mode::Plain) {
                // Keep the replay window and counters across a rebind.
                Mode::Decrypt(d) => Mode::Decrypt(d),
                _ => Mode::Decrypt(Box::new(FrameDecryptor::new(p.ring(&key.identity)))),
            },
            (true, None) if pass_encrypted => Mode::Pass,
            (true, None) => Mode::Withhold,
        };
    }

    /// Whether the track's frames arrive encrypted.
    pub(crate) fn encrypted(&self) -> bool {
        !matches!(self.mode, Mode::Plain)
    }

    /// The state last reported (`None`: plain track, or no frame yet).
    pub(crate) fn state(&self) -> Option<E2eeState> {
        self.state
    }

    /// Counters of this track's decryption (`None` unless it is decrypted here).
    pub(crate) fn stats(&self) -> Option<DecryptStats> {
        match &self.mode {
            Mode::Decrypt(d) => Some(d.stats()),
            _ => None,
        }
    }

    fn set_state(&mut self, key: &TrackKey, sid: &str, state: E2eeState) {
        if self.state != Some(state) {
            if state != E2eeState::Ok {
                warn!("e2ee: {key} ({sid}): {state:?}: its frames are dropped");
            }
            self.state = Some(state);
            self.e2ee.report(key, sid, state);
        }
    }

    /// The frame to hand on, or `None` when it is dropped.
    pub(crate) fn open(
        &mut self,
        key: &TrackKey,
        sid: &str,
        mut frame: EncodedFrame,
    ) -> Option<EncodedFrame> {
        let counters = &self.e2ee.counters;
        if let (Mode::Plain, Some(p)) = (&self.mode, &self.e2ee.provider) {
            // A track whose encryption the server had not announced when it was subscribed:
            // a frame that opens with the sender's keys (AES-GCM authenticates it, so a plain
            // frame never does) shows it is encrypted after all.
            let n = frame.data.len();
            let ring = p.ring(&key.identity);
            if n > 2
                && usize::from(frame.data[n - 2]) == wavecast_e2ee::IV_LENGTH
                && ring.opens(sealed_codec(frame.codec).unwrap_or(self.codec), &frame.data)
            {
                warn!("e2ee: {key} ({sid}) was not announced encrypted, but its frames are");
                self.mode = Mode::Decrypt(Box::new(FrameDecryptor::new(ring)));
            }
        }
        match &mut self.mode {
            Mode::Plain => Some(frame),
            Mode::Pass => {
                bump(&counters.passed_encrypted);
                self.set_state(key, sid, E2eeState::MissingKey);
                Some(frame)
            }
            Mode::Withhold => {
                bump(&counters.decrypt_failed);
                self.set_state(key, sid, E2eeState::MissingKey);
                None
            }
            Mode::Decrypt(d) => {
                match d.decrypt(sealed_codec(frame.codec).unwrap_or(self.codec), &frame.data) {
                    Ok(plain) => {
                        bump(&counters.decrypted);
                        frame.data = plain.into();
                        self.set_state(key, sid, E2eeState::Ok);
                        Some(frame)
                    }
                    Err(e) => {
                        bump(&counters.decrypt_failed);
                        let state = match e {
                            E2eeError::Replayed => {
                                bump(&counters.replayed);
                                None
                            }
                            E2eeError::MissingKey { .. } => Some(E2eeState::MissingKey),
                            _ => Some(E2eeState::DecryptionFailed),
                        };
                        if let Some(state) = state {
                            self.set_state(key, sid, state);
                        }
                        None
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn frame(data: Vec<u8>) -> EncodedFrame {
        EncodedFrame {
            codec: wavecast_rtc::MediaCodec::Opus,
            data: data.into(),
            rtp_time: 0,
            received_at: Instant::now(),
            keyframe: false,
            contiguous: true,
        }
    }

    fn key() -> TrackKey {
        TrackKey {
            identity: "alice".into(),
            name: "mic".into(),
            kind: TrackKind::Audio,
        }
    }

    #[test]
    fn a_track_not_announced_encrypted_is_decrypted_once_a_frame_opens() {
        let options = E2eeOptions::shared_passphrase("late announcement");
        let e2ee = E2ee::new(Some(&options));
        let mut opener = Opener::new(e2ee.clone(), TrackKind::Audio);
        opener.configure(&key(), false, false);
        // A plain Opus packet that happens to end like a trailer passes as it is.
        let plain = vec![
            0x78, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
            23, 24, 25, 26, 27, 28, 29, 12, 0,
        ];
        let out = opener
            .open(&key(), "TR_a", frame(plain.clone()))
            .expect("passed");
        assert_eq!(&out.data[..], &plain[..]);
        assert!(!opener.encrypted());
        // An encrypted one opens: the track is encrypted after all, and stays so.
        let mut tx = FrameEncryptor::new(options.key_provider.ring("alice"));
        let sealed = tx.encrypt(Codec::Opus, &[0x78, 9, 9, 9], 960).unwrap();
        let out = opener
            .open(&key(), "TR_a", frame(sealed))
            .expect("decrypted");
        assert_eq!(&out.data[..], &[0x78, 9, 9, 9]);
        assert!(opener.encrypted());
        assert_eq!(opener.state(), Some(E2eeState::Ok));
        // From then on a frame that does not open is dropped, not handed on.
        assert!(opener.open(&key(), "TR_a", frame(plain)).is_none());
        assert_eq!(e2ee.stats().decrypted, 1);
    }

    #[test]
    fn without_keys_an_encrypted_track_is_withheld_unless_passed() {
        let e2ee = E2ee::new(None);
        let mut opener = Opener::new(e2ee.clone(), TrackKind::Video);
        opener.configure(&key(), true, false);
        assert!(opener.open(&key(), "TR_v", frame(vec![0x50; 40])).is_none());
        assert_eq!(opener.state(), Some(E2eeState::MissingKey));
        opener.configure(&key(), true, true);
        assert!(opener.open(&key(), "TR_v", frame(vec![0x50; 40])).is_some());
        let s = e2ee.stats();
        assert_eq!((s.decrypt_failed, s.passed_encrypted), (1, 1));
    }
}
