//! Sessions and refresh tokens (attacks.md §1 J24, §2 S1–S9, S13, S14): rotation, reuse
//! detection, timeouts and revocation that takes effect at once, on both engines. Time
//! moves with the test clock, never by sleeping.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{
    self, PASSWORD, TestApp, assert_unauthorized, engine_tests, refresh, refresh_token_of,
    refreshed, token_of,
};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);
/// The default grace window for a concurrent refresh.
const GRACE: Duration = Duration::from_secs(5);

/// An authenticated route that reads no account data: only the token and the in-memory
/// revocation set stand between it and the caller.
async fn feed(app: &TestApp, token: &str) -> common::Reply {
    app.get("/api/articles/feed", Some(token)).await
}

async fn login_and_register_return_an_opaque_refresh_token(app: TestApp) {
    let registered = app.register_user("bob").await;
    let logged_in = app.login_user("bob").await;
    for user in [&registered, &logged_in] {
        let refresh_token = refresh_token_of(user);
        assert_eq!(refresh_token.len(), 43, "256 random bits, base64url");
        assert!(!refresh_token.contains('.'), "not a JWT");
        assert_ne!(refresh_token, token_of(user));
    }
    assert_ne!(refresh_token_of(&registered), refresh_token_of(&logged_in));
    let me = app.get("/api/user", Some(&token_of(&registered))).await;
    assert!(
        me.body["user"].get("refreshToken").is_none(),
        "only when a session starts"
    );
}

async fn refresh_rotates_the_refresh_token(app: TestApp) {
    let bob = app.register_user("bob").await;
    let next = refreshed(&app, &refresh_token_of(&bob)).await;
    assert_eq!(next["username"], "bob");
    assert_eq!(next["email"], "bob@example.com");
    assert_ne!(refresh_token_of(&next), refresh_token_of(&bob));
    assert_ne!(token_of(&next), token_of(&bob));
    assert_eq!(feed(&app, &token_of(&next)).await.status, StatusCode::OK);
    let third = refreshed(&app, &refresh_token_of(&next)).await;
    assert_eq!(feed(&app, &token_of(&third)).await.status, StatusCode::OK);
}

async fn refresh_token_reuse_revokes_family(app: TestApp) {
    let bob = app.register_user("bob").await;
    let stolen = refresh_token_of(&bob);
    let rightful = refreshed(&app, &stolen).await;
    app.clock.advance(GRACE + Duration::from_secs(1));
    assert_unauthorized(
        &refresh(&app, &stolen).await,
        "reused after the grace window",
    );
    assert_unauthorized(
        &refresh(&app, &refresh_token_of(&rightful)).await,
        "the family's newest token",
    );
    assert_unauthorized(
        &feed(&app, &token_of(&rightful)).await,
        "the family's access token",
    );
    assert_unauthorized(&feed(&app, &token_of(&bob)).await, "the first access token");
    let other_session = app.login_user("bob").await;
    assert_eq!(
        feed(&app, &token_of(&other_session)).await.status,
        StatusCode::OK
    );
}

async fn concurrent_refresh_inside_the_grace_window_is_not_reuse(app: TestApp) {
    let bob = app.register_user("bob").await;
    let first = refresh_token_of(&bob);
    let a = refreshed(&app, &first).await;
    app.clock.advance(GRACE - Duration::from_secs(1));
    let b = refreshed(&app, &first).await;
    assert_eq!(
        refresh_token_of(&a),
        refresh_token_of(&b),
        "the same successor: one family, one branch"
    );
    assert_eq!(feed(&app, &token_of(&a)).await.status, StatusCode::OK);
    assert_eq!(feed(&app, &token_of(&b)).await.status, StatusCode::OK);
    refreshed(&app, &refresh_token_of(&a)).await;
}

/// The idle timeout (7 days) to the millisecond: a pause of exactly 7 days is still within
/// it, one millisecond more is not.
async fn idle_session_cannot_be_refreshed(app: TestApp) {
    let bob = app.register_user("bob").await;
    let kept = refreshed(&app, &refresh_token_of(&bob)).await;
    app.clock.advance(7 * DAY);
    let kept = refreshed(&app, &refresh_token_of(&kept)).await;
    app.clock.advance(7 * DAY + Duration::from_millis(1));
    assert_unauthorized(
        &refresh(&app, &refresh_token_of(&kept)).await,
        "idle for longer than the timeout",
    );
}

