//! Rate limiting and client-IP resolution (attacks.md §3 A1–A3, §8) and request limits (§9),
//! black-box. All requests come from 127.0.0.1; "other clients" are simulated through a
//! trusted proxy on 127.0.0.1 and `X-Forwarded-For`. The server's clock is moved instead of
//! sleeping for a bucket to refill.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{self, Engine, Reply, TestApp};

const LOGIN: &str = "/api/users/login";

async fn wrong_login(app: &TestApp, headers: &[(&str, &str)]) -> Reply {
    app.login_with("victim@example.com", "not the password 123", headers)
        .await
}

#[track_caller]
fn assert_limited(reply: &Reply, policy: &str, what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{what}: {}",
        reply.body
    );
    let retry_after = reply
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok());
    assert!(
        retry_after
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|s| s >= 1),
        "{what}: integer Retry-After, got {retry_after:?}"
    );
    // Read as "requests are too many; try again in N s", N the `Retry-After`.
    let wait = retry_after.unwrap_or_default();
    assert_eq!(
        reply.body,
        json!({"errors": {"requests": [format!("are too many; try again in {wait} s")]}}),
        "{what}"
    );
    let policy_header = reply
        .headers
        .get("ratelimit-policy")
        .and_then(|v| v.to_str().ok());
    assert!(
        policy_header.is_some_and(|v| v.starts_with(&format!("\"{policy}\";q="))),
        "{what}: RateLimit-Policy names {policy}, got {policy_header:?}"
    );
    let state = reply.headers.get("ratelimit").and_then(|v| v.to_str().ok());
    assert!(
        state.is_some_and(|v| v.starts_with(&format!("\"{policy}\";r=0;t="))),
        "{what}: RateLimit, got {state:?}"
    );
}

fn retry_after(reply: &Reply) -> u64 {
    reply
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After")
}

#[tokio::test]
async fn login_brute_force_gets_429_and_retry_after_is_honest() {
    let app = TestApp::spawn_with(Engine::Sqlite, &[("AERIE_RATE_LIMIT_LOGIN_IP", "3/30")]).await;
    app.register("victim").await;
    for attempt in 1..=3 {
        let reply = wrong_login(&app, &[]).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
        assert_eq!(
            reply
                .headers
                .get("ratelimit-policy")
                .and_then(|v| v.to_str().ok()),
            Some("\"login-ip\";q=3;w=30"),
            "every answer on a limited route names its policy"
        );
        let state = reply
            .headers
            .get("ratelimit")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            state.starts_with(&format!("\"login-ip\";r={};t=", 3 - attempt)),
            "{state}"
        );
    }
    let refused = wrong_login(&app, &[]).await;
    assert_limited(&refused, "login-ip", "fourth attempt");
    assert_eq!(retry_after(&refused), 10);
    // Even the right password waits: the bucket is the caller's, not the password's.
    let right = app
        .login_with("victim@example.com", common::PASSWORD, &[])
        .await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS);
    // Early is still refused, and does not extend the wait; the 1.5 s left are announced as
    // 2, since a client that waits exactly Retry-After must find budget.
    app.clock.advance(Duration::from_millis(8_500));
    let early = wrong_login(&app, &[]).await;
    assert_limited(&early, "login-ip", "before Retry-After");
    assert_eq!(retry_after(&early), 2, "rounded up, never down");
    app.clock.advance(Duration::from_millis(1_500));
    let right = app
        .login_with("victim@example.com", common::PASSWORD, &[])
        .await;
    assert_eq!(
        right.status,
        StatusCode::OK,
        "after Retry-After: {}",
        right.body
    );
}

