//! Unknown user, wrong password and disabled user must be indistinguishable.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::*;

fn lenient_throttle() -> Options {
    Options::default()
        .env("TESSERA_LOGIN_IP_BURST", 1000)
        .env("TESSERA_LOGIN_ACCOUNT_BURST", 1000)
}

fn server_with_disabled_user() -> Server {
    let server = Server::start_with(lenient_throttle());
    server.data.add_user("carol@example.com", &[]);
    let out = server
        .data
        .cli(&["user", "disable", "carol@example.com"], "");
    assert!(out.status.success());
    server
}

const CASES: [(&str, &str); 3] = [
    ("nobody@example.com", PASSWORD),
    ("alice@example.com", "wrong password entirely"),
    ("carol@example.com", PASSWORD),
];

#[tokio::test]
async fn unknown_wrong_and_disabled_get_the_same_status_body_and_headers() {
    let server = server_with_disabled_user();
    let mut seen = Vec::new();
    for (email, password) in CASES {
        let response = server.login_response(email, password).await;
        seen.push(observable(response).await);
    }
    assert_eq!(seen[0].0, StatusCode::UNAUTHORIZED);
    assert!(
        seen.iter().all(|s| s == &seen[0]),
        "responses differ: {seen:#?}"
    );
}

#[tokio::test]
async fn unknown_wrong_and_disabled_take_the_same_time() {
    let server = server_with_disabled_user();
    let mut times: [Vec<Duration>; 3] = Default::default();
    // Interleave the cases so machine noise hits all of them alike.
    for _ in 0..9 {
        for (i, (email, password)) in CASES.iter().enumerate() {
            let start = Instant::now();
            let response = server.login_response(email, password).await;
            times[i].push(start.elapsed());
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        }
    }
    let medians: Vec<Duration> = times
        .iter_mut()
        .map(|t| {
            t.sort();
            t[t.len() / 2]
        })
        .collect();
    let fastest = *medians.iter().min().unwrap();
    let slowest = *medians.iter().max().unwrap();
    // Each case does one full argon2id verification (~25 ms); a skipped hash
    // would make one median several times smaller than the others.
    assert!(
        fastest >= Duration::from_millis(5),
        "no hashing happened? {medians:?}"
    );
    assert!(
        slowest.as_secs_f64() / fastest.as_secs_f64() < 1.5,
        "timing reveals which case it is: {medians:?}"
    );
}
