//! The kill switches (attacks.md §2; issue 13.4, issue 24.2): disabling an account, an
//! administrator's or the operator's session revocation and a demotion each end the
//! account's sessions. Each is proven on routes that trust the access token alone (the feed,
//! a write, an admin route: none re-reads the account) and on refresh, on both engines, and
//! for the CLI against a server that is already running.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{
    TestApp, aerie, assert_unauthorized, engine_tests, refresh, refresh_token_of, token_of,
};

/// Longest wait for a revocation made by another process (the CLI) to reach the running
/// server; the promise is 2 s, the bound leaves room for a loaded test machine.
const PATIENCE: Duration = Duration::from_secs(10);

/// Asks `path` with `token` until the server answers 401, for at most [`PATIENCE`].
async fn refused_soon(app: &TestApp, method: &str, path: &str, token: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let reply = match method {
            "POST" => app.post(path, Some(token), article("after")).await,
            _ => app.get(path, Some(token)).await,
        };
        if reply.status == StatusCode::UNAUTHORIZED {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{method} {path} still answered {} after the CLI revoked the session",
            reply.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn article(title: &str) -> serde_json::Value {
    json!({"article": {"title": title, "description": "d", "body": "b", "tagList": []}})
}

/// Registers `name`, makes it an admin as the operator would, and logs in again (the role
/// change ended the first session): the returned token carries the admin role.
async fn admin_token(app: &TestApp, name: &str) -> String {
    app.register(name).await;
    app.set_role(name, "admin").await;
    crate::common::token_of(&app.login_user(name).await)
}

async fn cli_revocations_reach_a_running_server(app: TestApp) {
    let boss = admin_token(&app, "boss").await;
    let alice = app.register("alice").await;
    let carol = app.register("carol").await;
    assert_eq!(
        app.get("/api/admin/users", Some(&boss)).await.status,
        StatusCode::OK
    );
    app.post("/api/articles", Some(&alice), article("before"))
        .await
        .assert_status(StatusCode::CREATED);
    app.get("/api/articles/feed", Some(&carol))
        .await
        .assert_status(StatusCode::OK);

    aerie(&app, "", &["user", "set-role", "boss", "user"], "").await;
    refused_soon(&app, "GET", "/api/admin/users", &boss).await;
    aerie(&app, "", &["user", "disable", "alice"], "").await;
    refused_soon(&app, "POST", "/api/articles", &alice).await;
    aerie(&app, "", &["sessions", "revoke", "--user", "carol"], "").await;
    refused_soon(&app, "GET", "/api/articles/feed", &carol).await;
}

/// The operator's last resort (`aerie sessions revoke --all`, the runbook's answer to a
/// stolen signing key or a breach) ends every account's sessions on the running server,
/// and says how many it ended, so the operator knows it reached them.
async fn revoking_everyone_from_the_cli_ends_every_session(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let bob_elsewhere = token_of(&app.login_user("bob").await);
    let revoked = aerie(&app, "", &["sessions", "revoke", "--all"], "").await;
    assert_eq!(
        String::from_utf8_lossy(&revoked.stdout).trim(),
        "3 session(s) revoked"
    );
    for token in [&alice, &bob, &bob_elsewhere] {
        refused_soon(&app, "GET", "/api/articles/feed", token).await;
    }
    app.assert_audited("session_revoked", "scope", "everyone")
        .await;
}

/// A burst of revocations (thousands of sessions ended at once, as when an administrator
/// disables many accounts) must not queue the next one behind it: an SQLite server reading
/// the revocation log one batch a second, or sweeping its whole set once a row, would let a
/// stolen token through for a minute. SQLite only: PostgreSQL servers hear each revocation
/// by NOTIFY, with no log to work off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_after_a_burst_reaches_a_running_server_as_soon() {
    let app = TestApp::spawn(crate::common::Engine::Sqlite).await;
    let carol = app.register("carol").await;
    // Sessions no one holds, revoked after the server started: 60 batches of the log.
    app.execute_sql(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60000)
         INSERT INTO session_revocations (session_id, revoked_at)
         SELECT printf('burst%027d', i), CAST(strftime('%s', 'now') AS INTEGER) * 1000 FROM n",
    )
    .await;
    aerie(&app, "", &["sessions", "revoke", "--user", "carol"], "").await;
    refused_soon(&app, "GET", "/api/articles/feed", &carol).await;
}

