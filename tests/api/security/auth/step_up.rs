//! Step-up (issue 13.7, issue 14.3): a stolen access token, or a device left signed in, must
//! not be enough to change the account's email or password, end another session or mint an
//! administrator. Those need a password authentication within `AERIE_STEP_UP_MAX_AGE_SECS`
//! (600 s by default), carried in the token as `auth_time` and kept by refresh; otherwise 403
//! with a header naming `POST /api/auth/step-up`, which gives a fresh one for the same
//! session. A wrong step-up password changes nothing and spends the session's login budget;
//! guessers at the login form, who spend the account's, cannot stop the owner stepping up.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{
    Engine, PASSWORD, Reply, TestApp, engine_tests, refresh_token_of, refreshed, rows_of, token_of,
};

const STALE: Duration = Duration::from_secs(601);

/// Asserts the step-up refusal: 403, the documented body, and the header naming the route.
#[track_caller]
fn assert_step_up_required(reply: &Reply, case: &str) {
    assert_eq!(
        reply.status,
        StatusCode::FORBIDDEN,
        "{case}: {}",
        reply.body
    );
    assert_eq!(
        reply.body,
        json!({"errors": {"auth": ["re-authentication required"]}}),
        "{case}"
    );
    assert_eq!(
        reply
            .headers
            .get("x-aerie-step-up")
            .and_then(|v| v.to_str().ok()),
        Some("/api/auth/step-up"),
        "{case}"
    );
}

async fn change_email(app: &TestApp, token: &str, email: &str) -> Reply {
    app.put("/api/user", Some(token), json!({"user": {"email": email}}))
        .await
}

async fn step_up(app: &TestApp, token: &str, password: &str) -> Reply {
    app.post(
        "/api/auth/step-up",
        Some(token),
        json!({"password": password}),
    )
    .await
}

async fn credential_changes_need_a_recent_authentication(app: TestApp) {
    let bob = app.register_user("bob").await;
    change_email(&app, &token_of(&bob), "bob2@example.com")
        .await
        .assert_status(StatusCode::OK);
    app.clock.advance(STALE);
    // A refresh keeps the login's time: a stolen refresh token does not make it recent.
    let refreshed_bob = refreshed(&app, &refresh_token_of(&bob)).await;
    let stale = token_of(&refreshed_bob);
    assert_step_up_required(
        &change_email(&app, &stale, "mallory@example.com").await,
        "email after 601 s",
    );
    let password = json!({"currentPassword": PASSWORD, "newPassword": "a new long passphrase 99"});
    assert_step_up_required(
        &app.put("/api/user/password", Some(&stale), password.clone())
            .await,
        "password after 601 s",
    );
    let bio = app
        .put(
            "/api/user",
            Some(&stale),
            json!({"user": {"bio": "still me"}}),
        )
        .await;
    bio.assert_status(StatusCode::OK);

    let stepped = step_up(&app, &stale, PASSWORD).await;
    stepped.assert_status(StatusCode::OK);
    assert_eq!(stepped.body["user"]["username"], "bob");
    assert!(stepped.body["user"].get("refreshToken").is_none());
    let fresh = stepped.body["user"]["token"]
        .as_str()
        .expect("a token")
        .to_owned();
    change_email(&app, &fresh, "bob3@example.com")
        .await
        .assert_status(StatusCode::OK);
    // The session remembers the step-up: its next refresh is recent too.
    let after = refreshed(&app, &refresh_token_of(&refreshed_bob)).await;
    app.put("/api/user/password", Some(&token_of(&after)), password)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    // Both accepted changes wait for the new address's link (mail is on in development);
    // the stale one was refused before anything was mailed.
    assert_eq!(app.audit_events("email_change_requested").await.len(), 2);
    assert_eq!(
        app.get("/api/user", Some(&fresh)).await.body["user"]["email"],
        "bob@example.com"
    );
}

async fn a_wrong_step_up_password_changes_nothing_and_spends_the_login_budget(engine: Engine) {
    let app = TestApp::spawn_with(engine, &[("AERIE_RATE_LIMIT_LOGIN_PAIR", "2/900")]).await;
    let token = app.register("carol").await;
    app.clock.advance(STALE);
    for _ in 0..2 {
        let wrong = step_up(&app, &token, "not carol's password 1").await;
        wrong.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(wrong.error_on("password"), Some("is incorrect"));
    }
    assert_step_up_required(
        &change_email(&app, &token, "mallory@example.com").await,
        "still stale after wrong step-ups",
    );
    step_up(&app, &token, PASSWORD)
        .await
        .assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(rows_of(&app, "step_up_failed").await.len(), 2);
    assert!(rows_of(&app, "step_up_succeeded").await.is_empty());
    let me: Value = app.get("/api/user", Some(&token)).await.body;
    assert_eq!(me["user"]["email"], "carol@example.com");
}