/// The absolute lifetime (30 days) to the millisecond, however active the session: a
/// refresh exactly 30 days after login still works, one a millisecond later does not.
async fn session_ends_at_its_absolute_lifetime(app: TestApp) {
    let mut user = app.register_user("bob").await;
    for _ in 0..5 {
        app.clock.advance(6 * DAY);
        user = refreshed(&app, &refresh_token_of(&user)).await;
    }
    app.clock.advance(Duration::from_millis(1));
    assert_unauthorized(
        &refresh(&app, &refresh_token_of(&user)).await,
        "30 days after login",
    );
}

async fn token_after_logout_is_refused(app: TestApp) {
    let bob = app.register_user("bob").await;
    let token = token_of(&bob);
    let reply = app.post("/api/auth/logout", Some(&token), json!({})).await;
    reply.assert_status(StatusCode::NO_CONTENT);
    assert_unauthorized(&feed(&app, &token).await, "access token after logout");
    assert_unauthorized(
        &app.get("/api/user", Some(&token)).await,
        "current user after logout",
    );
    assert_unauthorized(
        &refresh(&app, &refresh_token_of(&bob)).await,
        "refresh after logout",
    );
}

/// A stolen token revoked by a logout must stay refused while other sessions end around it:
/// each revocation also clears out the expired ones, and must never take a live one with them.
async fn a_logged_out_token_stays_refused_after_other_logouts(app: TestApp) {
    let bob = app.register_user("bob").await;
    let alice = app.register_user("alice").await;
    app.post("/api/auth/logout", Some(&token_of(&bob)), json!({}))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    app.clock.advance(Duration::from_secs(60));
    app.post("/api/auth/logout", Some(&token_of(&alice)), json!({}))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert_unauthorized(
        &feed(&app, &token_of(&bob)).await,
        "bob's token after alice's logout",
    );
    assert_unauthorized(&feed(&app, &token_of(&alice)).await, "alice's token");
}

async fn logout_all_ends_every_session(app: TestApp) {
    let phone = app.register_user("bob").await;
    let laptop = app.login_user("bob").await;
    let alice = app.register_user("alice").await;
    let reply = app
        .post("/api/auth/logout-all", Some(&token_of(&laptop)), json!({}))
        .await;
    reply.assert_status(StatusCode::NO_CONTENT);
    for (user, case) in [(&phone, "phone"), (&laptop, "laptop")] {
        assert_unauthorized(&feed(&app, &token_of(user)).await, case);
        assert_unauthorized(&refresh(&app, &refresh_token_of(user)).await, case);
    }
    assert_eq!(
        feed(&app, &token_of(&alice)).await.status,
        StatusCode::OK,
        "other users keep theirs"
    );
}

async fn session_list_shows_only_the_callers_live_sessions(app: TestApp) {
    let first = app.register_user("bob").await;
    let second = app.login_user("bob").await;
    app.register_user("alice").await;
    let ended = app.login_user("bob").await;
    app.post("/api/auth/logout", Some(&token_of(&ended)), json!({}))
        .await;
    let reply = app
        .get("/api/auth/sessions", Some(&token_of(&second)))
        .await;
    reply.assert_status(StatusCode::OK);
    let sessions = reply.body["sessions"].as_array().expect("sessions").clone();
    assert_eq!(sessions.len(), 2, "{}", reply.body);
    for session in &sessions {
        common::assert_keys(
            session,
            &[
                "id",
                "createdAt",
                "lastUsedAt",
                "ip",
                "userAgent",
                "lastIp",
                "lastDevice",
                "current",
            ],
        );
        common::assert_timestamp(&session["createdAt"]);
        common::assert_timestamp(&session["lastUsedAt"]);
        assert_eq!(session["ip"], "127.0.0.1");
        assert_eq!(session["lastIp"], "127.0.0.1");
    }
    let current: Vec<&Value> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    let from_first = app.get("/api/auth/sessions", Some(&token_of(&first))).await;
    assert_ne!(
        from_first.body, reply.body,
        "`current` follows the caller's token"
    );
}

