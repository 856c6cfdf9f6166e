//! What the trail writes to the log, for a shipper to carry off the machine: every event at
//! its severity's level, so that a pipeline alerting on ERROR sees the critical ones; and the
//! chain head as a checkpoint each time it moved, once, so that `aerie audit verify
//! --expect-at-least SEQ:MAC` can hold an intruder who cuts the tail to what was shipped.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{PASSWORD, start_logging_server};

fn parsed(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

fn checkpoints_at(lines: &[Value], seq: i64) -> usize {
    lines
        .iter()
        .filter(|line| line["message"] == "audit checkpoint" && line["seq"] == seq)
        .count()
}

/// A refresh token used twice (the sign of a stolen one) is a critical event: ERROR; a wrong
/// password is a warning: WARN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_logged_at_their_severity() {
    let server = start_logging_server(&[("AERIE_REFRESH_GRACE_SECS", "0")]).await;
    let client = reqwest::Client::new();
    let registered: Value = client
        .post(server.http("/api/users"))
        .json(&json!({"user": {"username": "erin", "email": "erin@example.com", "password": PASSWORD}}))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    let refresh_token = registered["user"]["refreshToken"]
        .as_str()
        .expect("a refresh token")
        .to_owned();
    let refresh = || {
        client
            .post(server.http("/api/auth/refresh"))
            .json(&json!({ "refreshToken": refresh_token }))
            .send()
    };
    assert_eq!(refresh().await.expect("refresh").status(), StatusCode::OK);
    assert_eq!(
        refresh().await.expect("replay").status(),
        StatusCode::UNAUTHORIZED
    );

    let wrong = client
        .post(server.http("/api/users/login"))
        .json(&json!({"user": {"email": "erin@example.com", "password": "not the password"}}))
        .send()
        .await
        .expect("wrong login");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let lines = parsed(&server.stop().await);
    for (event, level, severity) in [
        ("refresh_reuse_detected", "ERROR", "critical"),
        ("login_failed", "WARN", "warning"),
        ("user_registered", "INFO", "info"),
    ] {
        let line = lines
            .iter()
            .find(|line| line["message"] == "audit event" && line["event"] == event)
            .unwrap_or_else(|| panic!("{event} is logged"));
        assert_eq!(line["level"], level, "{line}");
        assert_eq!(line["severity"], severity, "{line}");
    }
}

/// The head is logged when it moved, from the chain's first row on, and not again while it
/// stands: a line per interval would bury the ones that matter. The interval is the real
/// binary's (one second here), so the test waits out two of them with nothing new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_head_is_logged_once_each_time_it_moves() {
    let server = start_logging_server(&[("AERIE_AUDIT_CHECKPOINT_SECS", "1")]).await;
    // One event: a login for an address with no account.
    let refused = reqwest::Client::new()
        .post(server.http("/api/users/login"))
        .json(&json!({"user": {"email": "nobody@example.com", "password": PASSWORD}}))
        .send()
        .await
        .expect("login");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    let deadline = Instant::now() + Duration::from_secs(10);
    while checkpoints_at(&parsed(&server.lines()), 1) == 0 {
        assert!(
            Instant::now() < deadline,
            "no checkpoint for a chain of one row"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let lines = parsed(&server.stop().await);
    assert_eq!(checkpoints_at(&lines, 1), 1, "the same head logged again");
}
