//! Messages written for people (issue 21): RealWorld front ends print each error as
//! "key message", so every 4xx must read as a sentence there. Refused credentials say what
//! to check and never why: an expired token, a revoked session and a forged signature read
//! the same (API.md: one generic 401 message), and only the `WWW-Authenticate` challenge says
//! that a presented token was refused (RFC 6750 `invalid_token`), which its sender knows.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{assert_refused, post_raw};
use crate::common::{self, PASSWORD, Reply, TestApp, engine_tests};

/// The lines a RealWorld front end shows for an error body: "key message" for each message.
fn rendered(reply: &Reply) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(errors) = reply.body["errors"].as_object() {
        for (key, messages) in errors {
            for message in messages.as_array().into_iter().flatten() {
                lines.push(format!("{key} {}", message.as_str().unwrap_or_default()));
            }
        }
    }
    lines
}

fn challenge(reply: &Reply) -> Option<&str> {
    reply
        .headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
}

#[track_caller]
fn assert_reads(reply: &Reply, status: StatusCode, line: &str) {
    assert_refused(reply, status);
    assert_eq!(rendered(reply), [line], "{}", reply.body);
}

async fn a_failed_login_reads_email_or_password_is_invalid(app: TestApp) {
    app.register("bob").await;
    let wrong_password = app.login("bob@example.com", "not the password 123").await;
    let unknown = app.login("nobody@example.com", PASSWORD).await;
    for reply in [&wrong_password, &unknown] {
        assert_eq!(
            reply.body,
            json!({"errors": {"email or password": ["is invalid"]}})
        );
        assert_reads(
            reply,
            StatusCode::UNAUTHORIZED,
            "email or password is invalid",
        );
        assert_eq!(challenge(reply), Some("Token, Bearer"), "no token involved");
    }
}

async fn every_refused_token_reads_the_same_and_says_invalid_token(app: TestApp) {
    const LINE: &str = "token is missing, invalid or expired; please log in";
    const INVALID: &str = r#"Token, Bearer error="invalid_token""#;
    let expired = app.register("expired").await;
    let revoked = app.register("revoked").await;
    app.post("/api/auth/logout", Some(&revoked), json!({}))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    // Bob's token with one character of its signature changed: forged.
    let live = app.register("bob").await;
    let mut forged: Vec<char> = live.chars().collect();
    let at = forged.len() - 10;
    forged[at] = if forged[at] == 'A' { 'B' } else { 'A' };
    let forged: String = forged.into_iter().collect();
    let mut bodies = Vec::new();
    for (token, case) in [
        (&revoked, "revoked"),
        (&forged, "forged"),
        (&"not-a-token".to_owned(), "malformed"),
    ] {
        let reply = app.get("/api/user", Some(token)).await;
        assert_reads(&reply, StatusCode::UNAUTHORIZED, LINE);
        assert_eq!(challenge(&reply), Some(INVALID), "{case}");
        bodies.push(reply.body);
    }
    app.clock.advance(Duration::from_secs(16 * 60));
    let reply = app.get("/api/user", Some(&expired)).await;
    assert_reads(&reply, StatusCode::UNAUTHORIZED, LINE);
    assert_eq!(challenge(&reply), Some(INVALID), "expired");
    bodies.push(reply.body);
    // No token at all: the same words, and a challenge without an error (RFC 6750 §3.1).
    let none = app.get("/api/user", None).await;
    assert_reads(&none, StatusCode::UNAUTHORIZED, LINE);
    assert_eq!(challenge(&none), Some("Token, Bearer"));
    bodies.push(none.body);
    assert!(bodies.windows(2).all(|pair| pair[0] == pair[1]));
}

async fn refused_refresh_tokens_and_login_challenges_say_what_to_do(app: TestApp) {
    let reply = common::refresh(&app, &common::random_refresh_token()).await;
    assert_reads(
        &reply,
        StatusCode::UNAUTHORIZED,
        "refreshToken is invalid or has expired; please log in",
    );
    assert_eq!(challenge(&reply), Some("Token, Bearer"));
    let reply = app
        .post(
            "/api/users/login/mfa",
            None,
            json!({"challenge": "no-such-challenge", "code": "123456"}),
        )
        .await;
    assert_reads(
        &reply,
        StatusCode::UNAUTHORIZED,
        "challenge is invalid or has expired; please log in again",
    );
}

async fn other_refusals_read_as_sentences(app: TestApp) {
    let token = app.register("reader").await;
    assert_reads(
        &app.get("/api/articles/no-such-article", None).await,
        StatusCode::NOT_FOUND,
        "article not found",
    );
    assert_reads(
        &app.get("/api/profiles/nobody", None).await,
        StatusCode::NOT_FOUND,
        "profile not found",
    );
    assert_reads(
        &app.get("/api/no/such/route", None).await,
        StatusCode::NOT_FOUND,
        "route not found",
    );
    assert_reads(
        &app.get("/api/admin/users", Some(&token)).await,
        StatusCode::FORBIDDEN,
        "access is denied",
    );
    assert_reads(
        &app.request(Method::PATCH, "/api/tags", None, None).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method is not allowed on this route",
    );
    assert_reads(
        &post_raw(&app, "/api/users", Some("text/plain"), b"{}".to_vec()).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "Content-Type must be application/json",
    );
    let reply = post_raw(&app, "/api/users", Some("application/json"), b"{".to_vec()).await;
    assert_refused(&reply, StatusCode::BAD_REQUEST);
    let lines = rendered(&reply);
    assert!(
        lines.len() == 1 && lines[0].starts_with("body is not valid JSON: "),
        "{lines:?}"
    );
}

engine_tests!(
    a_failed_login_reads_email_or_password_is_invalid,
    every_refused_token_reads_the_same_and_says_invalid_token,
    refused_refresh_tokens_and_login_challenges_say_what_to_do,
    other_refusals_read_as_sentences,
);
