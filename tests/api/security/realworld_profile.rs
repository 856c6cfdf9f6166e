//! The `realworld` client profile (issue 21): stock RealWorld front ends keep the one token
//! from login and never refresh. Their token must last through a working day while it is
//! used, yet a forgotten session must still end after its idle timeout (checked on every use,
//! shared between instances through the database), its absolute lifetime must still hold, and
//! logout, logout-all and an administrator's disable must still stop it at once.

use std::time::Duration;

use aerie::clock::Clock as _;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Engine, TestApp, assert_unauthorized, engine_tests, token_of};

const MINUTE: Duration = Duration::from_secs(60);
/// The idle timeout these tests configure.
const IDLE: Duration = Duration::from_secs(3600);
/// The absolute session lifetime these tests configure.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Longest wait for another instance to learn what one instance did (a batch of activity,
/// a revocation); both are promised within a couple of seconds, the bound leaves room for a
/// loaded test machine.
const PATIENCE: Duration = Duration::from_secs(10);

const PROFILE: &[(&str, &str)] = &[
    ("AERIE_CLIENT_PROFILE", "realworld"),
    ("AERIE_SESSION_IDLE_TIMEOUT_SECS", "3600"),
    ("AERIE_SESSION_MAX_LIFETIME_SECS", "86400"),
];

async fn spawn(engine: Engine) -> TestApp {
    TestApp::spawn_with(engine, PROFILE).await
}

fn article(title: &str) -> Value {
    json!({"article": {"title": title, "description": "d", "body": "b", "tagList": []}})
}

/// A use of the token as a RealWorld front end makes them: read the user, then write.
async fn used(app: &TestApp, token: &str, title: &str) -> (StatusCode, StatusCode) {
    let read = app.get("/api/user", Some(token)).await.status;
    let write = app
        .post("/api/articles", Some(token), article(title))
        .await
        .status;
    (read, write)
}

async fn a_realworld_token_outlives_fifteen_minutes_while_in_use(engine: Engine) {
    let app = spawn(engine).await;
    let token = app.register("reader").await;
    app.clock.advance(16 * MINUTE);
    assert_eq!(
        used(&app, &token, "After sixteen minutes").await,
        (StatusCode::OK, StatusCode::CREATED),
        "the login token, 16 minutes on"
    );
    // A working day of use, each pause shorter than the idle timeout.
    for hour in 1..=8 {
        app.clock.advance(50 * MINUTE);
        assert_eq!(
            used(&app, &token, &format!("Hour {hour}")).await,
            (StatusCode::OK, StatusCode::CREATED),
            "the login token, used every 50 minutes, round {hour}"
        );
    }
    // The standard profile is unchanged: its token is dead after 16 minutes.
    let standard = TestApp::spawn(engine).await;
    let short = standard.register("reader").await;
    standard.clock.advance(16 * MINUTE);
    assert_unauthorized(
        &standard.get("/api/user", Some(&short)).await,
        "standard profile, 16 minutes on",
    );
}

async fn a_session_idle_longer_than_the_timeout_is_refused(engine: Engine) {
    let app = spawn(engine).await;
    let token = app.register("idler").await;
    app.clock.advance(IDLE - MINUTE);
    assert_eq!(
        app.get("/api/user", Some(&token)).await.status,
        StatusCode::OK
    );
    // Counted from the last use, not from login: 118 minutes after login, 59 after use.
    app.clock.advance(IDLE - MINUTE);
    assert_eq!(
        app.get("/api/articles/feed", Some(&token)).await.status,
        StatusCode::OK,
        "59 minutes after the last use"
    );
    app.clock.advance(IDLE + MINUTE);
    for path in ["/api/user", "/api/articles/feed"] {
        assert_unauthorized(
            &app.get(path, Some(&token)).await,
            &format!("{path}, 61 minutes idle"),
        );
    }
    // Idle is over for good: coming back does not revive it.
    app.clock.advance(MINUTE);
    assert_unauthorized(
        &app.get("/api/user", Some(&token)).await,
        "idle session, later",
    );
    // A fresh login works, with a token of its own.
    let again = token_of(&app.login_user("idler").await);
    assert_eq!(
        app.get("/api/user", Some(&again)).await.status,
        StatusCode::OK
    );
}

async fn a_realworld_token_ends_with_its_session(engine: Engine) {
    let app = spawn(engine).await;
    let token = app.register("tireless").await;
    let mut elapsed = Duration::ZERO;
    while elapsed + 50 * MINUTE < MAX_LIFETIME {
        app.clock.advance(50 * MINUTE);
        elapsed += 50 * MINUTE;
        assert_eq!(
            app.get("/api/user", Some(&token)).await.status,
            StatusCode::OK,
            "{} minutes after login",
            elapsed.as_secs() / 60
        );
    }
    app.clock.advance(50 * MINUTE);
    assert_unauthorized(
        &app.get("/api/user", Some(&token)).await,
        "past the session's absolute lifetime, however active",
    );
}