/// An administrator's session: what a thief holding its tokens would have.
struct Stolen {
    access: String,
    refresh: String,
}

/// Registers `name` as an administrator with a fresh session, whose tokens reach every
/// kind of route: the feed, a write, an admin route, and refresh.
async fn admin_session(app: &TestApp, name: &str) -> Stolen {
    app.register(name).await;
    app.set_role(name, "admin").await;
    let user = app.login_user(name).await;
    Stolen {
        access: token_of(&user),
        refresh: refresh_token_of(&user),
    }
}

/// The routes that trust the access token alone: none of them reads the account again, so
/// only the revocation can stop them.
async fn token_only_routes(app: &TestApp, token: &str) -> [(&'static str, StatusCode); 3] {
    [
        (
            "GET /api/articles/feed",
            app.get("/api/articles/feed", Some(token)).await.status,
        ),
        (
            "POST /api/articles",
            app.post("/api/articles", Some(token), article("a write"))
                .await
                .status,
        ),
        (
            "GET /api/admin/users",
            app.get("/api/admin/users", Some(token)).await.status,
        ),
    ]
}

async fn assert_alive(app: &TestApp, stolen: &Stolen) {
    for (route, status) in token_only_routes(app, &stolen.access).await {
        assert!(status.is_success(), "before: {route} answered {status}");
    }
}

/// Every token-only route and refresh refuse the session's tokens.
async fn assert_killed(app: &TestApp, stolen: &Stolen, switch: &str) {
    for (route, status) in token_only_routes(app, &stolen.access).await {
        assert_eq!(status, StatusCode::UNAUTHORIZED, "after {switch}: {route}");
    }
    assert_unauthorized(
        &refresh(app, &stolen.refresh).await,
        &format!("refresh after {switch}"),
    );
}

async fn disabling_an_account_kills_its_tokens_everywhere(app: TestApp) {
    let boss = admin_session(&app, "boss").await;
    let victim = admin_session(&app, "victim").await;
    assert_alive(&app, &victim).await;
    app.post(
        "/api/admin/users/victim/disable",
        Some(&boss.access),
        json!({}),
    )
    .await
    .assert_status(StatusCode::OK);
    assert_killed(&app, &victim, "disable").await;
}

async fn an_admins_session_revocation_kills_the_tokens_everywhere(app: TestApp) {
    let boss = admin_session(&app, "boss").await;
    let victim = admin_session(&app, "victim").await;
    assert_alive(&app, &victim).await;
    app.delete("/api/admin/users/victim/sessions", Some(&boss.access))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert_killed(&app, &victim, "session revocation").await;
}

async fn a_demotion_kills_the_tokens_carrying_the_old_role(app: TestApp) {
    let boss = admin_session(&app, "boss").await;
    let victim = admin_session(&app, "victim").await;
    assert_alive(&app, &victim).await;
    app.put(
        "/api/admin/users/victim/role",
        Some(&boss.access),
        json!({"role": "user"}),
    )
    .await
    .assert_status(StatusCode::OK);
    assert_killed(&app, &victim, "demotion").await;
}

engine_tests!(
    cli_revocations_reach_a_running_server,
    revoking_everyone_from_the_cli_ends_every_session,
    disabling_an_account_kills_its_tokens_everywhere,
    an_admins_session_revocation_kills_the_tokens_everywhere,
    a_demotion_kills_the_tokens_carrying_the_old_role,
);
