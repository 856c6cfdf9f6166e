//! Retention (issue 22.4): sessions and refresh tokens used to be kept forever. A pass
//! deletes those past their idle timeout or lifetime, or revoked for longer than their
//! access tokens live, plus a grace; live and recently ended sessions stay. Time moves with
//! the test clock; the pass is the one the server runs on its interval. Mailed tokens go
//! once expired.

use std::sync::Arc;
use std::time::Duration;

use aerie::config::Config;
use aerie::services::retention::Retention;
use aerie::store::Pruned;
use reqwest::StatusCode;

use crate::common::{
    Engine, TestApp, engine_tests, refresh, refresh_token_of, refreshed, token_of,
};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// The server's retention, with the default settings, on the test's database and clock.
async fn retention(app: &TestApp) -> Retention {
    let config = Config::from_vars(Vec::<(String, String)>::new()).expect("defaults");
    Retention::new(
        app.store().await,
        Arc::clone(&app.clock) as Arc<dyn aerie::clock::Clock>,
        config.retention,
        config.sessions,
        config.tokens.access_token_ttl,
    )
}

/// Checks how many rows SQLite's revocation log holds (PostgreSQL has no log: servers hear
/// revocations by NOTIFY).
async fn assert_revocation_log(app: &TestApp, rows: usize, why: &str) {
    if app.engine != Engine::Sqlite {
        return;
    }
    let count = app
        .query_text("SELECT CAST(COUNT(*) AS TEXT) FROM session_revocations")
        .await;
    assert_eq!(count, [rows.to_string()], "{why}");
}

async fn expired_sessions_and_tokens_are_pruned_and_live_ones_stay(app: TestApp) {
    let logged_out = app.register_user("bob").await;
    let reply = app
        .post(
            "/api/auth/logout",
            Some(&token_of(&logged_out)),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let idle = app.register_user("dave").await;
    let mut active = app.register_user("carol").await;

    // Carol refreshes every four days; Dave never comes back (idle timeout: 7 days).
    for _ in 0..2 {
        app.clock.advance(4 * DAY);
        active = refreshed(&app, &refresh_token_of(&active)).await;
    }
    app.clock.advance(Duration::from_secs(60 * 60));
    let recently_ended = app.register_user("eve").await;
    let reply = app
        .post(
            "/api/auth/logout",
            Some(&token_of(&recently_ended)),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);

    let retention = retention(&app).await;
    assert_revocation_log(&app, 2, "bob's and eve's logouts").await;
    let pruned = retention.run_once().await.expect("a pass");
    assert_revocation_log(&app, 1, "bob's row went; eve's, just written, stays").await;
    assert_eq!(
        pruned,
        Pruned {
            sessions: 2,
            refresh_tokens: 2
        },
        "bob's revoked and dave's idle session, one token each"
    );
    assert_eq!(
        retention.run_once().await.expect("a pass"),
        Pruned::default()
    );

    let reply = refresh(&app, &refresh_token_of(&idle)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let next = refreshed(&app, &refresh_token_of(&active)).await;
    let sessions = app.get("/api/auth/sessions", Some(&token_of(&next))).await;
    assert_eq!(sessions.body["sessions"].as_array().map(Vec::len), Some(1));

    // Past the grace, eve's revoked session goes too, and carol's stays while she is active.
    app.clock.advance(DAY + Duration::from_secs(1));
    let pruned = retention.run_once().await.expect("a pass");
    assert_eq!(pruned.sessions, 1);
    assert_revocation_log(&app, 0, "eve's row went").await;
    refreshed(&app, &refresh_token_of(&next)).await;
}

/// Mailed tokens (verification, reset, change links) past their 30 minutes go, spent or not;
/// a live one stays, and its link still works.
async fn expired_mail_tokens_are_pruned_and_live_ones_stay(app: TestApp) {
    let tokens_of = async |name: &str| {
        let sql = format!(
            "SELECT CAST(COUNT(*) AS TEXT) FROM mail_tokens t JOIN users u ON u.id = t.user_id \
             WHERE u.username = '{name}'"
        );
        app.query_text(&sql).await
    };
    app.register("gail").await;
    let retention = retention(&app).await;
    retention.run_once().await.expect("a pass");
    assert_eq!(tokens_of("gail").await, ["1"], "a live link stays");

    app.clock.advance(Duration::from_secs(30 * 60 + 1));
    app.register("hal").await;
    retention.run_once().await.expect("a pass");
    assert_eq!(tokens_of("gail").await, ["0"], "an expired link goes");
    assert_eq!(tokens_of("hal").await, ["1"]);
    let link = app.outbox_mail("hal@example.com", "Verify").await;
    app.post(
        "/api/auth/email/verify",
        None,
        serde_json::json!({ "token": link.token().expect("a link") }),
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
}

engine_tests!(
    expired_sessions_and_tokens_are_pruned_and_live_ones_stay,
    expired_mail_tokens_are_pruned_and_live_ones_stay,
);
