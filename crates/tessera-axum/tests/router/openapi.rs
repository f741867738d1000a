//! `GET /openapi.json`: the document names exactly the router's routes
//! (both directions), every error response refers to the one error body,
//! and the security schemes are the real ones.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode, header};
use serde_json::Value;
use tessera_axum::AppConfig;
use tessera_axum::app::{protected_routes, public_routes};
use tessera_axum::cookies::SessionCookie;

use crate::support::{App, Call};

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn document(app: &App) -> Value {
    let reply = app.send(Call::new(Method::GET, "/openapi.json")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.header(header::CONTENT_TYPE),
        Some("application/json"),
        "served as JSON"
    );
    reply.body
}

/// `(METHOD, path)` of every operation in the document.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                operations.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

/// `$ref` target `#/components/<kind>/<name>` resolved in `doc`.
fn resolve<'a>(doc: &'a Value, reference: &str) -> &'a Value {
    let pointer = reference
        .strip_prefix('#')
        .unwrap_or_else(|| panic!("a local reference: {reference}"));
    doc.pointer(pointer)
        .unwrap_or_else(|| panic!("{reference} resolves"))
}

#[tokio::test]
async fn the_document_names_every_route_of_the_router_and_no_other() {
    let app = App::new();
    let doc = document(&app).await;
    let routed: BTreeSet<(String, String)> = public_routes()
        .iter()
        .chain(protected_routes().iter())
        .map(|route| (route.method.to_string(), route.path.to_owned()))
        .collect();
    let documented = documented(&doc);
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the document (add the handler to openapi::ApiDoc's paths): {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "documented operations the router does not serve: {unrouted:?}"
    );
    // The list the test compares is the router's: a documented route is
    // answered by a handler, not by the 404 fallback or a 405.
    for (method, path) in &routed {
        let uri = path
            .replace("{id}", "00000000-0000-4000-8000-000000000000")
            .replace(['{', '}'], "");
        let reply = app
            .send(Call::new(method.parse().expect("a method"), &uri))
            .await;
        assert_ne!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert!(
            reply.body["error"]["message"] != "no such route",
            "{method} {path} reached the fallback"
        );
    }
}

#[tokio::test]
async fn the_document_is_openapi_3_1_served_anonymously_and_built_once() {
    let app = App::new();
    let first = app.send(Call::new(Method::GET, "/openapi.json")).await;
    let second = app.send(Call::new(Method::GET, "/openapi.json")).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body, second.body);
    let version = first.body["openapi"].as_str().expect("an openapi version");
    assert!(version.starts_with("3.1."), "{version}");
    assert_eq!(first.header(header::CACHE_CONTROL), Some("no-store"));
}

