//! Known answers from livekit-client's own E2EE worker (2.23.0, the build the browser tests
//! load): `vectors.json` was made once by `tests/browser/e2ee_vectors.mjs`, which runs the
//! worker's encode transform in node on fixed frames. Our decryption must give the plain frames
//! back, and our encryption with the same key and IV the same bytes.

use serde_json::Value;
use wavecast_e2ee::{
    Codec, DEFAULT_RATCHET_SALT, FrameDecryptor, IV_LENGTH, KeyDerivation, KeyMaterial,
    KeyProvider, decrypt_data, decrypt_with, encrypt_data_with_iv, encrypt_with_iv,
    livekit_client_iv,
};

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn vectors() -> Vec<Value> {
    let v: Value = serde_json::from_str(include_str!("vectors.json")).expect("vectors.json");
    let cases = v["cases"].as_array().expect("cases").clone();
    assert_eq!(cases.len(), 3, "the three cases the generator makes");
    cases
}

fn material(case: &Value) -> KeyMaterial {
    let secret = case["secret"].as_str().expect("secret");
    match case["kdf"].as_str() {
        Some("PBKDF2") => KeyMaterial::passphrase(secret),
        Some("HKDF") => KeyMaterial::new(&unhex(secret), KeyDerivation::Hkdf),
        other => panic!("unknown kdf {other:?}"),
    }
}

fn codec(frame: &Value) -> Codec {
    match frame["kind"].as_str() {
        Some("vp8") => Codec::Vp8,
        Some("opus") => Codec::Opus,
        other => panic!("unknown kind {other:?}"),
    }
}

#[test]
fn our_decryption_opens_livekit_client_frames() {
    for case in vectors() {
        let keys = material(&case).derive(DEFAULT_RATCHET_SALT);
        for frame in case["frames"].as_array().unwrap() {
            let sealed = unhex(frame["encrypted"].as_str().unwrap());
            let plain = unhex(frame["plain"].as_str().unwrap());
            assert_eq!(
                decrypt_with(codec(frame), &sealed, &keys).expect("decrypts"),
                plain,
                "{} {}",
                case["name"],
                frame["kind"]
            );
        }
    }
}

#[test]
fn our_encryption_with_the_same_iv_gives_the_same_bytes() {
    for case in vectors() {
        let keys = material(&case).derive(DEFAULT_RATCHET_SALT);
        let index = case["key_index"].as_u64().unwrap() as u8;
        // The worker's send counter started at 0 for each SSRC (Math.random pinned to 0).
        let mut counts = std::collections::HashMap::<u64, u32>::new();
        for frame in case["frames"].as_array().unwrap() {
            let sealed = unhex(frame["encrypted"].as_str().unwrap());
            let plain = unhex(frame["plain"].as_str().unwrap());
            let ssrc = frame["ssrc"].as_u64().unwrap();
            let count = counts.entry(ssrc).or_default();
            let iv = livekit_client_iv(
                ssrc as u32,
                frame["rtp_timestamp"].as_u64().unwrap() as u32,
                *count,
            );
            *count += 1;
            // The IV travels in the frame: the one we build is the one the worker built.
            let at = sealed.len() - 2 - IV_LENGTH;
            assert_eq!(&sealed[at..at + IV_LENGTH], &iv[..]);
            let ours = encrypt_with_iv(codec(frame), &plain, &keys, index, &iv).unwrap();
            assert_eq!(ours, sealed, "{} {}", case["name"], frame["kind"]);
        }
    }
}

#[test]
fn a_key_provider_with_the_passphrase_decrypts_at_the_named_index() {
    for case in vectors() {
        let index = case["key_index"].as_u64().unwrap() as u8;
        let keys = KeyProvider::with_shared_key(KeyMaterial::passphrase("not this one"));
        keys.set_shared_key(material(&case), index);
        let mut rx = FrameDecryptor::new(keys.ring("alice"));
        for frame in case["frames"].as_array().unwrap() {
            let sealed = unhex(frame["encrypted"].as_str().unwrap());
            assert_eq!(*sealed.last().unwrap(), index);
            let plain = rx.decrypt(codec(frame), &sealed).expect("decrypts");
            assert_eq!(plain, unhex(frame["plain"].as_str().unwrap()));
        }
        assert_eq!(rx.stats().decrypted, 3);
    }
}

#[test]
fn the_wrong_passphrase_opens_nothing() {
    let keys = KeyMaterial::passphrase("wrong").derive(DEFAULT_RATCHET_SALT);
    for case in vectors() {
        for frame in case["frames"].as_array().unwrap() {
            let sealed = unhex(frame["encrypted"].as_str().unwrap());
            assert!(decrypt_with(codec(frame), &sealed, &keys).is_err());
        }
    }
}

#[test]
fn data_packets_match_livekit_clients_data_cryptor() {
    for case in vectors() {
        let index = case["key_index"].as_u64().unwrap() as u8;
        let data = &case["data"];
        let (plain, sealed) = (
            unhex(data["plain"].as_str().unwrap()),
            unhex(data["encrypted"].as_str().unwrap()),
        );
        let iv: [u8; IV_LENGTH] = unhex(data["iv"].as_str().unwrap()).try_into().unwrap();
        assert_eq!(data["key_index"].as_u64(), Some(u64::from(index)));
        let keys = KeyProvider::with_shared_key(KeyMaterial::passphrase("not this one"));
        keys.set_shared_key(material(&case), index);
        let ring = keys.ring("alice");
        assert_eq!(
            decrypt_data(&ring, &sealed, &iv, u32::from(index)).unwrap(),
            plain
        );
        let derived = material(&case).derive(DEFAULT_RATCHET_SALT);
        assert_eq!(encrypt_data_with_iv(&plain, &derived, &iv).unwrap(), sealed);
    }
}
