//! Authentication attacks (attacks.md §1 JWT, §2 S12, §3 A4, A7, A10, A11): every forged,
//! stale or misplaced credential gets the same 401, on both engines.
//!
//! Forged tokens are built by hand (base64url + ed25519-dalek, HMAC through jsonwebtoken), so
//! each case is exact. Several are signed with the server's *real* key, read from the test's
//! data folder: such a token fails only because of the one thing the case changes, so the
//! test would notice if the server stopped checking that thing.

mod claims;
mod forged_signatures;
mod key_selection;
mod login;
mod missing_and_malformed;
mod password_guessing;
mod recorded_reasons;
mod step_up;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer as _;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use reqwest::StatusCode;
use serde_json::Value;

use aerie::clock::Clock as _;

use crate::common::{self, Reply, TestApp, engine_tests};

/// The challenge of a 401 when no credential was sent, or one that is not an access token
/// (a login, a refresh token, a login challenge) was refused.
const CHALLENGE: &str = "Token, Bearer";
/// The challenge of a 401 that refused an access token (RFC 6750 §3.1), whatever the reason.
const INVALID_TOKEN: &str = r#"Token, Bearer error="invalid_token""#;

fn challenge_of(reply: &Reply) -> Option<&str> {
    reply
        .headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
}

/// Asserts the generic 401 of a refused credential: status, body and the
/// `WWW-Authenticate` challenge (`invalid_token` when it was an access token).
#[track_caller]
fn assert_unauthorized(reply: &Reply, case: &str) {
    common::assert_unauthorized(reply, case);
    let expected = match reply.path.as_str() {
        "/api/users/login" | "/api/auth/refresh" | "/api/users/login/mfa" => CHALLENGE,
        _ => INVALID_TOKEN,
    };
    assert_eq!(
        challenge_of(reply),
        Some(expected),
        "{case}: WWW-Authenticate"
    );
}

/// Asserts the 401 of a request that carried no credential: the same body as a refused
/// token's, and a challenge without an error (RFC 6750 §3.1).
#[track_caller]
fn assert_no_credential(reply: &Reply, case: &str) {
    common::assert_unauthorized(reply, case);
    assert_eq!(
        challenge_of(reply),
        Some(CHALLENGE),
        "{case}: WWW-Authenticate"
    );
}

/// `GET /api/user` with a raw `Authorization` header value.
async fn me_with_header(app: &TestApp, authorization: &str) -> Reply {
    let request = app
        .client
        .get(app.url("/api/user"))
        .header("Authorization", authorization);
    common::read(request.send().await.expect("request sent")).await
}

async fn me(app: &TestApp, token: &str) -> Reply {
    app.get("/api/user", Some(token)).await
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn segment(value: &Value) -> String {
    b64(value.to_string().as_bytes())
}

/// The header and claims of a token, decoded without any check.
fn decode(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut next = || {
        let part = parts.next().expect("token segment");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
    };
    let header = next();
    let claims = next();
    (header, claims)
}

/// The key the server signs with (generated into the data folder in development mode).
fn server_key(app: &TestApp) -> ed25519_dalek::SigningKey {
    let pem = std::fs::read_to_string(app.data_dir.path().join("signing-key.pem"))
        .expect("signing key file");
    ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).expect("PKCS#8 Ed25519 key")
}

fn attacker_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng)
}

/// Signs `header_json` (sent verbatim, so it may be malformed on purpose) and `claims` with
/// Ed25519.
fn sign_raw(key: &ed25519_dalek::SigningKey, header_json: &str, claims: &Value) -> String {
    let input = format!("{}.{}", b64(header_json.as_bytes()), segment(claims));
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", b64(&signature.to_bytes()))
}

fn sign(key: &ed25519_dalek::SigningKey, header: &Value, claims: &Value) -> String {
    sign_raw(key, &header.to_string(), claims)
}

/// An HMAC-signed token (`alg` HS256/384/512) with `secret` as the key.
fn sign_hmac(alg: Algorithm, secret: &[u8], header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", segment(header), segment(claims));
    let signature =
        jsonwebtoken::crypto::sign(input.as_bytes(), &EncodingKey::from_secret(secret), alg)
            .expect("HMAC signs");
    format!("{input}.{signature}")
}

/// A registered user with a valid token, plus that token's decoded header and claims.
struct Victim {
    token: String,
    header: Value,
    claims: Value,
}

async fn victim(app: &TestApp, name: &str) -> Victim {
    let token = app.register(name).await;
    let (header, claims) = decode(&token);
    Victim {
        token,
        header,
        claims,
    }
}

/// The server's clock in Unix seconds. It stands still unless the test advances it, so a
/// claim can be placed exactly at a boundary.
fn server_now(app: &TestApp) -> i64 {
    app.clock.now() / 1000
}

/// The baseline: the forging helpers make tokens the server accepts, so every refusal in
/// the modules below is the server's doing.
async fn hand_built_tokens_with_the_real_key_are_accepted(app: TestApp) {
    let bob = victim(&app, "bob").await;
    assert_eq!(me(&app, &bob.token).await.status, StatusCode::OK);
    let rebuilt = sign(&server_key(&app), &bob.header, &bob.claims);
    let reply = me(&app, &rebuilt).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "the harness's own signing must be valid: {}",
        reply.body
    );
    assert_eq!(reply.body["user"]["username"], "bob");
    let bearer = me_with_header(&app, &format!("Bearer {}", bob.token)).await;
    assert_eq!(
        bearer.status,
        StatusCode::OK,
        "Bearer is documented as accepted"
    );
}

engine_tests!(hand_built_tokens_with_the_real_key_are_accepted);
