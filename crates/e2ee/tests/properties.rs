//! Property tests: whatever arrives — a sealed frame cut short, one with any bit flipped, one
//! seen before, arbitrary bytes — the decryptor refuses it with an error and never panics;
//! and every frame we seal opens to itself.

use std::sync::OnceLock;

use proptest::prelude::*;
use wavecast_e2ee::{
    Codec, E2eeError, FrameDecryptor, FrameEncryptor, KeyMaterial, KeyProvider, TAG_LENGTH,
};

/// One provider for every case (a key derivation is 100 000 PBKDF2 iterations).
fn keys() -> &'static KeyProvider {
    static KEYS: OnceLock<KeyProvider> = OnceLock::new();
    KEYS.get_or_init(|| KeyProvider::with_shared_key(KeyMaterial::passphrase("property")))
}

fn codec() -> impl Strategy<Value = Codec> {
    prop_oneof![Just(Codec::Opus), Just(Codec::Vp8), Just(Codec::Vp9)]
}

/// A frame long enough for its codec's clear header (VP8 key frames need 10 bytes).
fn frame() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 10..600)
}

fn sealed(codec: Codec, plain: &[u8], rtp: u64) -> Vec<u8> {
    FrameEncryptor::new(keys().ring("p"))
        .encrypt(codec, plain, rtp)
        .expect("encrypts")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn sealed_frames_open_to_themselves(codec in codec(), plain in frame(), rtp in any::<u64>()) {
        let s = sealed(codec, &plain, rtp);
        prop_assert_eq!(s.len(), plain.len() + TAG_LENGTH + 12 + 2);
        let header = codec.header_len(&plain);
        prop_assert_eq!(&s[..header], &plain[..header], "the header stays in clear");
        let mut rx = FrameDecryptor::new(keys().ring("p"));
        prop_assert_eq!(rx.decrypt(codec, &s).unwrap(), plain);
    }

    #[test]
    fn truncated_frames_are_refused(codec in codec(), plain in frame(), cut in any::<prop::sample::Index>()) {
        let s = sealed(codec, &plain, 1);
        let len = cut.index(s.len()); // strictly shorter, possibly empty
        let mut rx = FrameDecryptor::new(keys().ring("p"));
        let r = rx.decrypt(codec, &s[..len]);
        if len == 0 {
            // An empty frame is Opus DTX / nothing: passed on empty, as the SDKs do.
            prop_assert_eq!(r.unwrap(), Vec::<u8>::new());
        } else {
            prop_assert!(r.is_err(), "a {len}-byte prefix of {} opened", s.len());
            prop_assert_eq!(rx.stats().decrypted, 0);
        }
    }

    #[test]
    fn tampered_frames_are_refused(codec in codec(), plain in frame(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut s = sealed(codec, &plain, 2);
        let i = at.index(s.len());
        s[i] ^= 1 << bit;
        let mut rx = FrameDecryptor::new(keys().ring("p"));
        prop_assert!(rx.decrypt(codec, &s).is_err(), "flipping bit {bit} of byte {i}/{} went unnoticed", s.len());
        prop_assert_eq!(rx.stats().failed, 1);
    }

    #[test]
    fn replayed_frames_are_refused(codec in codec(), plain in frame(), others in 0usize..20) {
        let mut tx = FrameEncryptor::new(keys().ring("p"));
        let mut rx = FrameDecryptor::new(keys().ring("p"));
        let first = tx.encrypt(codec, &plain, 0).unwrap();
        prop_assert!(rx.decrypt(codec, &first).is_ok());
        for n in 0..others {
            let f = tx.encrypt(codec, &plain, n as u64 + 1).unwrap();
            prop_assert!(rx.decrypt(codec, &f).is_ok());
        }
        prop_assert_eq!(rx.decrypt(codec, &first), Err(E2eeError::Replayed));
        prop_assert_eq!(rx.stats().replayed, 1);
    }

    #[test]
    fn arbitrary_bytes_never_panic(codec in codec(), junk in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut rx = FrameDecryptor::new(keys().ring("p"));
        let r = rx.decrypt(codec, &junk);
        prop_assert!(junk.is_empty() || r.is_err());
    }
}

/// Every single-bit change of a sealed frame, header, ciphertext, tag, IV, IV length and key
/// index alike, is refused (exhaustively, for a frame of each kind).
#[test]
fn every_bit_of_a_sealed_frame_is_checked() {
    let frames = [
        (Codec::Opus, vec![0x78; 40]),
        (
            Codec::Vp8,
            [
                vec![0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00],
                vec![7; 30],
            ]
            .concat(),
        ),
        (Codec::Vp8, vec![0x31; 40]),
        (Codec::Vp9, vec![0x86; 40]),
    ];
    for (codec, plain) in frames {
        let s = sealed(codec, &plain, 7);
        for i in 0..s.len() {
            for bit in 0..8 {
                let mut t = s.clone();
                t[i] ^= 1 << bit;
                let mut rx = FrameDecryptor::new(keys().ring("p"));
                assert!(
                    rx.decrypt(codec, &t).is_err(),
                    "{codec:?}: flipping bit {bit} of byte {i}/{} went unnoticed",
                    s.len()
                );
            }
        }
    }
}
