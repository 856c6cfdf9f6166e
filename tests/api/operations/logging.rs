//! Logs (asvs.md 45, 46): run the real binary with JSON logs, drive a full account flow, and
//! check what reached standard error. Passwords, tokens, `Authorization` values and emails
//! never appear; every request has one line with its id, route template, status and latency;
//! hostile input (a username carrying a forged JSON log line, a User-Agent with a Unicode line
//! separator) cannot add or split lines.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use serde_json::{Value, json};

use crate::common::{PASSWORD, start_logging_server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_logs_and_hostile_input_cannot_forge_lines() {
    let server = start_logging_server(&[]).await;
    let client = reqwest::Client::new();
    let url = |path: &str| server.http(path);
    let new_password = "a different horse battery 7781";
    let email = "dana.secret@example.com";
    let new_email = "dana.renamed@example.org";

    let registered = client
        .post(url("/api/users"))
        .json(&json!({"user": {"username": "dana", "email": email, "password": PASSWORD}}))
        .send()
        .await
        .expect("register");
    assert_eq!(registered.status(), StatusCode::CREATED);
    let body: Value = registered.json().await.expect("json");
    let token = body["user"]["token"].as_str().expect("token").to_owned();

    let login = client
        .post(url("/api/users/login"))
        .json(&json!({"user": {"email": email, "password": PASSWORD}}))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), StatusCode::OK);
    let me = client
        .get(url("/api/user"))
        .header("Authorization", format!("Token {token}"))
        .header("Cookie", format!("session={token}"))
        .send()
        .await
        .expect("current user");
    assert_eq!(me.status(), StatusCode::OK);
    let updated = client
        .put(url("/api/user"))
        .header("Authorization", format!("Bearer {token}"))
        .json(&json!({"user": {"email": new_email, "password": new_password, "currentPassword": PASSWORD}}))
        .send()
        .await
        .expect("update");
    assert_eq!(updated.status(), StatusCode::OK);
    let wrong = client
        .post(url("/api/users/login"))
        .json(&json!({"user": {"email": new_email, "password": PASSWORD}}))
        .send()
        .await
        .expect("wrong login");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let bad_token = client
        .get(url("/api/user"))
        .header("Authorization", "Token not.a.valid-token-secret")
        .send()
        .await
        .expect("bad token");
    assert_eq!(bad_token.status(), StatusCode::UNAUTHORIZED);

    // Hostile input: a username carrying a forged log line, a User-Agent with U+2028.
    let forged = "alice\n{\"level\":\"INFO\",\"message\":\"admin login\"}\r\n\u{1b}[31m";
    let hostile = client
        .post(url("/api/users"))
        .header(
            "User-Agent",
            HeaderValue::from_bytes("evil\u{2028}{\"message\":\"forged\"}".as_bytes())
                .expect("obs-text is a valid header value"),
        )
        .json(
            &json!({"user": {"username": forged, "email": "x@example.com", "password": PASSWORD}}),
        )
        .send()
        .await
        .expect("hostile register");
    assert_eq!(hostile.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let hostile_login = client
        .post(url("/api/users/login"))
        .header(
            "User-Agent",
            HeaderValue::from_bytes("evil\u{2028}{\"message\":\"forged\"}".as_bytes())
                .expect("header"),
        )
        .json(&json!({"user": {"email": "nobody@example.com", "password": PASSWORD}}))
        .send()
        .await
        .expect("hostile login");
    // An address of the right shape, so the hostile User-Agent reaches `login_failed` (an
    // email that is not an address is a 422 before any event).
    assert_eq!(hostile_login.status(), StatusCode::UNAUTHORIZED);

    let lines = server.stop().await;
    let all = lines.join("\n");
    for secret in [
        PASSWORD,
        new_password,
        token.as_str(),
        "not.a.valid-token-secret",
        email,
        new_email,
        "dana.secret",
    ] {
        assert!(!all.contains(secret), "a secret reached the log: {secret}");
    }
    assert!(
        !all.contains('\u{2028}'),
        "a raw line separator reached the log"
    );
    assert!(
        !all.contains('\u{1b}'),
        "a raw escape sequence reached the log"
    );

    // Every line is one JSON object; nothing forged stands on its own line.
    let events: Vec<Value> = lines
        .iter()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON line: {line:?}"))
        })
        .collect();
    assert!(
        !events
            .iter()
            .any(|e| e["message"] == "admin login" || e["message"] == "forged"),
        "a forged line appeared"
    );

    // One response line per request, with request id, route template, status and latency.
    let responses: Vec<&Value> = events
        .iter()
        .filter(|e| e["message"] == "response")
        .collect();
    assert_eq!(responses.len(), 8, "{all}");
    for line in &responses {
        assert!(line["status"].as_u64().is_some(), "{line}");
        assert!(line["latency_ms"].as_f64().is_some(), "{line}");
        assert!(
            line["span"]["route"]
                .as_str()
                .is_some_and(|r| r.starts_with("/api/")),
            "{line}"
        );
        assert!(
            line["span"]["request_id"]
                .as_str()
                .is_some_and(|r| r.len() >= 16),
            "{line}"
        );
        // Who and from where (issue 24.1): the client address on every line...
        assert_eq!(line["span"]["client_ip"], "127.0.0.1", "{line}");
    }
    // ...and the user on the lines of authenticated requests.
    assert!(
        responses
            .iter()
            .any(|line| line["span"]["user_id"].as_i64().is_some_and(|id| id > 0)),
        "{all}"
    );

    // Audit events are logged by id, and the final checkpoint was written at shutdown.
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "login_succeeded" && e["message"] == "audit event")
    );
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "login_failed" && e["level"] == "WARN")
    );
    let checkpoint = events
        .iter()
        .rev()
        .find(|e| e["message"] == "audit checkpoint")
        .expect("a checkpoint at shutdown");
    // Eight events: the password change also ended the other session (`session_revoked`),
    // and the invalid token was refused (`token_rejected`, its reason only).
    assert_eq!(checkpoint["seq"], 8, "{checkpoint}");
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "token_rejected" && e["message"] == "audit event")
    );
}

/// The alert webhook's path is often its only secret (Slack, Teams): an unreachable receiver
/// must be logged as such without the URL, which reqwest's error text would otherwise carry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_webhook_secret_path_never_reaches_the_logs_when_delivery_fails() {
    const SECRET: &str = "T0SECRET/B0SECRET/xoxb-hunter2-webhook-path";
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("address").port();
    drop(closed);
    let webhook = format!("http://127.0.0.1:{port}/services/{SECRET}");
    let server = start_logging_server(&[
        ("AERIE_ALERT_WEBHOOK", webhook.as_str()),
        ("AERIE_ALERT_FAILED_LOGINS", "1"),
    ])
    .await;

    let wrong = reqwest::Client::new()
        .post(server.http("/api/users/login"))
        .json(&json!({"user": {"email": "nobody@example.com", "password": PASSWORD}}))
        .send()
        .await
        .expect("wrong login");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(
        server
            .wait_for_line("alert webhook: gave up", Duration::from_secs(30))
            .await,
        "every delivery attempt failed and was logged"
    );

    let lines = server.stop().await;
    let all = lines.join("\n");
    assert!(all.contains("ALERT: "), "the alert itself is logged: {all}");
    assert!(
        all.contains("alert webhook unreachable"),
        "a delivery failure line: {all}"
    );
    for secret in [SECRET, "hunter2", "/services/"] {
        assert!(
            !all.contains(secret),
            "the webhook path reached the log: {secret}"
        );
    }
}
