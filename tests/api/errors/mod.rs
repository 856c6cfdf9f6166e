//! Negative paths: every refusal has the RealWorld error shape, the right status and no
//! internal detail, on both engines (API.md "Conventions"; attacks.md §4 Z8–Z9, §5, §9). The
//! assertions on that shape are here; the cases, one module per kind of refusal.

mod ambiguous_json;
mod bodies;
mod mass_assignment;
mod messages;
mod request_id;
mod unknown_routes;
mod validation;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{self, PASSWORD, Reply, TestApp};

/// The configured default body limit (64 KiB).
const BODY_LIMIT: usize = 64 * 1024;

/// Words that betray internals: SQL, crate names, source paths, panic text.
const LEAKS: &[&str] = &[
    "sqlx",
    "panicked",
    "stack backtrace",
    "select ",
    "insert into",
    " from ",
    "postgres",
    "sqlite",
    "/src/",
    ".rs:",
    "/home/",
    "/root/",
    "/tmp/",
];

/// Asserts `status` and the RealWorld 4xx shape `{"errors":{"<field>":["<message>",...]}}`
/// with nothing else in the body and nothing internal in the messages.
#[track_caller]
fn assert_refused(reply: &Reply, status: StatusCode) {
    assert_eq!(reply.status, status, "body: {}", reply.body);
    assert_error_shape(reply);
}

#[track_caller]
fn assert_error_shape(reply: &Reply) {
    let top = reply.body.as_object().unwrap_or_else(|| {
        panic!(
            "{}: error body is not a JSON object: {}",
            reply.status, reply.body
        )
    });
    assert_eq!(top.len(), 1, "only `errors` in a 4xx body: {}", reply.body);
    let errors = reply.body["errors"]
        .as_object()
        .unwrap_or_else(|| panic!("`errors` is not an object: {}", reply.body));
    assert!(!errors.is_empty(), "no error named: {}", reply.body);
    for (field, messages) in errors {
        let messages = messages
            .as_array()
            .unwrap_or_else(|| panic!("errors.{field} is not an array: {}", reply.body));
        assert!(!messages.is_empty(), "errors.{field} is empty");
        assert!(
            messages
                .iter()
                .all(|m| m.as_str().is_some_and(|m| !m.is_empty())),
            "errors.{field} holds a non-string or empty message: {}",
            reply.body
        );
    }
    assert_no_leak(reply);
    assert_eq!(
        reply
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "error bodies are JSON"
    );
}

#[track_caller]
fn assert_no_leak(reply: &Reply) {
    let text = reply.body.to_string().to_lowercase();
    for leak in LEAKS {
        assert!(!text.contains(leak), "error body leaks {leak:?}: {text}");
    }
}

/// A 422 whose errors name `field`.
#[track_caller]
fn assert_invalid(reply: &Reply, field: &str) {
    assert_refused(reply, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reply.error_on(field).is_some(),
        "expected an error on `{field}`: {}",
        reply.body
    );
}

/// Sends raw bytes with the given content type (or none).
async fn post_raw(app: &TestApp, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Reply {
    let mut request = app.client.post(app.url(path)).body(body);
    if let Some(content_type) = content_type {
        request = request.header("Content-Type", content_type);
    }
    common::read(request.send().await.expect("request sent")).await
}

async fn post_json_text(app: &TestApp, path: &str, token: Option<&str>, body: &str) -> Reply {
    let mut request = app
        .client
        .post(app.url(path))
        .header("Content-Type", "application/json")
        .body(body.to_owned());
    if let Some(token) = token {
        request = request.header("Authorization", format!("Token {token}"));
    }
    common::read(request.send().await.expect("request sent")).await
}

fn registration(name: &str) -> Value {
    json!({"user": {"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}})
}

async fn login_status(app: &TestApp, name: &str) -> StatusCode {
    app.login(&format!("{name}@example.com"), PASSWORD)
        .await
        .status
}
