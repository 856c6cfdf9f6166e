//! `GET /api/admin/audit`: administrators' actions land on the audit trail, and the trail can
//! be queried by actor, subject, type, severity and time, a page at a time.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Engine, TestApp, engine_tests, token_of};

/// Registers `admin` (made an admin) and `target`, and returns the admin's fresh token.
async fn admin_and_target(app: &TestApp) -> String {
    app.register("admin").await;
    app.register("target").await;
    app.set_role("admin", "admin").await;
    token_of(&app.login_user("admin").await)
}

async fn events(app: &TestApp, admin: &str, query: &str) -> Value {
    let reply = app
        .get(&format!("/api/admin/audit?{query}"), Some(admin))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.body);
    reply.body
}

fn types(list: &Value) -> Vec<&str> {
    list["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|event| event["type"].as_str().expect("type"))
        .collect()
}

async fn every_admin_action_is_recorded_with_actor_subject_and_origin(app: TestApp) {
    let admin = admin_and_target(&app).await;
    for (method, path, body) in [
        ("POST", "/api/admin/users/target/disable", json!({})),
        ("POST", "/api/admin/users/target/enable", json!({})),
        (
            "PUT",
            "/api/admin/users/target/role",
            json!({"role": "editor"}),
        ),
        ("DELETE", "/api/admin/users/target/sessions", Value::Null),
        ("GET", "/api/admin/users?query=targ", Value::Null),
    ] {
        let method = method.parse().expect("method");
        let body = (!body.is_null()).then_some(body);
        let reply = app.request(method, path, Some(&admin), body).await;
        assert!(reply.status.is_success(), "{path}: {}", reply.body);
    }

    let by_admin = events(&app, &admin, "actor=admin").await;
    assert_eq!(
        types(&by_admin),
        [
            "admin_read_user_data", // this very query, recorded before it answered
            "admin_read_user_data",
            "session_revoked",
            "role_changed",
            "user_enabled",
            "user_disabled",
            "login_succeeded",
            "user_registered",
        ],
        "newest first: {by_admin}"
    );
    for event in by_admin["events"].as_array().expect("events") {
        assert_eq!(event["actor"]["username"], "admin");
        assert_eq!(event["clientIp"], "127.0.0.1", "{event}");
        assert!(event["requestId"].is_string(), "{event}");
        assert!(event["session"].is_string(), "{event}");
    }

    let role = events(&app, &admin, "type=role_changed").await;
    assert_eq!(role["eventsCount"], 1);
    let change = &role["events"][0];
    assert_eq!(change["subject"]["username"], "target");
    assert_eq!(
        change["detail"],
        json!({"by": "admin", "from": "user", "to": "editor"})
    );
    assert_eq!(change["severity"], "warning");

    let revoked = events(&app, &admin, "subject=TARGET&type=session_revoked").await;
    assert_eq!(
        revoked["eventsCount"], 1,
        "usernames match case-insensitively"
    );
    assert_eq!(revoked["events"][0]["detail"]["by"], "admin");
}

async fn reading_the_trail_is_itself_recorded(app: TestApp) {
    let admin = admin_and_target(&app).await;
    events(&app, &admin, "").await;
    let reads = events(&app, &admin, "type=admin_read_user_data").await;
    // The first query, then this one: both recorded before they answered.
    assert_eq!(reads["eventsCount"], 2, "{reads}");
    assert_eq!(
        reads["events"][0]["detail"],
        json!({"by": "admin", "resource": "audit"})
    );
}

async fn filters_narrow_by_severity_time_and_page(app: TestApp) {
    let admin = admin_and_target(&app).await;
    for _ in 0..3 {
        let wrong =
            json!({"user": {"email": "target@example.com", "password": "not the password at all"}});
        assert_eq!(
            app.post("/api/users/login", None, wrong).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let failed = events(
        &app,
        &admin,
        "subject=target&type=login_failed&severity=warning",
    )
    .await;
    assert_eq!(failed["eventsCount"], 3, "{failed}");
    assert!(
        failed["events"][0]["actor"].is_null(),
        "anonymous callers have no actor"
    );
    assert_eq!(
        events(&app, &admin, "severity=critical").await["eventsCount"],
        0
    );

    let page = events(&app, &admin, "type=login_failed&limit=2&offset=1").await;
    assert_eq!(
        page["eventsCount"], 3,
        "the count is of all matches, not the page"
    );
    let seqs: Vec<i64> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(seqs.len(), 2);
    assert!(seqs[0] > seqs[1], "newest first: {seqs:?}");
    let newest = failed["events"][0]["seq"].as_i64().expect("seq");
    assert!(seqs[0] < newest, "offset 1 skips the newest");

    app.clock.advance(std::time::Duration::from_secs(60));
    let between = app.now_timestamp();
    app.clock.advance(std::time::Duration::from_secs(60));
    let later =
        json!({"user": {"email": "target@example.com", "password": "still not the password"}});
    app.post("/api/users/login", None, later).await;
    let since = events(
        &app,
        &admin,
        &format!("type=login_failed&since={}", encode(&between)),
    )
    .await;
    assert_eq!(since["eventsCount"], 1, "only the later failure: {since}");
    let until = events(
        &app,
        &admin,
        &format!("type=login_failed&until={}", encode(&between)),
    )
    .await;
    assert_eq!(
        until["eventsCount"], 3,
        "only the earlier failures: {until}"
    );
}

async fn bad_filters_are_422_and_unknown_accounts_match_nothing(app: TestApp) {
    let admin = admin_and_target(&app).await;
    for (query, field) in [
        ("type=LOGIN_FAILED", "type"),
        ("type=login_failed'--", "type"),
        ("severity=fatal", "severity"),
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        // An empty time or name is not one (the document's format says so): refused, not
        // read as "no filter".
        ("until=", "until"),
        ("since=", "since"),
        ("type=", "type"),
        ("severity=", "severity"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("offset=-1", "offset"),
        ("type=logout&type=login_failed", "query"),
    ] {
        let reply = app
            .get(&format!("/api/admin/audit?{query}"), Some(&admin))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {}",
            reply.body
        );
        assert!(reply.error_on(field).is_some(), "{query}: {}", reply.body);
    }
    let nobody = events(&app, &admin, "actor=nobody").await;
    assert_eq!(nobody, json!({"events": [], "eventsCount": 0}));
    let everything = events(&app, &admin, "actor=").await;
    assert!(
        everything["eventsCount"].as_i64().expect("count") > 0,
        "an empty filter is no filter"
    );
}

/// Percent-encodes the `+` and `:` of a timestamp for a query string.
fn encode(text: &str) -> String {
    text.replace(':', "%3A").replace('+', "%2B")
}

async fn weakened_settings_are_on_the_trail_from_the_start(engine: Engine) {
    let weakened =
        TestApp::spawn_with(engine, &[("AERIE_RATE_LIMIT_ALLOWLIST", "0.0.0.0/0")]).await;
    let admin = admin_and_target(&weakened).await;
    let warnings = events(&weakened, &admin, "type=config_warning").await;
    assert_eq!(warnings["eventsCount"], 1, "{warnings}");
    let warning = &warnings["events"][0];
    assert_eq!(warning["detail"]["setting"], "AERIE_RATE_LIMIT_ALLOWLIST");
    assert_eq!(warning["severity"], "warning");
    assert!(warning["actor"].is_null(), "the system, not a user");

    let defaults = TestApp::spawn(engine).await;
    let admin = admin_and_target(&defaults).await;
    let none = events(&defaults, &admin, "type=config_warning").await;
    assert_eq!(none["eventsCount"], 0, "the defaults weaken nothing");
}

async fn lockouts_and_blocks_are_recorded_once_per_episode(engine: Engine) {
    let app = TestApp::spawn_with(
        engine,
        &[
            ("AERIE_RATE_LIMIT_LOGIN_IP", "5/300s"),
            ("AERIE_RATE_LIMIT_LOGIN_ACCOUNT", "2/900s"),
        ],
    )
    .await;
    // Admin login + 4 wrong: the account locks after 2 wrong, the address after 5 logins.
    let admin = admin_and_target(&app).await;
    let wrong =
        json!({"user": {"email": "target@example.com", "password": "not the password at all"}});
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(
            app.post("/api/users/login", None, wrong.clone())
                .await
                .status
                .as_u16(),
        );
    }
    assert!(
        statuses.iter().filter(|s| **s == 429).count() >= 5,
        "{statuses:?}"
    );

    // Recorded in the background: give the appends a moment to land.
    let mut found = (Value::Null, Value::Null);
    for _ in 0..50 {
        found = (
            events(&app, &admin, "type=account_locked").await,
            events(&app, &admin, "type=ip_blocked").await,
        );
        if found.0["eventsCount"] == 1 && found.1["eventsCount"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (locked, blocked) = found;
    assert_eq!(
        locked["eventsCount"], 1,
        "one event per episode, not per refusal: {locked}"
    );
    assert_eq!(locked["events"][0]["detail"]["policy"], "login-account");
    assert!(
        !locked.to_string().contains("target@example.com"),
        "no email in the trail"
    );
    assert_eq!(blocked["eventsCount"], 1, "{blocked}");
    assert_eq!(blocked["events"][0]["clientIp"], "127.0.0.1");
    assert_eq!(blocked["events"][0]["detail"]["policy"], "login-ip");
}

engine_tests!(
    every_admin_action_is_recorded_with_actor_subject_and_origin,
    reading_the_trail_is_itself_recorded,
    filters_narrow_by_severity_time_and_page,
    bad_filters_are_422_and_unknown_accounts_match_nothing,
    weakened_settings_are_on_the_trail_from_the_start,
    lockouts_and_blocks_are_recorded_once_per_episode,
);
