//! JSON request bodies whose rejections are [`ApiError`]s, and JSON
//! response bodies ([`Json`]).

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Room for most of our response bodies at once (a `/profile` body is
/// about 400 bytes).
const RESPONSE_CAPACITY: usize = 512;

/// A JSON response body (`application/json`), as axum's `Json` answers
/// one, serialised into a buffer that holds most bodies at once: axum's
/// starts at 128 bytes and grows through `BytesMut`'s writer, a visible
/// share of `/profile`'s CPU. Every route answers through this one.
#[derive(Debug, Clone, Copy)]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        let mut buf = response_buffer();
        match serde_json::to_writer(&mut buf, &self.0) {
            Ok(()) => json_response(StatusCode::OK, buf),
            // Our bodies are plain structs and maps with string keys.
            Err(error) => ApiError::Internal(format!("response body: {error}")).into_response(),
        }
    }
}

/// An empty buffer for a JSON response body.
pub(crate) fn response_buffer() -> Vec<u8> {
    Vec::with_capacity(RESPONSE_CAPACITY)
}

/// An `application/json` response with `body`, JSON already, built
/// directly (no `IntoResponse` chain).
pub(crate) fn json_response(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Appends `s` as a JSON string, exactly as `serde_json` writes it: as it
/// is when nothing in it needs escaping (the common case), else through
/// `serde_json`.
pub(crate) fn push_str(out: &mut Vec<u8>, s: &str) {
    if needs_escape(s.as_bytes()) {
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

/// Whether `s` holds a byte JSON escapes (a control character, `"` or
/// `\`). Looked for 16 bytes at a time, with no early exit within a chunk:
/// the compiler checks a chunk in a few vector instructions (byte by byte,
/// the scan was most of a `/profile` body's cost).
fn needs_escape(s: &[u8]) -> bool {
    let escaped = |b: u8| (b < 0x20) | (b == b'"') | (b == b'\\');
    let mut chunks = s.chunks_exact(16);
    for chunk in &mut chunks {
        if chunk.iter().fold(false, |found, &b| found | escaped(b)) {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| escaped(b))
}

/// A JSON body. Wrong content type → 415, too large → 413, malformed → 400,
/// not arrived within the connection's `body_read_timeout` → 408.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}

/// A JSON body that may be absent: an empty body yields `T::default()`.
/// A non-empty body must be JSON, as for [`ApiJson`].
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_json_content_type);
        let body = Bytes::from_request(req, state).await?;
        if body.is_empty() {
            return Ok(Self(T::default()));
        }
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        serde_json::from_slice(&body)
            .map(Self)
            .map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))
    }
}

/// `#[serde(default, deserialize_with = "present")]` on an `Option` field of
/// a patch: the field may be absent (`None`), but `null` is refused (the
/// API document says so: a patch's fields are not nullable), so that a
/// patch of nulls is a malformed body rather than an empty patch.
///
/// # Errors
///
/// The deserializer's, `null` included.
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

fn is_json_content_type(value: &str) -> bool {
    let mime = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_escaped_byte_is_found_wherever_it_stands() {
        for len in 0..50 {
            let plain = "a".repeat(len);
            assert!(!needs_escape(plain.as_bytes()), "{len}");
            for at in 0..len {
                for b in (0u8..0x20).chain([b'"', b'\\']) {
                    let mut text = plain.clone().into_bytes();
                    text[at] = b;
                    assert!(needs_escape(&text), "{len} {at} {b}");
                }
            }
        }
        for b in 0x20..=0xffu8 {
            assert_eq!(needs_escape(&[b; 20]), b == b'"' || b == b'\\', "{b}");
        }
    }

    #[test]
    fn strings_read_as_serde_writes_them() {
        for s in [
            "",
            "plain",
            "tab\there",
            "quote\"",
            "back\\slash",
            "é ünï",
            "\u{1}",
        ] {
            let mut out = Vec::new();
            push_str(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }
}
