//! Two instances as one server (issue 18 item 1): two Aerie processes on one PostgreSQL
//! database behave as one. What an administrator or the user does on one is honoured by the
//! other within a second (revocations travel by LISTEN/NOTIFY), a refresh token rotated on
//! one is dead on the other, and audit events from both land in one unbroken chain.
//! Shared rate limits and lockouts across instances are in `security/rate_limit_redis.rs`,
//! racing refreshes on two instances in `security/refresh_forks.rs`, and the audit-key check
//! at start in `security/production_defaults.rs`.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{
    PASSWORD, TestApp, aerie, assert_unauthorized, refresh, refresh_token_of, refreshed, rows_of,
    token_of, two_instances,
};

/// Asserts `token` stops working on `instance` within one second.
async fn refused_within_a_second(instance: &TestApp, token: &str, what: &str) {
    let started = Instant::now();
    loop {
        let reply = instance.get("/api/user", Some(token)).await;
        if reply.status == StatusCode::UNAUTHORIZED {
            assert_unauthorized(&reply, what);
            return;
        }
        assert_eq!(reply.status, StatusCode::OK, "{what}: {}", reply.body);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{what}: the other instance still accepts the token after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An administrator on A; the account `name` signed in (its token works on B).
async fn admin_and_user(a: &TestApp, b: &TestApp, name: &str) -> (String, String) {
    a.register("admin").await;
    a.set_role("admin", "admin").await;
    let admin = token_of(&a.login_user("admin").await);
    let user = token_of(&a.register_user(name).await);
    b.get("/api/user", Some(&user))
        .await
        .assert_status(StatusCode::OK);
    (admin, user)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_change_on_one_instance_ends_the_sessions_on_the_other() {
    let Some((a, b)) =
        two_instances("a_role_change_on_one_instance_ends_the_sessions_on_the_other").await
    else {
        return;
    };
    let (admin, bob) = admin_and_user(&a, &b, "bob").await;
    a.put(
        "/api/admin/users/bob/role",
        Some(&admin),
        json!({"role": "editor"}),
    )
    .await
    .assert_status(StatusCode::OK);
    refused_within_a_second(&b, &bob, "token carrying the old role").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_on_one_instance_is_honoured_by_the_other() {
    let Some((a, b)) = two_instances("disabling_on_one_instance_is_honoured_by_the_other").await
    else {
        return;
    };
    let (admin, bob) = admin_and_user(&a, &b, "bob").await;
    a.post("/api/admin/users/bob/disable", Some(&admin), json!({}))
        .await
        .assert_status(StatusCode::OK);
    refused_within_a_second(&b, &bob, "token of a disabled account").await;
    b.login("bob@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_and_logout_all_on_one_instance_reach_the_other() {
    let Some((a, b)) =
        two_instances("a_password_change_and_logout_all_on_one_instance_reach_the_other").await
    else {
        return;
    };
    let carol = a.register_user("carol").await;
    let elsewhere = token_of(&b.login_user("carol").await);
    a.put(
        "/api/user/password",
        Some(&token_of(&carol)),
        json!({"currentPassword": PASSWORD, "newPassword": "a different long passphrase 77"}),
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
    refused_within_a_second(&b, &elsewhere, "other session after a password change").await;

    let dave = a.register_user("dave").await;
    let on_b = b.login_user("dave").await;
    a.post("/api/auth/logout-all", Some(&token_of(&dave)), json!({}))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    refused_within_a_second(&b, &token_of(&on_b), "session after logout-all").await;
    assert_unauthorized(
        &refresh(&b, &refresh_token_of(&on_b)).await,
        "refresh on B after logout-all on A",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_rotated_on_one_instance_is_dead_on_the_other() {
    let Some((a, b)) =
        two_instances("a_refresh_token_rotated_on_one_instance_is_dead_on_the_other").await
    else {
        return;
    };
    let erin = a.register_user("erin").await;
    let rotated = refreshed(&a, &refresh_token_of(&erin)).await;
    // Long after the grace window, the old token is a replay: refused, and the family ends.
    a.clock.advance(Duration::from_secs(60));
    b.clock.advance(Duration::from_secs(60));
    assert_unauthorized(
        &refresh(&b, &refresh_token_of(&erin)).await,
        "rotated refresh token on the other instance",
    );
    assert_unauthorized(
        &refresh(&a, &refresh_token_of(&rotated)).await,
        "the family after the replay",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_events_from_both_instances_form_one_chain() {
    let Some((a, b)) = two_instances("audit_events_from_both_instances_form_one_chain").await
    else {
        return;
    };
    let registrations = (0..20).map(|n| {
        let instance = if n % 2 == 0 { &a } else { &b };
        async move { instance.register(&format!("user{n}")).await }
    });
    futures_util::future::join_all(registrations).await;
    assert_eq!(rows_of(&a, "user_registered").await.len(), 20);
    let verified = aerie(&a, "", &["audit", "verify"], "").await;
    let printed = String::from_utf8_lossy(&verified.stdout);
    assert!(printed.contains("audit chain intact"), "{printed}");
}