/// The session list shows what can still be used: a session idle past the idle timeout, or
/// older than the absolute lifetime though in use, is over and not listed (each by its own
/// rule: the one too old was used recently, the idle one is young).
async fn sessions_idle_too_long_or_too_old_are_not_listed(engine: common::Engine) {
    let app = TestApp::spawn_with(
        engine,
        &[
            ("AERIE_SESSION_IDLE_TIMEOUT_SECS", "3600"),
            ("AERIE_SESSION_MAX_LIFETIME_SECS", "7200"),
        ],
    )
    .await;
    let too_old = app.register_user("bob").await;
    app.clock.advance(Duration::from_secs(3000));
    let too_old = refreshed(&app, &refresh_token_of(&too_old)).await;
    app.clock.advance(Duration::from_secs(500));
    app.login_user("bob").await; // opened at 3,500 s, never used again: idle
    app.clock.advance(Duration::from_secs(2500));
    refreshed(&app, &refresh_token_of(&too_old)).await; // used at 6,000 s, opened at 0
    let lister = app.login_user("bob").await;
    app.clock.advance(Duration::from_secs(1300));
    let lister = refreshed(&app, &refresh_token_of(&lister)).await;
    let reply = app
        .get("/api/auth/sessions", Some(&token_of(&lister)))
        .await;
    reply.assert_status(StatusCode::OK);
    let sessions = reply.body["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 1, "only the lister's own: {}", reply.body);
    assert_eq!(sessions[0]["current"], true);
}

async fn revoking_another_users_session_is_not_found(app: TestApp) {
    let bob = app.register_user("bob").await;
    let bob_laptop = app.login_user("bob").await;
    let alice = app.register_user("alice").await;
    let sessions = app
        .get("/api/auth/sessions", Some(&token_of(&bob)))
        .await
        .body;
    let ids: Vec<(String, bool)> = sessions["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|s| {
            (
                s["id"].as_str().expect("id").to_owned(),
                s["current"] == true,
            )
        })
        .collect();
    for (id, _) in &ids {
        let reply = app
            .delete(&format!("/api/auth/sessions/{id}"), Some(&token_of(&alice)))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "alice ending bob's session"
        );
    }
    let unknown = app
        .delete("/api/auth/sessions/0000", Some(&token_of(&alice)))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(
        feed(&app, &token_of(&bob_laptop)).await.status,
        StatusCode::OK
    );
    let (laptop_id, _) = ids
        .iter()
        .find(|(_, current)| !current)
        .expect("the other session");
    let reply = app
        .delete(
            &format!("/api/auth/sessions/{laptop_id}"),
            Some(&token_of(&bob)),
        )
        .await;
    reply.assert_status(StatusCode::NO_CONTENT);
    assert_unauthorized(
        &feed(&app, &token_of(&bob_laptop)).await,
        "the ended session",
    );
    assert_eq!(feed(&app, &token_of(&bob)).await.status, StatusCode::OK);
}

const NEW_PASSWORD: &str = "a completely different passphrase 77";

async fn password_change_revokes_other_sessions(app: TestApp) {
    let here = app.register_user("bob").await;
    let elsewhere = app.login_user("bob").await;
    let wrong = app
        .put(
            "/api/user/password",
            Some(&token_of(&here)),
            json!({"currentPassword": "not it at all, sorry", "newPassword": NEW_PASSWORD}),
        )
        .await;
    wrong.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.error_on("currentPassword").is_some());
    assert_eq!(
        feed(&app, &token_of(&elsewhere)).await.status,
        StatusCode::OK
    );
    let reply = app
        .put(
            "/api/user/password",
            Some(&token_of(&here)),
            json!({"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}),
        )
        .await;
    reply.assert_status(StatusCode::NO_CONTENT);
    assert_unauthorized(
        &feed(&app, &token_of(&elsewhere)).await,
        "other session's access token",
    );
    assert_unauthorized(
        &refresh(&app, &refresh_token_of(&elsewhere)).await,
        "other session's refresh token",
    );
    assert_eq!(
        feed(&app, &token_of(&here)).await.status,
        StatusCode::OK,
        "the caller's session stays"
    );
    refreshed(&app, &refresh_token_of(&here)).await;
    let login = app.login("bob@example.com", NEW_PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK);
}

async fn password_change_through_user_update_revokes_other_sessions(app: TestApp) {
    let here = app.register_user("bob").await;
    let elsewhere = app.login_user("bob").await;
    let reply = app
        .put(
            "/api/user",
            Some(&token_of(&here)),
            json!({"user": {"password": NEW_PASSWORD, "currentPassword": PASSWORD}}),
        )
        .await;
    reply.assert_status(StatusCode::OK);
    assert_unauthorized(
        &feed(&app, &token_of(&elsewhere)).await,
        "other session after PUT /api/user",
    );
    assert_eq!(feed(&app, &token_of(&here)).await.status, StatusCode::OK);
    let bio_only = app
        .put(
            "/api/user",
            Some(&token_of(&here)),
            json!({"user": {"bio": "hi"}}),
        )
        .await;
    assert_eq!(bio_only.status, StatusCode::OK);
}

async fn refresh_token_and_access_token_are_not_interchangeable(app: TestApp) {
    let bob = app.register_user("bob").await;
    assert_unauthorized(
        &feed(&app, &refresh_token_of(&bob)).await,
        "refresh token as access token",
    );
    assert_unauthorized(
        &app.get("/api/user", Some(&refresh_token_of(&bob))).await,
        "refresh token on /api/user",
    );
    assert_unauthorized(
        &refresh(&app, &token_of(&bob)).await,
        "access token as refresh token",
    );
}

async fn malformed_or_unknown_refresh_tokens_are_refused(app: TestApp) {
    let bob = app.register_user("bob").await;
    let token = refresh_token_of(&bob);
    let mut flipped = token.clone().into_bytes();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    let random = common::random_refresh_token();
    for (bad, case) in [
        (&token[..42], "truncated"),
        (flipped.as_str(), "bit-flipped"),
        (&format!("{token}A"), "too long"),
        (random.as_str(), "well-formed but unknown"),
        ("", "empty"),
        ("' OR '1'='1", "SQL"),
    ] {
        assert_unauthorized(&refresh(&app, bad).await, case);
    }
    let missing = app.post("/api/auth/refresh", None, json!({})).await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    let extra = app
        .post(
            "/api/auth/refresh",
            None,
            json!({"refreshToken": token, "userId": 1}),
        )
        .await;
    assert_eq!(extra.status, StatusCode::UNPROCESSABLE_ENTITY);
    refreshed(&app, &token).await;
}

async fn disabled_users_tokens_stop_working(app: TestApp) {
    let bob = app.register_user("bob").await;
    app.execute_sql("UPDATE users SET disabled_at = 1 WHERE username = 'bob'")
        .await;
    assert_unauthorized(
        &app.get("/api/user", Some(&token_of(&bob))).await,
        "access token of a disabled user",
    );
    assert_unauthorized(
        &refresh(&app, &refresh_token_of(&bob)).await,
        "refresh token of a disabled user",
    );
    let login = app.login("bob@example.com", PASSWORD).await;
    assert_unauthorized(&login, "the right password of a disabled account");
    let failed = app.audit_events("login_failed").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["detail"]["reason"], "disabled");
}

