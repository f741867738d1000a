//! Sealed cookie sessions: open (every request) and seal (login, activity).
//!
//! `cargo bench -p tessera-axum --bench cookie`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tessera_axum::caller::sealed::{CookieKey, CookieSealer};
use tessera_core::{Email, NewUser, PasswordHash, Role, SessionMeta, SessionPolicy, Timestamp};

fn cookie(c: &mut Criterion) {
    let policy = SessionPolicy::default();
    let user = NewUser {
        email: Email::parse("alice@example.com").unwrap(),
        roles: vec![
            Role::parse("admin").unwrap(),
            Role::parse("member").unwrap(),
        ],
        password_hash: PasswordHash::from_trusted(String::new()),
        email_verified: true,
    }
    .into_user(Timestamp::now());
    let session = policy
        .start(&user, SessionMeta::default(), Timestamp::now())
        .1;
    let sealer = CookieSealer::new(&CookieKey::from_bytes([7u8; 32]), "__Host-tessera");
    let sealed = sealer.seal(&session);
    c.bench_function("sealed cookie: open", |b| {
        b.iter(|| sealer.open(black_box(&sealed), &policy).unwrap())
    });
    c.bench_function("sealed cookie: seal", |b| {
        b.iter(|| sealer.seal(black_box(&session)))
    });
}

criterion_group!(benches, cookie);
criterion_main!(benches);