async fn revocation_stays_instant_under_the_realworld_profile(engine: Engine) {
    let app = spawn(engine).await;
    // Logout.
    let token = app.register("bob").await;
    app.clock.advance(20 * MINUTE);
    app.post("/api/auth/logout", Some(&token), json!({}))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert_unauthorized(&app.get("/api/user", Some(&token)).await, "after logout");
    // Logout-all ends the other sessions too.
    let phone = token_of(&app.login_user("bob").await);
    let laptop = token_of(&app.login_user("bob").await);
    app.clock.advance(20 * MINUTE);
    app.post("/api/auth/logout-all", Some(&laptop), json!({}))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    for (token, case) in [(&phone, "phone"), (&laptop, "laptop")] {
        assert_unauthorized(
            &app.get("/api/user", Some(token)).await,
            &format!("{case} after logout-all"),
        );
    }
    // An administrator disabling the account.
    app.register("boss").await;
    app.set_role("boss", "admin").await;
    let boss = token_of(&app.login_user("boss").await);
    let victim = token_of(&app.login_user("bob").await);
    app.clock.advance(20 * MINUTE);
    assert_eq!(
        app.get("/api/user", Some(&victim)).await.status,
        StatusCode::OK
    );
    app.post("/api/admin/users/bob/disable", Some(&boss), json!({}))
        .await
        .assert_status(StatusCode::OK);
    assert_unauthorized(
        &app.post("/api/articles", Some(&victim), article("Too late"))
            .await,
        "after the account was disabled",
    );
}

/// Asks `path` on `app` with `token` until it answers `status`, for at most [`PATIENCE`]:
/// what another instance did reaches this one through the database.
async fn answers_soon(app: &TestApp, path: &str, token: &str, status: StatusCode, case: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let reply = app.get(path, Some(token)).await;
        if reply.status == status {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{case}: still {} {}",
            reply.status,
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two instances of one deployment under the profile, their clocks lined up to the
/// millisecond (each started at its own boot).
async fn two_instances(engine: Engine) -> (TestApp, TestApp) {
    let a = spawn(engine).await;
    let b = a.spawn_sibling_with(PROFILE).await;
    let lag = b.clock.now() - a.clock.now();
    a.clock.advance(Duration::from_millis(
        u64::try_from(lag).expect("B booted after A"),
    ));
    (a, b)
}

/// Time passes for both instances alike.
fn advance_both(a: &TestApp, b: &TestApp, by: Duration) {
    a.clock.advance(by);
    b.clock.advance(by);
}

async fn two_instances_share_activity_and_revocations(engine: Engine) {
    let (a, b) = two_instances(engine).await;
    let advance = |by: Duration| advance_both(&a, &b, by);
    let token = a.register("roamer").await;
    advance(50 * MINUTE);
    assert_eq!(
        a.get("/api/user", Some(&token)).await.status,
        StatusCode::OK
    );
    // 90 minutes after login, 40 after its last use, which was on A: B learns of that use
    // from A's batch in the database and lets the session on.
    advance(40 * MINUTE);
    answers_soon(
        &b,
        "/api/user",
        &token,
        StatusCode::OK,
        "B after a use on A",
    )
    .await;
    // Idle on both: 61 minutes after the last use (on B).
    advance(IDLE + MINUTE);
    for (app, name) in [(&a, "A"), (&b, "B")] {
        assert_unauthorized(
            &app.get("/api/user", Some(&token)).await,
            &format!("{name}, 61 minutes after the last use anywhere"),
        );
    }
    // A logout on B stops the token on A without any idle time passing.
    let fresh = token_of(&a.login_user("roamer").await);
    assert_eq!(
        b.get("/api/user", Some(&fresh)).await.status,
        StatusCode::OK
    );
    b.post("/api/auth/logout", Some(&fresh), json!({}))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    answers_soon(
        &a,
        "/api/user",
        &fresh,
        StatusCode::UNAUTHORIZED,
        "A after a logout on B",
    )
    .await;
}

/// The idle timeout is a bound, not a guess: a session last used on another instance lives
/// on this one to the last millisecond of the timeout (`auth::activity` admits a use exactly
/// the timeout after the last one; one millisecond more is refused, as the tests above show).
async fn a_use_on_another_instance_counts_to_the_last_millisecond_of_the_idle_timeout(
    engine: Engine,
) {
    let (a, b) = two_instances(engine).await;
    let advance = |by: Duration| advance_both(&a, &b, by);
    let token = a.register("punctual").await;
    advance(50 * MINUTE);
    assert_eq!(
        a.get("/api/user", Some(&token)).await.status,
        StatusCode::OK,
        "the last use, on A"
    );
    // Exactly the idle timeout later. B never saw the session, so it asks the database,
    // where A's next batch writes that last use.
    advance(IDLE);
    answers_soon(
        &b,
        "/api/user",
        &token,
        StatusCode::OK,
        "B, exactly the idle timeout after the last use on A",
    )
    .await;
}

engine_tests!(
    a_use_on_another_instance_counts_to_the_last_millisecond_of_the_idle_timeout,
    a_realworld_token_outlives_fifteen_minutes_while_in_use,
    a_session_idle_longer_than_the_timeout_is_refused,
    a_realworld_token_ends_with_its_session,
    revocation_stays_instant_under_the_realworld_profile,
    two_instances_share_activity_and_revocations,
);