/// Two instances on one PostgreSQL database: a logout on A is honoured by B within a second
/// (LISTEN/NOTIFY), although B never reads the database to check a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_on_one_instance_is_honoured_by_another_within_a_second() {
    let Some(a) = TestApp::spawn_postgres().await else {
        eprintln!("SKIPPED: two-instance revocation test needs AERIE_TEST_POSTGRES_URL");
        return;
    };
    let b = a.spawn_sibling().await;
    let bob = a.register_user("bob").await;
    let token = token_of(&bob);
    assert_eq!(
        feed(&b, &token).await.status,
        StatusCode::OK,
        "B accepts A's token"
    );
    let reply = a.post("/api/auth/logout", Some(&token), json!({})).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let started = std::time::Instant::now();
    loop {
        let status = feed(&b, &token).await.status;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "instance B still accepts the token 1 s after logout on A"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_unauthorized(
        &refresh(&b, &refresh_token_of(&bob)).await,
        "refresh on B after logout on A",
    );
}

/// A new instance loads recent revocations from the database at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_started_after_a_logout_refuses_the_token() {
    let app = TestApp::spawn(common::Engine::Sqlite).await;
    let bob = app.register_user("bob").await;
    app.post("/api/auth/logout", Some(&token_of(&bob)), json!({}))
        .await;
    let restarted = app.spawn_sibling().await;
    assert_unauthorized(
        &feed(&restarted, &token_of(&bob)).await,
        "token after logout, new instance",
    );
}

engine_tests!(
    login_and_register_return_an_opaque_refresh_token,
    refresh_rotates_the_refresh_token,
    refresh_token_reuse_revokes_family,
    concurrent_refresh_inside_the_grace_window_is_not_reuse,
    idle_session_cannot_be_refreshed,
    session_ends_at_its_absolute_lifetime,
    token_after_logout_is_refused,
    a_logged_out_token_stays_refused_after_other_logouts,
    logout_all_ends_every_session,
    session_list_shows_only_the_callers_live_sessions,
    sessions_idle_too_long_or_too_old_are_not_listed,
    revoking_another_users_session_is_not_found,
    password_change_revokes_other_sessions,
    password_change_through_user_update_revokes_other_sessions,
    refresh_token_and_access_token_are_not_interchangeable,
    malformed_or_unknown_refresh_tokens_are_refused,
    disabled_users_tokens_stop_working,
);