#[tokio::test]
async fn every_error_response_refers_to_the_one_error_body() {
    let doc = document(&App::new()).await;
    let error_body = "#/components/schemas/ErrorBody";
    let schema = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(schema["required"], serde_json::json!(["error"]), "{schema}");
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            for (status, response) in operation["responses"].as_object().expect("responses") {
                let code: u16 = status.parse().expect("a numeric status");
                // The health probes answer their own status body, not an error.
                if code < 400 || path == "/health" || path == "/health/ready" {
                    continue;
                }
                let response = match response.get("$ref").and_then(Value::as_str) {
                    Some(reference) => resolve(&doc, reference),
                    None => response,
                };
                let content = &response["content"];
                assert_eq!(
                    content.as_object().map(|c| c.keys().collect::<Vec<_>>()),
                    Some(vec![&"application/json".to_owned()]),
                    "{method} {path} {status}: JSON only"
                );
                assert_eq!(
                    content["application/json"]["schema"]["$ref"], error_body,
                    "{method} {path} {status}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} error responses");
}

#[tokio::test]
async fn an_error_answered_has_the_documented_error_body() {
    let app = App::new();
    let doc = document(&app).await;
    let detail = resolve(
        &doc,
        doc["components"]["schemas"]["ErrorBody"]["properties"]["error"]["$ref"]
            .as_str()
            .expect("error refers to ErrorDetail"),
    );
    let reply = app.send(Call::new(Method::GET, "/profile")).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let documented: BTreeSet<&str> = detail["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .map(String::as_str)
        .collect();
    let answered: BTreeSet<&str> = reply.body["error"]
        .as_object()
        .expect("an error object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(documented, answered);
    // The profile answers what its document says it does.
    let statuses = doc["paths"]["/profile"]["get"]["responses"]
        .as_object()
        .expect("responses");
    assert!(statuses.contains_key("401"));
}

#[tokio::test]
async fn the_security_schemes_are_the_real_credentials() {
    let cookie = SessionCookie::new("__Host-app-session", Default::default()).expect("a cookie");
    let app = App::with_config(AppConfig {
        cookie,
        ..AppConfig::default()
    });
    app.add_user("admin@example.com", &["admin"]).await;
    let doc = document(&app).await;
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["session_cookie"]["type"], "apiKey");
    assert_eq!(schemes["session_cookie"]["in"], "cookie");
    assert_eq!(schemes["session_cookie"]["name"], "__Host-app-session");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["bearer"]["bearerFormat"], "JWT");
    assert_eq!(schemes["api_key"]["scheme"], "bearer");
    // A protected route documents its security and the configured cookie
    // as a parameter (what the login → profile link sets); a public one
    // neither.
    let profile = &doc["paths"]["/profile"]["get"];
    assert!(
        profile["security"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
    );
    assert!(
        profile["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .any(|p| p["in"] == "cookie" && p["name"] == "__Host-app-session")
    );
    assert!(doc["paths"]["/login"]["post"].get("security").is_none());
    let link = &doc["paths"]["/login"]["post"]["responses"]["200"]["links"]["profile"];
    assert_eq!(link["operationId"], "profile");
    assert!(
        link["parameters"]["cookie.__Host-app-session"]
            .as_str()
            .is_some_and(|e| e.contains("__Host-app-session=([^;]+)")),
        "{link}"
    );
    // Only admin routes take an API key.
    let admin = &doc["paths"]["/admin/v1/users"]["get"]["security"];
    assert!(
        admin
            .as_array()
            .expect("security")
            .iter()
            .any(|s| s.get("api_key").is_some())
    );
    assert!(
        !profile["security"]
            .as_array()
            .expect("security")
            .iter()
            .any(|s| s.get("api_key").is_some())
    );
}

/// Schemathesis finding: `expires_in` of `POST /admin/v1/apikeys` and
/// `POST /admin/v1/invites` took any unsigned 64-bit number and silently
/// clamped it (2^63 seconds gave a 201 and a ten-year key), outside the
/// documented range. Out of range is now a 400 `invalid_expiry`, and the
/// document's bounds are the server's.
#[tokio::test]
async fn lifetimes_outside_the_documented_range_are_refused() {
    let app = App::new();
    app.add_user("admin@example.com", &["admin"]).await;
    let token = app.access_token("admin@example.com").await;
    let doc = document(&app).await;
    let cases = [
        (
            "/admin/v1/apikeys",
            "CreateKey",
            serde_json::json!({"name": "ci"}),
        ),
        (
            "/admin/v1/invites",
            "InviteRequest",
            serde_json::json!({"email": "new@example.com"}),
        ),
    ];
    for (path, schema, body) in cases {
        let bounds = &doc["components"]["schemas"][schema]["properties"]["expires_in"];
        let max = bounds["maximum"].as_u64().expect("a documented maximum");
        assert_eq!(bounds["minimum"], 1, "{path}");
        for refused in [0, max + 1, 1 << 63, u64::MAX] {
            let mut body = body.clone();
            body["expires_in"] = refused.into();
            let reply = app
                .send(Call::new(Method::POST, path).bearer(&token).json(&body))
                .await;
            assert_eq!(
                reply.status,
                StatusCode::BAD_REQUEST,
                "{path} {refused}: {}",
                reply.body
            );
            assert_eq!(
                reply.body["error"]["code"], "invalid_expiry",
                "{path} {refused}"
            );
        }
        let mut body = body.clone();
        body["expires_in"] = max.into();
        let reply = app
            .send(Call::new(Method::POST, path).bearer(&token).json(&body))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{path} {max}: {}",
            reply.body
        );
    }
}

/// Schemathesis finding: the user patches (`PATCH /admin/v1/users/{id}`,
/// `PATCH /admin/users/{email}`) were documented with nullable fields and
/// no minimum, but an empty or all-null patch is a 400; and a `null`
/// beside a real change was silently ignored. Now `null` is refused like
/// any malformed body, and the document says the fields are not nullable
/// and at least one is given.
#[tokio::test]
async fn patches_refuse_null_fields_as_documented() {
    let app = App::new();
    app.add_user("admin@example.com", &["admin"]).await;
    app.add_user("bob@example.com", &[]).await;
    let token = app.access_token("admin@example.com").await;
    let doc = document(&app).await;
    let bob = app
        .state
        .users()
        .by_email(&tessera_core::Email::parse("bob@example.com").expect("an address"))
        .await
        .expect("the store answers")
        .expect("bob exists");
    let cases = [
        (format!("/admin/v1/users/{}", bob.id), "UserPatch"),
        ("/admin/users/bob@example.com".to_owned(), "LegacyUserPatch"),
    ];
    for (path, schema) in cases {
        let schema = &doc["components"]["schemas"][schema];
        assert_eq!(schema["minProperties"], 1, "{path}: {schema}");
        for (name, property) in schema["properties"].as_object().expect("properties") {
            let types = &property["type"];
            assert!(
                !types.as_array().is_some_and(|t| t.contains(&"null".into())),
                "{path}: {name} is nullable: {property}"
            );
        }
        assert!(
            schema
                .get("required")
                .is_none_or(|r| r.as_array().is_some_and(Vec::is_empty))
        );
        let reply = app
            .send(
                Call::new(Method::PATCH, &path)
                    .bearer(&token)
                    .json(&serde_json::json!({"disabled": null, "roles": ["support"]})),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            reply.body
        );
        let reply = app
            .send(
                Call::new(Method::PATCH, &path)
                    .bearer(&token)
                    .json(&serde_json::json!({"roles": ["support"]})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
    }
}

/// Schemathesis finding: `POST /logout` documented its body as nullable,
/// but a JSON `null` body is a 400; the body is optional, not nullable.
#[tokio::test]
async fn the_logout_body_is_optional_not_nullable() {
    let app = App::new();
    let doc = document(&app).await;
    let body = &doc["paths"]["/logout"]["post"]["requestBody"];
    assert_eq!(body["required"], false, "{body}");
    assert_eq!(
        body["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/LogoutRequest"
    );
    app.add_user("carol@example.com", &[]).await;
    let login = app.login("carol@example.com").await;
    let reply = app
        .send(
            Call::new(Method::POST, "/logout")
                .cookie(&login.cookie)
                .raw("application/json", "null"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    let reply = app
        .send(Call::new(Method::POST, "/logout").cookie(&login.cookie))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}
