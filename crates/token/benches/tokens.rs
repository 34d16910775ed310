//! Tokens minted and verified per second on one core (criterion).
//!
//! Side-by-side figures for the official Python `livekit-api` come from
//! `tests/python/bench_tokens.py` in the same `just bench` run; docs/PERFORMANCE.md records both.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wavecast_token::{Keys, Preset, TokenBuilder, Verifier};

fn builder() -> TokenBuilder {
    TokenBuilder::new("bench-user")
        .name("Bench User")
        .room("bench-room")
        .metadata("{\"seat\":1}")
        .attribute("team", "blue")
        .preset(Preset::Broadcaster)
}

fn tokens(c: &mut Criterion) {
    let keys = Keys::new("devkey", "secret");
    let mut group = c.benchmark_group("token");
    group.throughput(Throughput::Elements(1));
    let b = builder();
    group.bench_function("mint", |bench| {
        bench.iter(|| black_box(b.mint(black_box(&keys)).unwrap()))
    });

    let jwt = b.mint(&keys).unwrap();
    let verifier = Verifier::new([keys.clone()]);
    group.bench_function("verify", |bench| {
        bench.iter(|| black_box(verifier.verify(black_box(&jwt)).unwrap()))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = tokens
}
criterion_main!(benches);
