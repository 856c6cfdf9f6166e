//! Breached passwords (issue 14.4): a password on the bundled list of common breached
//! passwords is refused wherever a password is set, even when zxcvbn would rate it strong,
//! with a 422 that says why and what to do instead; the list's lowercase normalisation is
//! applied, and nothing changes.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{Engine, PASSWORD, TestApp, engine_tests, rows_of, run_aerie};

/// On the list (a Russian word typed on an English keyboard, plus digits), yet rated strong
/// by zxcvbn: only the list refuses it. Sent with a capital, as the list is lowercase.
const BREACHED: &str = "Yfdbufnjh10305070";

#[track_caller]
fn assert_breached_refusal(reply: &crate::common::Reply, field: &str) {
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    let message = reply.error_on(field).unwrap_or_default();
    assert!(message.contains("data breaches"), "says why: {message}");
    assert!(message.contains("passphrase"), "says what to do: {message}");
    assert!(
        !reply.body.to_string().contains(BREACHED),
        "never echoes it"
    );
}

async fn breached_passwords_are_refused_everywhere_a_password_is_set(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let reply = app
        .post(
            "/api/users",
            None,
            json!({"user": {"username": "neo", "email": "neo@example.com", "password": BREACHED}}),
        )
        .await;
    assert_breached_refusal(&reply, "password");
    assert!(rows_of(&app, "user_registered").await.is_empty());

    let token = app.register("trinity").await;
    let change = json!({"currentPassword": PASSWORD, "newPassword": BREACHED});
    let reply = app.put("/api/user/password", Some(&token), change).await;
    assert_breached_refusal(&reply, "newPassword");

    let cli = run_aerie(
        &app,
        "",
        &["user", "set-password", "trinity"],
        &format!("{BREACHED}\n"),
    )
    .await;
    assert!(!cli.status.success(), "{cli:?}");
    assert!(
        String::from_utf8_lossy(&cli.stderr).contains("data breaches"),
        "{cli:?}"
    );

    assert!(rows_of(&app, "password_changed").await.is_empty());
    app.login("trinity@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::OK);
    app.login("trinity@example.com", BREACHED)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
}

engine_tests!(breached_passwords_are_refused_everywhere_a_password_is_set);
