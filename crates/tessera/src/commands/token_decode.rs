//! `tessera token decode TOKEN [--jwk FILE]`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tessera_core::Timestamp;
use tessera_token::jwk::{Jwk, Jwks};
use tessera_token::jws::parse_compact;

/// Prints header and claims; with a JWK/JWKS file, verifies the signature and
/// exits 0 only when it is valid.
pub fn decode(token: &str, jwk_file: Option<&Path>) -> anyhow::Result<ExitCode> {
    let token = token.trim();
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        bail!(
            "not a JWS compact token: expected 3 dot-separated parts, found {}",
            parts.len()
        );
    }
    let segment = |i: usize, name: &str| -> anyhow::Result<Value> {
        let bytes = URL_SAFE_NO_PAD
            .decode(parts[i])
            .with_context(|| format!("the {name} is not base64url"))?;
        serde_json::from_slice(&bytes).with_context(|| format!("the {name} is not JSON"))
    };
    let header = segment(0, "header")?;
    let claims = segment(1, "payload")?;
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({"header": header, "claims": claims}))?
    );
    eprintln!("note: anyone holding this token can read the above; it is signed, not encrypted");
    let expired = match claims.get("exp").and_then(Value::as_i64) {
        Some(exp) => {
            let now = Timestamp::now().unix_seconds();
            let when = Timestamp::from_unix_millis(exp.saturating_mul(1000)).to_rfc3339();
            if exp > now {
                eprintln!("expires {when} (in {})", human(exp - now));
            } else {
                eprintln!("EXPIRED {when} ({} ago)", human(now - exp));
            }
            exp <= now
        }
        None => {
            eprintln!("no exp claim: this token never expires");
            false
        }
    };
    let Some(file) = jwk_file else {
        return Ok(ExitCode::SUCCESS);
    };
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let keys: Vec<Jwk> = match serde_json::from_str::<Jwks>(&text) {
        Ok(set) if !set.keys.is_empty() => set.keys,
        _ => vec![serde_json::from_str::<Jwk>(&text).context("expected a JWK or a JWK Set")?],
    };
    let unverified = match parse_compact(token) {
        Ok(u) => u,
        Err(reason) => return Ok(refuse(&reason.to_string())),
    };
    let kid = unverified.header.kid.clone();
    let candidates: Vec<&Jwk> = keys
        .iter()
        .filter(|k| kid.is_none() || k.kid.is_none() || k.kid == kid)
        .collect();
    let [key] = candidates.as_slice() else {
        return Ok(refuse(&format!(
            "no single key in the file matches kid {kid:?}"
        )));
    };
    let key = match key.verifying_key() {
        Ok(key) => key,
        Err(reason) => return Ok(refuse(&format!("unusable key: {reason}"))),
    };
    match unverified.verify(&key) {
        Ok(_) if expired => {
            println!("signature valid; the token is expired");
            Ok(ExitCode::SUCCESS)
        }
        Ok(_) => {
            println!("signature valid; the token is not expired");
            Ok(ExitCode::SUCCESS)
        }
        Err(reason) => Ok(refuse(&reason.to_string())),
    }
}

fn refuse(reason: &str) -> ExitCode {
    println!("signature NOT valid: {reason}");
    ExitCode::FAILURE
}

fn human(seconds: i64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}