/// Issue 14.1 for signed-in password checks: guessers on other addresses spend the account's
/// login budget (their own next guess is refused), yet the owner, signed in, still steps up
/// and changes the very password they are guessing. The owner's correct password costs
/// nothing.
async fn guessers_elsewhere_cannot_stop_the_owner_stepping_up(engine: Engine) {
    let app = TestApp::spawn_with(
        engine,
        &[
            ("AERIE_TRUSTED_PROXIES", "127.0.0.1/32"),
            // A day's refill: the account is still locked once the session has gone stale.
            ("AERIE_RATE_LIMIT_LOGIN_ACCOUNT", "2/86400"),
            ("AERIE_RATE_LIMIT_LOGIN_PAIR", "2/86400"),
        ],
    )
    .await;
    let token = app.register("erin").await;
    for n in 1..=3 {
        let ip = format!("203.0.113.{n}");
        app.login_from("erin@example.com", "a wrong guess 12345", &ip)
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
    }
    app.clock.advance(STALE);
    let locked = app
        .login_from("erin@example.com", "a wrong guess 12345", "203.0.113.1")
        .await;
    locked.assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert!(
        locked
            .headers
            .get("ratelimit-policy")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|policy| policy.starts_with("\"login-account\";")),
        "the account is locked: {:?}",
        locked.headers
    );
    for _ in 0..3 {
        step_up(&app, &token, PASSWORD)
            .await
            .assert_status(StatusCode::OK);
    }
    let fresh = step_up(&app, &token, PASSWORD).await.body["user"]["token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let body = json!({"currentPassword": PASSWORD, "newPassword": "a brand new passphrase 99"});
    app.put("/api/user/password", Some(&fresh), body)
        .await
        .assert_status(StatusCode::NO_CONTENT);
}

async fn ending_another_session_needs_a_recent_authentication(app: TestApp) {
    let first = token_of(&app.register_user("dave").await);
    let second = token_of(&app.login_user("dave").await);
    let sessions = app.get("/api/auth/sessions", Some(&second)).await.body;
    let other = sessions["sessions"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["current"] == false))
        .and_then(|s| s["id"].as_str())
        .expect("the first session")
        .to_owned();
    app.clock.advance(STALE);
    let path = format!("/api/auth/sessions/{other}");
    assert_step_up_required(&app.delete(&path, Some(&second)).await, "other session");
    assert_eq!(
        app.get("/api/articles/feed", Some(&first)).await.status,
        StatusCode::OK,
        "the refused deletion ended nothing"
    );
    let fresh = step_up(&app, &second, PASSWORD).await.body["user"]["token"]
        .as_str()
        .expect("a token")
        .to_owned();
    app.delete(&path, Some(&fresh))
        .await
        .assert_status(StatusCode::NO_CONTENT);
}

async fn an_admin_needs_a_recent_authentication_to_end_someones_sessions(app: TestApp) {
    app.register("admin").await;
    app.set_role("admin", "admin").await;
    let admin = token_of(&app.login_user("admin").await);
    let target = app.register("target").await;
    app.clock.advance(STALE);
    let path = "/api/admin/users/target/sessions";
    assert_step_up_required(&app.delete(path, Some(&admin)).await, "admin revoke");
    assert_eq!(
        app.get("/api/articles/feed", Some(&target)).await.status,
        StatusCode::OK
    );
    let fresh = step_up(&app, &admin, PASSWORD).await.body["user"]["token"]
        .as_str()
        .expect("a token")
        .to_owned();
    app.delete(path, Some(&fresh))
        .await
        .assert_status(StatusCode::NO_CONTENT);
}

engine_tests!(
    credential_changes_need_a_recent_authentication,
    a_wrong_step_up_password_changes_nothing_and_spends_the_login_budget,
    guessers_elsewhere_cannot_stop_the_owner_stepping_up,
    ending_another_session_needs_a_recent_authentication,
    an_admin_needs_a_recent_authentication_to_end_someones_sessions,
);
