//! The audit trail (asvs.md 44, 47): security events are recorded with who, what, when and
//! where before the response is sent, and `aerie audit verify` finds every kind of tampering
//! done directly in the database (edit, delete, swap, insert, cut tail), naming the exact row.

use std::process::Output;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Engine, PASSWORD, TestApp, engine_tests};

/// Runs the real `aerie` binary against the test's database and data folder.
pub(super) fn aerie(app: &TestApp, args: &[&str]) -> Output {
    aerie_with(app, &[], args)
}

/// [`aerie`] with extra `AERIE_*` settings.
pub(super) fn aerie_with(app: &TestApp, settings: &[(&str, &str)], args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_aerie"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AERIE_DATABASE_URL", &app.database_url)
        .env("AERIE_DATA_DIR", app.data_dir.path())
        .env("AERIE_LOG_FORMAT", "json")
        .envs(settings.iter().copied())
        .current_dir(app.data_dir.path())
        .output()
        .expect("run aerie")
}

/// Asserts that a command succeeded, showing what it printed if not; answers its standard
/// output.
#[track_caller]
pub(super) fn succeeded(output: &Output) -> String {
    let text = stdout(output);
    assert!(
        output.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

pub(super) fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Asserts that verification fails and names `seq` as the first broken row.
#[track_caller]
pub(super) fn assert_broken_at(app: &TestApp, args: &[&str], seq: i64) {
    let output = aerie(app, args);
    let text = stdout(&output);
    assert!(!output.status.success(), "verify passed: {text}");
    assert!(
        text.contains(&format!("broken at seq {seq}:")),
        "expected the break at {seq}: {text} {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[track_caller]
pub(super) fn assert_intact(app: &TestApp, rows: i64) {
    let text = succeeded(&aerie(app, &["audit", "verify"]));
    assert!(text.contains(&format!("intact: {rows} rows")), "{text}");
}

/// Five events: two registrations, a login, a wrong password, an unknown account.
pub(super) async fn five_events(app: &TestApp) {
    app.register("alice").await;
    app.register("bob").await;
    let login =
        |email: &str, password: &str| json!({"user": {"email": email, "password": password}});
    let ok = app
        .post(
            "/api/users/login",
            None,
            login("alice@example.com", PASSWORD),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    let wrong = app
        .post(
            "/api/users/login",
            None,
            login("alice@example.com", "not it at all 99"),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let unknown = app
        .post(
            "/api/users/login",
            None,
            login("nobody@example.com", PASSWORD),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
}

/// Runs statements directly on the database, as an intruder with database access would,
/// after dropping the append-only triggers (which an intruder can do too).
pub(super) async fn tamper(app: &TestApp, statements: &[&str]) {
    match app.engine {
        Engine::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.database_url)
                .await
                .expect("connect");
            for sql in [
                "DROP TRIGGER audit_log_no_update",
                "DROP TRIGGER audit_log_no_delete",
            ]
            .iter()
            .chain(statements)
            {
                sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
                    .execute(&pool)
                    .await
                    .expect(sql);
            }
            pool.close().await;
        }
        Engine::Postgres => {
            let pool = sqlx::PgPool::connect(&app.database_url)
                .await
                .expect("connect");
            for sql in ["DROP TRIGGER audit_log_append_only ON audit_log"]
                .iter()
                .chain(statements)
            {
                sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
                    .execute(&pool)
                    .await
                    .expect(sql);
            }
            pool.close().await;
        }
    }
}

/// Runs one statement without dropping the triggers; returns whether it succeeded.
async fn try_sql(app: &TestApp, sql: &'static str) -> bool {
    match app.engine {
        Engine::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.database_url)
                .await
                .expect("connect");
            let ok = sqlx::raw_sql(sql).execute(&pool).await.is_ok();
            pool.close().await;
            ok
        }
        Engine::Postgres => {
            let pool = sqlx::PgPool::connect(&app.database_url)
                .await
                .expect("connect");
            let ok = sqlx::raw_sql(sql).execute(&pool).await.is_ok();
            pool.close().await;
            ok
        }
    }
}

fn exported(app: &TestApp) -> Vec<Value> {
    let output = aerie(app, &["audit", "export", "--since", "2000-01-01T00:00:00Z"]);
    succeeded(&output)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

async fn login_outcomes_are_audited_with_client_and_request_id(app: TestApp) {
    app.register("alice").await;
    for (password, status) in [
        (PASSWORD, StatusCode::OK),
        ("wrong password 123", StatusCode::UNAUTHORIZED),
    ] {
        let reply = app
            .client
            .post(app.url("/api/users/login"))
            .header("User-Agent", "audit-test/1.0")
            .header("X-Request-Id", "req-login-1")
            .json(&json!({"user": {"email": "alice@example.com", "password": password}}))
            .send()
            .await
            .expect("sent");
        assert_eq!(reply.status(), status);
    }
    let events = exported(&app);
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or(""))
        .collect();
    // Another user agent than the registration's: a new device (security/new_devices.rs).
    assert_eq!(
        types,
        [
            "user_registered",
            "login_succeeded",
            "login_new_device",
            "login_failed"
        ]
    );
    let failed = &events[3];
    assert_eq!(failed["severity"], "warning");
    assert_eq!(failed["detail"], json!({"reason": "wrong_password"}));
    assert_eq!(failed["subject"], events[0]["subject"]);
    assert_eq!(failed["client_ip"], "127.0.0.1");
    assert_eq!(failed["user_agent"], "audit-test/1.0");
    assert_eq!(failed["request_id"], "req-login-1");
    let succeeded = &events[1];
    assert_eq!(succeeded["actor"], events[0]["actor"]);
    assert!(succeeded["session"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(succeeded["time"], app.now_timestamp());
    let since_later = aerie(
        &app,
        &["audit", "export", "--since", "2999-01-01T00:00:00Z"],
    );
    assert_eq!(stdout(&since_later), "");
}

async fn password_and_email_changes_are_audited(app: TestApp) {
    let token = app.register("carol").await;
    let reply = app
        .put(
            "/api/user",
            Some(&token),
            json!({"user": {
                "email": "carol2@example.com",
                "password": "another fine horse staple 77",
                "currentPassword": PASSWORD,
            }}),
        )
        .await;
    reply.assert_status(StatusCode::OK);
    let bio_only = app
        .put("/api/user", Some(&token), json!({"user": {"bio": "hi"}}))
        .await;
    assert_eq!(bio_only.status, StatusCode::OK);
    let events = exported(&app);
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        types,
        // With mail on (development writes .eml files), a new address waits for its link.
        [
            "user_registered",
            "password_changed",
            "email_change_requested"
        ]
    );
    assert!(
        !events
            .iter()
            .any(|e| e.to_string().contains("carol2@example.com")),
        "emails stay out of the audit detail"
    );
}

async fn unknown_accounts_and_disabled_reasons_stay_internal(app: TestApp) {
    let unknown = app.login("ghost@example.com", PASSWORD).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert!(!unknown.body.to_string().contains("unknown"));
    let events = exported(&app);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["detail"], json!({"reason": "unknown_account"}));
    assert_eq!(events[0]["subject"], Value::Null);
}

async fn audit_verify_accepts_an_untouched_chain(app: TestApp) {
    five_events(&app).await;
    assert_intact(&app, 5);
}

async fn audit_rows_cannot_be_updated_or_deleted_in_place(app: TestApp) {
    five_events(&app).await;
    assert!(!try_sql(&app, "UPDATE audit_log SET detail = '{}' WHERE seq = 2").await);
    assert!(!try_sql(&app, "DELETE FROM audit_log WHERE seq = 2").await);
    assert_intact(&app, 5);
}

async fn audit_verify_detects_an_edited_row(app: TestApp) {
    five_events(&app).await;
    tamper(
        &app,
        &["UPDATE audit_log SET detail = '{\"reason\":\"nothing to see\"}' WHERE seq = 4"],
    )
    .await;
    assert_broken_at(&app, &["audit", "verify"], 4);
}

async fn audit_verify_detects_an_edited_actor(app: TestApp) {
    five_events(&app).await;
    tamper(
        &app,
        &["UPDATE audit_log SET client_ip = '10.9.9.9' WHERE seq = 2"],
    )
    .await;
    assert_broken_at(&app, &["audit", "verify"], 2);
}

async fn audit_verify_detects_a_deleted_row(app: TestApp) {
    five_events(&app).await;
    tamper(&app, &["DELETE FROM audit_log WHERE seq = 3"]).await;
    assert_broken_at(&app, &["audit", "verify"], 3);
}

async fn audit_verify_detects_swapped_rows(app: TestApp) {
    five_events(&app).await;
    tamper(
        &app,
        &[
            "UPDATE audit_log SET seq = -1 WHERE seq = 2",
            "UPDATE audit_log SET seq = 2 WHERE seq = 3",
            "UPDATE audit_log SET seq = 3 WHERE seq = -1",
        ],
    )
    .await;
    assert_broken_at(&app, &["audit", "verify"], 2);
}

async fn audit_verify_detects_an_inserted_row(app: TestApp) {
    five_events(&app).await;
    // Make room at 3, then copy a genuine row (with its genuine MAC) into the gap.
    tamper(&app, &[
        "UPDATE audit_log SET seq = -seq - 1 WHERE seq >= 3",
        "UPDATE audit_log SET seq = -seq WHERE seq < 0",
        "INSERT INTO audit_log (seq, at, event_type, severity, actor_id, subject_id, session_id, client_ip, user_agent, request_id, detail, prev_mac, mac)
             SELECT 3, at, event_type, severity, actor_id, subject_id, session_id, client_ip, user_agent, request_id, detail, prev_mac, mac FROM audit_log WHERE seq = 2",
    ]).await;
    assert_broken_at(&app, &["audit", "verify"], 3);
}

async fn audit_verify_detects_a_forged_row_appended_at_the_end(app: TestApp) {
    five_events(&app).await;
    tamper(
        &app,
        &[
            "INSERT INTO audit_log (seq, at, event_type, severity, detail, prev_mac, mac)
             SELECT 6, at, 'login_succeeded', 'info', '{}', mac, mac FROM audit_log WHERE seq = 5",
        ],
    )
    .await;
    assert_broken_at(&app, &["audit", "verify"], 6);
}

async fn audit_verify_detects_a_cut_tail(app: TestApp) {
    five_events(&app).await;
    tamper(&app, &["DELETE FROM audit_log WHERE seq >= 4"]).await;
    assert_broken_at(&app, &["audit", "verify"], 4);
}

async fn audit_checkpoint_detects_a_cut_tail_with_the_head_rewound(app: TestApp) {
    five_events(&app).await;
    let verified = stdout(&aerie(&app, &["audit", "verify"]));
    let checkpoint = verified
        .split("head ")
        .nth(1)
        .expect("the head is printed")
        .trim()
        .to_owned();
    assert!(checkpoint.starts_with("5:"), "{checkpoint}");
    // The intruder cuts the last row and rewinds the head: the database alone agrees.
    tamper(
        &app,
        &[
            "DELETE FROM audit_log WHERE seq = 5",
            "UPDATE audit_chain_head SET seq = 4, mac = (SELECT mac FROM audit_log WHERE seq = 4)",
        ],
    )
    .await;
    assert_intact(&app, 4);
    // The checkpoint shipped to the log does not.
    assert_broken_at(
        &app,
        &["audit", "verify", "--expect-at-least", &checkpoint],
        5,
    );
    // A checkpoint whose MAC differs is refused too.
    let forged = format!("4:{}", "0".repeat(64));
    assert_broken_at(&app, &["audit", "verify", "--expect-at-least", &forged], 4);
}

/// A careless intruder cuts the last row and rewinds the head's number but not its MAC: the
/// head then names row 4 with row 5's MAC, and verification says the tail was rewritten.
async fn audit_verify_detects_a_head_rewound_without_its_mac(app: TestApp) {
    five_events(&app).await;
    tamper(
        &app,
        &[
            "DELETE FROM audit_log WHERE seq = 5",
            "UPDATE audit_chain_head SET seq = 4",
        ],
    )
    .await;
    assert_broken_at(&app, &["audit", "verify"], 4);
}

async fn concurrent_events_never_fork_the_chain(app: TestApp) {
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for i in 0..12 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let reply = app.login(&format!("u{i}@example.com"), PASSWORD).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    assert_intact(&app, 12);
}

/// Issue 22.6: appends are group-committed by one writer. Two hundred events at once are each
/// durable before their request answers (every row is there, in one unbroken chain), on both
/// engines, and the rows are exactly the requests' (no event lost or doubled in a batch).
async fn two_hundred_concurrent_events_are_all_durable_and_the_chain_verifies(engine: Engine) {
    // Two hundred connections from one address: above the default per-address cap, which
    // would close some of them (that cap has its own tests).
    let app = TestApp::spawn_with(engine, &[("AERIE_MAX_CONNECTIONS_PER_ADDRESS", "256")]).await;
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let reply = app
                .login(&format!("flood{i}@example.com"), "not the password 1")
                .await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    assert_intact(&app, 200);
    let events = exported(&app);
    let mut request_ids: Vec<&str> = events
        .iter()
        .filter(|event| event["type"] == "login_failed")
        .filter_map(|event| event["request_id"].as_str())
        .collect();
    assert_eq!(request_ids.len(), 200);
    request_ids.sort_unstable();
    request_ids.dedup();
    assert_eq!(request_ids.len(), 200, "one row per request");
}

async fn audit_verify_refuses_the_wrong_key(app: TestApp) {
    five_events(&app).await;
    let key = app.data_dir.path().join("audit-key");
    std::fs::write(&key, [9u8; 32]).expect("overwrite key");
    assert_broken_at(&app, &["audit", "verify"], 1);
}

async fn signing_key_rotation_is_on_the_trail(app: TestApp) {
    let printed = succeeded(&aerie(&app, &["keys", "rotate"]));
    let events = exported(&app);
    let rotated: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "key_rotated")
        .collect();
    assert_eq!(rotated.len(), 1, "{events:?}");
    assert_eq!(rotated[0]["severity"], "warning");
    assert_eq!(rotated[0]["detail"]["key"], "signing");
    assert_eq!(rotated[0]["detail"]["by"], "cli");
    assert!(rotated[0]["detail"]["osUser"].is_string(), "{events:?}");
    let kid = rotated[0]["detail"]["kid"].as_str().expect("kid");
    assert!(printed.contains(kid), "the event names the new key");
    assert_intact(&app, i64::try_from(events.len()).expect("count"));
}

engine_tests!(
    login_outcomes_are_audited_with_client_and_request_id,
    password_and_email_changes_are_audited,
    unknown_accounts_and_disabled_reasons_stay_internal,
    audit_verify_accepts_an_untouched_chain,
    audit_rows_cannot_be_updated_or_deleted_in_place,
    audit_verify_detects_an_edited_row,
    audit_verify_detects_an_edited_actor,
    audit_verify_detects_a_deleted_row,
    audit_verify_detects_swapped_rows,
    audit_verify_detects_an_inserted_row,
    audit_verify_detects_a_forged_row_appended_at_the_end,
    audit_verify_detects_a_cut_tail,
    audit_checkpoint_detects_a_cut_tail_with_the_head_rewound,
    audit_verify_detects_a_head_rewound_without_its_mac,
    concurrent_events_never_fork_the_chain,
    two_hundred_concurrent_events_are_all_durable_and_the_chain_verifies,
    audit_verify_refuses_the_wrong_key,
    signing_key_rotation_is_on_the_trail,
);
