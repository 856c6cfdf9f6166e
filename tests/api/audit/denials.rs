//! Denials leave a trace (issue 24.1, ASVS 16.3.2): a plain user's admin request (403) is an
//! `access_denied` event naming who, which route and which permission; a forged token (401)
//! is a `token_rejected` event naming the check that failed; a flood of either records a
//! bounded number of rows, the next one counting those left out; and a burst from one actor
//! raises `privilege_escalation_attempts`.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::alerts::receiver;
use crate::common::{Engine, TestApp, engine_tests, token_of};

/// An administrator's token, for reading the trail.
async fn admin(app: &TestApp) -> String {
    app.register("auditor").await;
    app.set_role("auditor", "admin").await;
    token_of(&app.login_user("auditor").await)
}

async fn recorded(app: &TestApp, admin: &str, kind: &str) -> Value {
    let reply = app
        .get(
            &format!("/api/admin/audit?type={kind}&limit=100"),
            Some(admin),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

/// `token` with its payload's role set to admin, signed with nothing (`alg: none`).
fn alg_none_admin(token: &str) -> String {
    let payload = token.split('.').nth(1).expect("payload");
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64")).expect("json");
    claims["role"] = json!("admin");
    let segment = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
    format!(
        "{}.{}.",
        segment(&json!({"alg": "none", "typ": "JWT"})),
        segment(&claims)
    )
}

async fn a_plain_users_admin_request_is_403_and_recorded_as_access_denied(app: TestApp) {
    let admin = admin(&app).await;
    let mallory = app.register("mallory").await;
    let list = app.get("/api/admin/users", Some(&mallory)).await;
    assert_eq!(list.status, StatusCode::FORBIDDEN);
    let promote = app
        .put(
            "/api/admin/users/mallory/role",
            Some(&mallory),
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(promote.status, StatusCode::FORBIDDEN);
    let trail = recorded(&app, &admin, "access_denied").await;
    assert_eq!(trail["eventsCount"], 2, "{trail}");
    let events = trail["events"].as_array().expect("events");
    let mut seen: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|event| {
            assert_eq!(event["actor"]["username"], "mallory", "{event}");
            assert_eq!(event["clientIp"], "127.0.0.1", "{event}");
            // The count of refusals left out appears only when some were.
            assert_eq!(event["detail"].get("unrecorded"), None, "{event}");
            (
                event["detail"]["method"].as_str().unwrap_or_default(),
                event["detail"]["route"].as_str().unwrap_or_default(),
                event["detail"]["permission"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        [
            ("GET", "/api/admin/users", "user_read_any"),
            ("PUT", "/api/admin/users/{username}/role", "user_role_set"),
        ]
    );
}

async fn an_alg_none_token_claiming_admin_is_401_and_recorded_with_its_reason(app: TestApp) {
    let mallory = app.register("mallory").await;
    let forged = alg_none_admin(&mallory);
    let reply = app.get("/api/admin/users", Some(&forged)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    app.clock.advance(Duration::from_secs(16 * 60));
    let expired = app.get("/api/user", Some(&mallory)).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    let admin = admin(&app).await;
    let trail = recorded(&app, &admin, "token_rejected").await;
    let events = trail["events"].as_array().expect("events");
    let details: Vec<&Value> = events.iter().map(|event| &event["detail"]).collect();
    assert!(
        details.iter().any(|detail| detail["reason"] == "algorithm"
            && detail["claimedRole"] == "admin"
            && detail["route"] == "/api/admin/users"),
        "{trail}"
    );
    assert!(
        details.iter().any(|detail| detail["reason"] == "expired"),
        "{trail}"
    );
    assert!(
        !trail.to_string().contains(&forged),
        "the token itself is never recorded"
    );
}

async fn a_flood_of_denials_records_a_bounded_number_of_rows(app: TestApp) {
    let admin = admin(&app).await;
    let mallory = app.register("mallory").await;
    for _ in 0..1000 {
        let reply = app.get("/api/admin/users", Some(&mallory)).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
    }
    let forged = alg_none_admin(&mallory);
    for _ in 0..200 {
        let reply = app.get("/api/user", Some(&forged)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let denied = recorded(&app, &admin, "access_denied").await;
    assert_eq!(denied["eventsCount"], 5, "five per user per minute");
    let rejected = recorded(&app, &admin, "token_rejected").await;
    assert_eq!(rejected["eventsCount"], 5, "five per address per minute");
    // The next minute's first event says how many were left out.
    app.clock.advance(Duration::from_secs(61));
    let reply = app.get("/api/admin/users", Some(&mallory)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let denied = recorded(&app, &admin, "access_denied").await;
    assert_eq!(denied["eventsCount"], 6);
    assert_eq!(denied["events"][0]["detail"]["unrecorded"], 995, "{denied}");
}

/// A flood spread over many addresses (a botnet, or one attacker behind rotating proxies)
/// meets the server-wide bound: at most 300 refusals a minute reach the trail, whatever the
/// number of actors, and the next minute records again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_many_addresses_records_at_most_the_servers_bound() {
    let app =
        TestApp::spawn_with(Engine::Sqlite, &[("AERIE_TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    let admin = admin(&app).await;
    let forged = alg_none_admin(&app.register("mallory").await);
    let refused_from = async |address: String| {
        let request = app
            .client
            .get(app.url("/api/user"))
            .header("X-Forwarded-For", address)
            .header("Authorization", format!("Token {forged}"));
        let reply = request.send().await.expect("request sent");
        assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
    };
    // 320 addresses, one refusal each: every actor is within its own five.
    for n in 0..320 {
        refused_from(format!("198.51.{}.{}", 100 + n / 200, n % 200 + 1)).await;
    }
    let rejected = recorded(&app, &admin, "token_rejected").await;
    assert_eq!(rejected["eventsCount"], 300, "the server's bound a minute");
    app.clock.advance(Duration::from_secs(61));
    refused_from("203.0.113.1".to_owned()).await;
    let rejected = recorded(&app, &admin, "token_rejected").await;
    assert_eq!(rejected["eventsCount"], 301, "a new minute records again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_privilege_escalation_attempts_alerts() {
    let (url, mut alerts) = receiver(0).await;
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        &[
            ("AERIE_ALERT_WEBHOOK", url.as_str()),
            ("AERIE_ALERT_DENIALS", "3"),
        ],
    )
    .await;
    let mallory = app.register("mallory").await;
    for path in ["/api/admin/users", "/api/admin/audit", "/api/admin/users"] {
        let reply = app.get(path, Some(&mallory)).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
    }
    let alert = tokio::time::timeout(Duration::from_secs(10), alerts.recv())
        .await
        .expect("an alert arrives")
        .expect("receiver open");
    assert_eq!(alert["rule"], "privilege_escalation_attempts", "{alert}");
    assert!(alert["seq"].as_i64().is_some());
}

/// Only made-up tokens count towards the alert: a client still sending its expired token is
/// not an attacker, and must not raise (or bring closer) `privilege_escalation_attempts`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_tokens_raise_the_escalation_alert_and_expired_ones_do_not() {
    let (url, mut alerts) = receiver(0).await;
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        &[
            ("AERIE_ALERT_WEBHOOK", url.as_str()),
            ("AERIE_ALERT_DENIALS", "3"),
        ],
    )
    .await;
    let mallory = app.register("mallory").await;
    app.clock.advance(Duration::from_secs(16 * 60));
    // Five refusals in the minute, all recorded: two old tokens, then three forged ones.
    for _ in 0..2 {
        let reply = app.get("/api/user", Some(&mallory)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let forged = alg_none_admin(&mallory);
    for _ in 0..3 {
        let reply = app.get("/api/user", Some(&forged)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let alert = tokio::time::timeout(Duration::from_secs(10), alerts.recv())
        .await
        .expect("an alert arrives")
        .expect("receiver open");
    assert_eq!(alert["rule"], "privilege_escalation_attempts", "{alert}");
    let admin = admin(&app).await;
    let trail = recorded(&app, &admin, "token_rejected").await;
    assert_eq!(trail["eventsCount"], 5, "{trail}");
    assert_eq!(
        alert["seq"], trail["events"][0]["seq"],
        "the third forged token raises it, not the third refusal: {trail}"
    );
}

engine_tests!(
    a_plain_users_admin_request_is_403_and_recorded_as_access_denied,
    an_alg_none_token_claiming_admin_is_401_and_recorded_with_its_reason,
    a_flood_of_denials_records_a_bounded_number_of_rows,
);