#[tokio::test]
async fn spoofed_forwarded_for_shares_the_bucket() {
    // No trusted proxies: every forwarding header is the client's own invention.
    let app = TestApp::spawn_with(Engine::Sqlite, &[("AERIE_RATE_LIMIT_LOGIN_IP", "2/60")]).await;
    for _ in 0..2 {
        assert_eq!(
            wrong_login(&app, &[]).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let spoofs: &[&[(&str, &str)]] = &[
        &[("X-Forwarded-For", "1.2.3.4")],
        &[("X-Forwarded-For", "5.6.7.8")],
        &[("X-Forwarded-For", "127.0.0.1")],
        &[("X-Forwarded-For", "1.1.1.1, 127.0.0.1")],
        &[
            ("X-Forwarded-For", "9.9.9.9"),
            ("X-Forwarded-For", "8.8.8.8"),
        ],
        &[("X-Real-IP", "1.2.3.4")],
        &[("X-Client-IP", "1.2.3.4")],
        &[("X-Originating-IP", "1.2.3.4")],
        &[("X-Remote-IP", "1.2.3.4")],
        &[("X-Remote-Addr", "1.2.3.4")],
        &[("X-Host", "1.2.3.4")],
        &[("True-Client-IP", "1.2.3.4")],
        &[("CF-Connecting-IP", "1.2.3.4")],
        &[("Fastly-Client-IP", "1.2.3.4")],
        &[("Forwarded", "for=1.2.3.4")],
        &[("Forwarded", "for=\"[::1]\"")],
    ];
    for spoof in spoofs {
        assert_limited(
            &wrong_login(&app, spoof).await,
            "login-ip",
            &format!("{spoof:?}"),
        );
    }
}

#[tokio::test]
async fn path_variants_of_login_404_or_share_the_bucket() {
    let app = TestApp::spawn_with(Engine::Sqlite, &[("AERIE_RATE_LIMIT_LOGIN_IP", "1/60")]).await;
    assert_eq!(
        wrong_login(&app, &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    for path in [
        "/api/users/login/",
        "/api/users/login?x=1",
        "/api/Users/Login",
        "/API/users/login",
        "/api/users//login",
        "/api/./users/login",
        "/api/users/login%2f",
        "/api/users/login;",
        "/api/users/%6cogin",
    ] {
        let reply = app
            .post(path, None, json!({"user": {"email": "victim@example.com", "password": "not the password 123"}}))
            .await;
        assert!(
            matches!(
                reply.status,
                StatusCode::NOT_FOUND | StatusCode::TOO_MANY_REQUESTS
            ),
            "{path}: {} must not reach the handler with a fresh bucket",
            reply.status
        );
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client() {
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        &[
            ("AERIE_TRUSTED_PROXIES", "127.0.0.1/32"),
            ("AERIE_RATE_LIMIT_LOGIN_IP", "2/60"),
        ],
    )
    .await;
    // The client prepends a different fake hop each time; our proxy appends the real address.
    for fake in ["6.6.6.6", "7.7.7.7"] {
        let xff = format!("{fake}, 198.51.100.7");
        let reply = wrong_login(&app, &[("X-Forwarded-For", &xff)]).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let reply = wrong_login(&app, &[("X-Forwarded-For", "8.8.8.8, 198.51.100.7")]).await;
    assert_limited(&reply, "login-ip", "same real client, new fake hop");
    // A different real client behind the same proxy has its own bucket.
    let other = wrong_login(&app, &[("X-Forwarded-For", "198.51.100.8")]).await;
    assert_eq!(other.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn correct_password_from_another_ip_works_after_one_ip_is_limited() {
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        &[
            ("AERIE_TRUSTED_PROXIES", "127.0.0.1/32"),
            ("AERIE_RATE_LIMIT_LOGIN_IP", "3/300"),
            ("AERIE_RATE_LIMIT_LOGIN_ACCOUNT", "6/600"),
        ],
    )
    .await;
    app.register("victim").await;
    let attacker = [("X-Forwarded-For", "203.0.113.66")];
    for _ in 0..3 {
        assert_eq!(
            wrong_login(&app, &attacker).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_limited(&wrong_login(&app, &attacker).await, "login-ip", "attacker");
    let owner = app
        .login_from("victim@example.com", common::PASSWORD, "198.51.100.7")
        .await;
    assert_eq!(
        owner.status,
        StatusCode::OK,
        "no victim lockout: {}",
        owner.body
    );
}

#[tokio::test]
async fn distributed_guessing_against_one_account_hits_the_account_wall() {
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        &[
            ("AERIE_TRUSTED_PROXIES", "127.0.0.1/32"),
            ("AERIE_RATE_LIMIT_LOGIN_IP", "10/60"),
            ("AERIE_RATE_LIMIT_LOGIN_ACCOUNT", "4/400"),
        ],
    )
    .await;
    app.register("victim").await;
    // Four addresses, four spellings of one account.
    for (ip, email) in [
        ("203.0.113.1", "victim@example.com"),
        ("203.0.113.2", "Victim@Example.com"),
        ("203.0.113.3", " victim@example.com "),
        ("203.0.113.4", "victim+x@example.com"),
    ] {
        let reply = app.login_from(email, "not the password 123", ip).await;
        assert_ne!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{ip} {email}");
    }
    // Each address that has failed now meets the account's wall; a fresh one gets its one
    // guess (it cannot be told from the owner) and then meets it too.
    let again = wrong_login(&app, &[("X-Forwarded-For", "203.0.113.1")]).await;
    assert_limited(&again, "login-account", "an address that already failed");
    assert_eq!(retry_after(&again), 100);
    let fresh = wrong_login(&app, &[("X-Forwarded-For", "203.0.113.5")]).await;
    assert_eq!(fresh.status, StatusCode::UNAUTHORIZED);
    let fresh_again = wrong_login(&app, &[("X-Forwarded-For", "203.0.113.5")]).await;
    assert_limited(
        &fresh_again,
        "login-account",
        "the fresh address's second guess",
    );
    // The owner is not waiting for the wall: their address has no failure.
    let owner = app
        .login_from("victim@example.com", common::PASSWORD, "198.51.100.7")
        .await;
    owner.assert_status(StatusCode::OK);
}

#[tokio::test]
async fn password_spraying_from_one_ip_hits_the_ip_wall() {
    let app = TestApp::spawn_with(Engine::Sqlite, &[("AERIE_RATE_LIMIT_LOGIN_IP", "5/60")]).await;
    for n in 0..5 {
        let reply = app
            .login_with(&format!("user{n}@example.com"), "Summer2026!", &[])
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let reply = app
        .login_with("user5@example.com", "Summer2026!", &[])
        .await;
    assert_limited(&reply, "login-ip", "sixth account");
}

#[tokio::test]
async fn signup_flood_from_one_ip_is_limited() {
    let app = TestApp::spawn_with(Engine::Sqlite, &[("AERIE_RATE_LIMIT_REGISTER", "2/3600")]).await;
    app.register("first").await;
    app.register("second").await;
    let reply = app
        .post("/api/users", None, json!({"user": {"username": "third", "email": "third@example.com", "password": common::PASSWORD}}))
        .await;
    assert_limited(&reply, "register", "third signup");
}

#[tokio::test]
async fn refresh_flood_from_one_ip_is_limited() {
    let app = TestApp::spawn_with(Engine::Sqlite, &[("AERIE_RATE_LIMIT_REFRESH", "3/60")]).await;
    let refresh = |token: String| {
        let app = &app;
        async move {
            app.post("/api/auth/refresh", None, json!({"refreshToken": token}))
                .await
        }
    };
    for _ in 0..3 {
        let reply = refresh(common::random_refresh_token()).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    }
    let reply = refresh(common::random_refresh_token()).await;
    assert_limited(&reply, "refresh", "fourth guess");
    let real = app.register_user("bob").await;
    let reply = refresh(common::refresh_token_of(&real)).await;
    assert_limited(&reply, "refresh", "a real token from the same address");
    app.clock.advance(Duration::from_secs(20));
    let reply = refresh(common::refresh_token_of(&real)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn write_flood_from_one_account_is_limited_per_user() {
    let app = TestApp::spawn_with(Engine::Sqlite, &[("AERIE_RATE_LIMIT_WRITES", "2/60")]).await;
    let token = app.register("writer").await;
    app.create_article(&token, "One", &[]).await;
    app.create_article(&token, "Two", &[]).await;
    let reply = app
        .post(
            "/api/articles",
            Some(&token),
            json!({"article": {"title": "Three", "description": "d", "body": "b"}}),
        )
        .await;
    assert_limited(&reply, "writes", "third write");
    assert_eq!(
        app.get("/api/user", Some(&token)).await.status,
        StatusCode::OK,
        "reads are not writes"
    );
    let other = app.register("someone").await;
    app.create_article(&other, "Theirs", &[]).await;
}

#[tokio::test]
async fn global_limit_covers_every_route() {
    let app = TestApp::spawn_with(Engine::Sqlite, &[("AERIE_RATE_LIMIT_GLOBAL", "5/60")]).await;
    for _ in 0..5 {
        assert_eq!(app.get("/api/tags", None).await.status, StatusCode::OK);
    }
    assert_limited(&app.get("/api/tags", None).await, "global", "sixth request");
    assert_limited(
        &app.get("/api/nowhere", None).await,
        "global",
        "unknown route",
    );
    app.clock.advance(Duration::from_secs(12));
    assert_eq!(app.get("/api/tags", None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn allowlisted_internal_callers_skip_limits() {
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        &[
            ("AERIE_RATE_LIMIT_ALLOWLIST", "127.0.0.0/8"),
            ("AERIE_RATE_LIMIT_LOGIN_IP", "1/60"),
            ("AERIE_RATE_LIMIT_GLOBAL", "1/60"),
            // Login's own address rules (failures per address and per /48) skip them too.
            ("AERIE_RATE_LIMIT_LOGIN_FAIL_IP", "1/60"),
        ],
    )
    .await;
    for _ in 0..5 {
        assert_eq!(
            wrong_login(&app, &[]).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn oversized_content_length_is_refused_before_the_body_is_sent() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn(Engine::Sqlite).await;
    let address = app.host_port();
    let mut stream = app.connect_raw().await;
    // Announce 100 MB, send none of it: the answer must come anyway.
    let head = format!(
        "POST {LOGIN} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("head sent");
    let mut buffer = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await;
    let n = read
        .expect("answered without waiting for the body")
        .expect("read");
    let text = String::from_utf8_lossy(&buffer[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
}
