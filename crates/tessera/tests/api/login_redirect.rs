//! `GET /auth/verify` with `login_url`: people are sent to log in, programs
//! get the 401. The proxies' own journeys are in the proxy tests; these
//! talk to tessera as a trusted proxy would (from 127.0.0.1).

use reqwest::{Method, StatusCode};

use crate::helpers::*;

const LOGIN: &str = "https://login.example.com/signin";

fn proxied(options: Options) -> Server {
    Server::start_with(
        options
            .env("TESSERA_LOGIN_URL", LOGIN)
            .env("TESSERA_TRUSTED_PROXIES", "127.0.0.1/32"),
    )
}

/// A refused request as a proxy forwards it: where it was going, and the
/// browser's own headers.
fn forwarded(server: &Server, browser: &[(&str, &str)]) -> reqwest::RequestBuilder {
    let mut request = server
        .request(Method::GET, "/auth/verify")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "app.example.com:8443")
        .header("x-forwarded-uri", "/reports/7?tab=a b");
    for (name, value) in browser {
        request = request.header(*name, *value);
    }
    request
}

const PAGE_LOAD: &[(&str, &str)] = &[
    ("sec-fetch-mode", "navigate"),
    ("sec-fetch-dest", "document"),
    ("accept", "text/html,application/xhtml+xml"),
];
const FETCH: &[(&str, &str)] = &[
    ("sec-fetch-mode", "cors"),
    ("sec-fetch-dest", "empty"),
    ("accept", "*/*"),
];

#[tokio::test]
async fn a_page_load_without_a_session_is_sent_to_the_login_url_with_where_it_was_going() {
    let server = proxied(Options::default());
    let response = forwarded(&server, PAGE_LOAD).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()["location"].to_str().unwrap();
    let url = reqwest::Url::parse(location).unwrap();
    assert_eq!(&location[..LOGIN.len()], LOGIN);
    let rd: Vec<_> = url.query_pairs().filter(|(k, _)| k == "rd").collect();
    assert_eq!(rd.len(), 1);
    assert_eq!(rd[0].1, "https://app.example.com:8443/reports/7?tab=a%20b");
    // An old browser without Sec-Fetch-* headers asking for a page, too.
    let legacy = forwarded(&server, &[("accept", "text/html")])
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.status(), StatusCode::FOUND);
    // A garbage cookie is no session either.
    let garbage = forwarded(&server, PAGE_LOAD)
        .header("cookie", format!("{COOKIE}=garbage"))
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), StatusCode::FOUND);
}

#[tokio::test]
async fn scripts_and_api_clients_still_get_401_json() {
    let server = proxied(Options::default());
    for browser in [FETCH, &[("accept", "application/json")][..], &[][..]] {
        let response = forwarded(&server, browser).send().await.unwrap();
        assert!(response.headers().get("location").is_none());
        expect_error(response, StatusCode::UNAUTHORIZED).await;
    }
}

#[tokio::test]
async fn a_proxy_that_cannot_pass_redirects_gets_401_with_the_location() {
    let server = proxied(Options::default());
    let response = forwarded(&server, PAGE_LOAD)
        .header("x-tessera-redirect-status", "401")
        .send()
        .await
        .unwrap();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(LOGIN), "{location}");
    expect_error(response, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn the_url_asked_for_is_taken_only_from_trusted_proxies() {
    // No trusted proxies: the forwarded headers could be anyone's.
    let server = Server::start_with(Options::default().env("TESSERA_LOGIN_URL", LOGIN));
    let response = forwarded(&server, PAGE_LOAD).send().await.unwrap();
    assert!(response.headers().get("location").is_none());
    expect_error(response, StatusCode::UNAUTHORIZED).await;
    // A forwarded host that smuggles a path or user info is refused.
    let server = proxied(Options::default());
    let response = server
        .request(Method::GET, "/auth/verify")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example/@app.example.com")
        .header("sec-fetch-dest", "document")
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn without_a_login_url_page_loads_get_401_and_sessions_pass() {
    let server =
        Server::start_with(Options::default().env("TESSERA_TRUSTED_PROXIES", "127.0.0.1/32"));
    let response = forwarded(&server, PAGE_LOAD).send().await.unwrap();
    expect_error(response, StatusCode::UNAUTHORIZED).await;
    let cookie = server.login_alice().await;
    let response = forwarded(&server, PAGE_LOAD)
        .header("cookie", format!("{COOKIE}={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}
