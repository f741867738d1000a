//! Microbenchmarks of the per-request and per-login work in the core.
//!
//! `cargo bench -p tessera-core`. The argon2id figures are the ones the
//! issue asks for (20–35 ms per hash on the reference machine).

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use tessera_core::{Password, PasswordHasher, SessionId, Timestamp};

fn passwords(c: &mut Criterion) {
    let hasher = PasswordHasher::owasp();
    let password = Password::new("correct horse battery staple");
    let stored = hasher.hash(&password).unwrap();
    let mut group = c.benchmark_group("argon2id m=19456 t=2 p=1");
    group.sample_size(20);
    group.bench_function("hash", |b| {
        b.iter(|| hasher.hash(black_box(&password)).unwrap())
    });
    group.bench_function("verify", |b| {
        b.iter(|| hasher.verify(black_box(&password), Some(&stored)))
    });
    group.bench_function("verify unknown user (dummy hash)", |b| {
        b.iter(|| hasher.verify(black_box(&password), None))
    });
    group.finish();
}

fn per_request(c: &mut Criterion) {
    let cookie = SessionId::generate().expose();
    c.bench_function("session id: parse cookie + SHA-256", |b| {
        b.iter(|| SessionId::parse(black_box(&cookie)).unwrap().hash())
    });
    let now = Timestamp::now();
    c.bench_function("timestamp: RFC 3339", |b| {
        let mut buf = [0u8; tessera_core::clock::RFC3339_MAX];
        b.iter(|| black_box(now).format_rfc3339(&mut buf).len())
    });
}

criterion_group!(benches, passwords, per_request);
criterion_main!(benches);
