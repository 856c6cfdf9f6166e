//! Login keys cannot exhaust memory (issue 22.2): the email is parsed before anything is keyed
//! on it, so a 60 KB "email" is a 422 and never a bucket; every bucket is a fixed-size
//! fingerprint; and a policy keeps a bounded number of buckets, evicting the ones with the
//! most budget left, so a spray of targets neither grows memory nor frees a victim's bucket.
//! Counts are read from the server's own metrics.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{Engine, Reply, TestApp, fresh_metrics_token, read};

const LOGIN: &str = "/api/users/login";

async fn login(app: &TestApp, email: &str, forwarded_for: &str) -> Reply {
    let request = app
        .client
        .post(app.url(LOGIN))
        .header("X-Forwarded-For", forwarded_for)
        .json(&json!({"user": {"email": email, "password": "not the password 123"}}));
    read(request.send().await.expect("sent")).await
}

/// The login-account policy's bucket count, as the metrics endpoint reports it.
async fn tracked_account_buckets(app: &TestApp, token: &str) -> u64 {
    let metrics = app.metrics(token).await;
    metrics.value(
        "aerie_rate_limit_tracked_keys",
        &[("policy", "login-account")],
    ) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_login_emails_are_refused_before_any_bucket_is_made() {
    let token = fresh_metrics_token();
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        &[
            ("AERIE_METRICS_TOKEN", token.as_str()),
            ("AERIE_TRUSTED_PROXIES", "127.0.0.1/32"),
        ],
    )
    .await;
    app.register("anchor").await;
    // One ordinary failed login, so the gauge exists and counts one bucket.
    let ordinary = login(&app, "anchor@example.com", "192.0.2.1").await;
    assert_eq!(ordinary.status, StatusCode::UNAUTHORIZED);
    for n in 0..40u32 {
        let email = format!("{}{n}@example.com", "a".repeat(60_000));
        let reply = login(&app, &email, &format!("198.51.100.{n}")).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            reply.body
        );
        assert!(reply.error_on("email").is_some(), "{}", reply.body);
    }
    for shape in ["no-at-sign", "two@@example.com", "x@nodot", " @example.com"] {
        let reply = login(&app, shape, "192.0.2.2").await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{shape}");
    }
    assert_eq!(
        tracked_account_buckets(&app, &token).await,
        1,
        "refused emails made no login-account bucket"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spray_of_login_targets_is_bounded_and_keeps_the_victims_bucket() {
    let token = fresh_metrics_token();
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        &[
            ("AERIE_METRICS_TOKEN", token.as_str()),
            ("AERIE_TRUSTED_PROXIES", "127.0.0.1/32"),
            ("AERIE_RATE_LIMIT_LOGIN_ACCOUNT", "5/900"),
            ("AERIE_RATE_LIMIT_MAX_KEYS", "16"),
        ],
    )
    .await;
    app.register("victim").await;
    // Five failures spend the account's budget; 203.0.113.0 failed twice, so its pair is not
    // clean (and ranks above the spray's one-failure pairs when the maps evict).
    for (n, ip) in [
        "203.0.113.0",
        "203.0.113.0",
        "203.0.113.1",
        "203.0.113.2",
        "203.0.113.3",
    ]
    .iter()
    .enumerate()
    {
        let reply = login(&app, "victim@example.com", ip).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "attempt {n}");
    }
    let locked = login(&app, "victim@example.com", "203.0.113.0").await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    for n in 0..120u32 {
        let email = format!("target{n}@example.com");
        let reply = login(&app, &email, &format!("198.51.100.{}", n % 250)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{email}");
    }
    let buckets = tracked_account_buckets(&app, &token).await;
    assert!(
        (14..=16).contains(&buckets),
        "full, less at most the eighth its last eviction made: at most \
         AERIE_RATE_LIMIT_MAX_KEYS buckets, got {buckets}"
    );
    // 121 accounts through 16 login-account buckets alone make room 105 times or more.
    let evicted = app
        .metrics(&token)
        .await
        .value("aerie_rate_limit_evicted_total", &[]);
    assert!(evicted >= 105.0, "evictions are counted: {evicted}");
    let still_locked = login(&app, "victim@example.com", "203.0.113.0").await;
    assert_eq!(
        still_locked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the spray did not evict the victim's spent bucket"
    );
}
