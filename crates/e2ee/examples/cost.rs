//! What end-to-end encryption costs per frame: key derivation once, then AES-GCM per frame.
//!
//! `cargo run --release -p wavecast-e2ee --example cost` prints the time to derive a key from a
//! passphrase (PBKDF2, 100 000 iterations), and to encrypt and to decrypt a 20 kB VP8 key
//! frame, a 2 kB VP8 delta frame and a 100-byte Opus packet (mean over many, one core).

use std::time::{Duration, Instant};

use wavecast_e2ee::{Codec, FrameDecryptor, FrameEncryptor, KeyMaterial, KeyProvider};

fn per_op(n: u32, mut f: impl FnMut(u32)) -> Duration {
    let start = Instant::now();
    for i in 0..n {
        f(i);
    }
    start.elapsed() / n
}

fn main() {
    let t = Instant::now();
    let keys = KeyProvider::with_shared_key(KeyMaterial::passphrase("cost of e2ee"));
    println!(
        "key derivation (PBKDF2-SHA256, 100 000 iterations): {:?}",
        t.elapsed()
    );
    let cases = [
        ("VP8 key frame, 20 kB", Codec::Vp8, vec![0x50u8; 20_000]),
        ("VP8 delta frame, 2 kB", Codec::Vp8, vec![0x31u8; 2_000]),
        ("Opus packet, 100 B", Codec::Opus, vec![0x78u8; 100]),
    ];
    for (what, codec, frame) in cases {
        let mut tx = FrameEncryptor::new(keys.ring("me"));
        let n = (40_000_000 / frame.len() as u32).clamp(1_000, 20_000);
        let mut sealed = Vec::with_capacity(n as usize);
        let enc = per_op(n, |i| {
            sealed.push(tx.encrypt(codec, &frame, u64::from(i)).unwrap())
        });
        let mut rx = FrameDecryptor::new(keys.ring("me"));
        let dec = per_op(n, |i| {
            rx.decrypt(codec, &sealed[i as usize]).unwrap();
        });
        let mb_s = frame.len() as f64 / enc.as_secs_f64() / 1e6;
        println!(
            "{what}: encrypt {enc:?} ({mb_s:.0} MB/s), decrypt {dec:?} (replay check included)"
        );
    }
}
