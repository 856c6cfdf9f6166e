//! The shared Redis rate-limit store (attacks.md §8: "several instances", "Redis down"),
//! black-box. Tests against a live Redis run when `AERIE_TEST_REDIS_URL` is set (and say
//! loudly that they were skipped otherwise); each uses `AERIE_TEST_REDIS_PREFIX` plus a random
//! suffix, so runs never share keys. The outage tests need no Redis: they point the server at
//! a port where nothing answers, or where something accepts and then never speaks.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{self, Engine, Relay, Reply, TestApp};

const LOGIN: &str = "/api/users/login";

/// A live Redis for this test: its URL and a prefix no other test or run uses.
fn live_redis(test: &str) -> Option<(String, String)> {
    let Ok(url) = std::env::var("AERIE_TEST_REDIS_URL") else {
        eprintln!("SKIPPED {test}: AERIE_TEST_REDIS_URL is not set; Redis store not tested");
        return None;
    };
    let base = std::env::var("AERIE_TEST_REDIS_PREFIX").unwrap_or_else(|_| "aerie-test:".into());
    Some((url, format!("{base}{}:", uuid::Uuid::new_v4().simple())))
}

async fn spawn_on_redis(url: &str, prefix: &str, settings: &[(&str, &str)]) -> TestApp {
    let mut all = vec![("AERIE_REDIS_URL", url), ("AERIE_REDIS_PREFIX", prefix)];
    all.extend_from_slice(settings);
    TestApp::spawn_with(Engine::Sqlite, &all).await
}

async fn wrong_login(app: &TestApp, email: &str) -> Reply {
    app.post(
        LOGIN,
        None,
        json!({"user": {"email": email, "password": "not the password 123"}}),
    )
    .await
}

async fn redis_connection(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis answers")
}

async fn keys(connection: &mut redis::aio::MultiplexedConnection, prefix: &str) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(connection)
        .await
        .expect("KEYS")
}

async fn delete_keys(url: &str, prefix: &str) {
    let mut connection = redis_connection(url).await;
    for key in keys(&mut connection, prefix).await {
        let _: Result<i64, _> = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut connection)
            .await;
    }
}

/// A port on which nothing listens: bound, then released.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

#[tokio::test]
async fn two_instances_on_one_redis_share_one_login_budget() {
    let Some((url, prefix)) = live_redis("two_instances_on_one_redis_share_one_login_budget")
    else {
        return;
    };
    let settings = [("AERIE_RATE_LIMIT_LOGIN_IP", "4/3600")];
    let first = spawn_on_redis(&url, &prefix, &settings).await;
    let second = spawn_on_redis(&url, &prefix, &settings).await;
    // Guesses split across both instances: on memory stores each would allow 4, so 8 in all.
    for attempt in 0..4 {
        let app = if attempt % 2 == 0 { &first } else { &second };
        let reply = wrong_login(app, "victim@example.com").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
        assert_same_but_seconds(
            reply.header("ratelimit").unwrap_or_default(),
            &format!("\"login-ip\";r={};t={}", 3 - attempt, (attempt + 1) * 900),
        );
    }
    for app in [&first, &second] {
        let reply = wrong_login(app, "victim@example.com").await;
        reply.assert_status(StatusCode::TOO_MANY_REQUESTS);
        assert_same_but_seconds(
            &reply.body.to_string(),
            &json!({"errors": {"requests": ["are too many; try again in 900 s"]}}).to_string(),
        );
        assert_same_but_seconds(reply.header("retry-after").unwrap_or_default(), "900");
    }
    let ready = first.get("/readyz", None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["redis"], "ok");
    delete_keys(&url, &prefix).await;
}

#[tokio::test]
async fn a_concurrent_burst_across_instances_gets_exactly_the_budget() {
    let Some((url, prefix)) =
        live_redis("a_concurrent_burst_across_instances_gets_exactly_the_budget")
    else {
        return;
    };
    let settings = [("AERIE_RATE_LIMIT_LOGIN_IP", "10/3600")];
    let first = spawn_on_redis(&url, &prefix, &settings).await;
    let second = spawn_on_redis(&url, &prefix, &settings).await;
    // 50 guesses at once, half to each instance: a read-then-write race would let more through.
    let mut guesses = tokio::task::JoinSet::new();
    for i in 0..50 {
        let app = if i % 2 == 0 { &first } else { &second };
        let request = app.client.post(app.url(LOGIN)).json(
            &json!({"user": {"email": "victim@example.com", "password": "not the password 123"}}),
        );
        guesses.spawn(async move { request.send().await.map(|r| r.status()) });
    }
    let statuses: Vec<StatusCode> = guesses
        .join_all()
        .await
        .into_iter()
        .map(|sent| sent.expect("answered"))
        .collect();
    let passed = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((passed, refused), (10, 40), "{statuses:?}");
    delete_keys(&url, &prefix).await;
}

#[tokio::test]
async fn headers_are_the_same_from_the_memory_and_redis_stores() {
    let Some((url, prefix)) = live_redis("headers_are_the_same_from_the_memory_and_redis_stores")
    else {
        return;
    };
    let settings = [("AERIE_RATE_LIMIT_LOGIN_IP", "3/3600")];
    let memory = TestApp::spawn_with(Engine::Sqlite, &settings).await;
    let shared = spawn_on_redis(&url, &prefix, &settings).await;
    for attempt in 0..5 {
        let a = wrong_login(&memory, "victim@example.com").await;
        let b = wrong_login(&shared, "victim@example.com").await;
        assert_eq!(a.status, b.status, "attempt {attempt}");
        assert_same_but_seconds(&a.body.to_string(), &b.body.to_string());
        for name in ["ratelimit-policy", "ratelimit", "retry-after"] {
            let values = |reply: &Reply| {
                let values = reply.headers.get_all(name).iter();
                values
                    .map(|v| v.to_str().unwrap_or_default().to_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            assert_same_but_seconds(&values(&a), &values(&b));
        }
    }
    delete_keys(&url, &prefix).await;
}

#[tokio::test]
async fn redis_keys_expire_and_odd_account_names_cannot_collide() {
    let Some((url, prefix)) = live_redis("redis_keys_expire_and_odd_account_names_cannot_collide")
    else {
        return;
    };
    let app = spawn_on_redis(
        &url,
        &prefix,
        &[
            ("AERIE_RATE_LIMIT_LOGIN_ACCOUNT", "2/600"),
            // Real (Redis) time passes between requests: a pair must not refill meanwhile.
            ("AERIE_RATE_LIMIT_LOGIN_PAIR", "5/900"),
            // The harness's loose limits refill in microseconds, so their keys expire before
            // they can be inspected: every failure bucket gets a real window here.
            ("AERIE_RATE_LIMIT_LOGIN_PAIR_SLOW", "10/86400"),
            ("AERIE_RATE_LIMIT_LOGIN_FAIL_IP", "100/3600"),
        ],
    )
    .await;
    for _ in 0..2 {
        assert_eq!(
            wrong_login(&app, "bob@example.com").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        wrong_login(&app, "bob@example.com").await.status,
        StatusCode::TOO_MANY_REQUESTS,
        "bob's account budget is spent"
    );
    // Addresses that are not addresses (a key pattern, a newline, 5 000 characters) are a 422
    // before any key is made; odd but valid ones are each their own account key: none may
    // land in bob's bucket, in another policy's keys, or outside the prefix.
    let long = format!("bob@example.com{}", "x".repeat(5000));
    for email in [
        "bob@example.com:*",
        "bob@example.com\nx",
        "*",
        long.as_str(),
    ] {
        let reply = wrong_login(&app, email).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{email:.40}: {}",
            reply.body
        );
    }
    let odd = [
        "bob:*@example.com",
        "*@example.com",
        "bob@example.com.x",
        "rl:login-ip:0@example.com",
    ];
    for email in odd {
        let reply = wrong_login(&app, email).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{email:.40}: {}",
            reply.body
        );
    }
    let mut connection = redis_connection(&url).await;
    let found = keys(&mut connection, &prefix).await;
    let accounts: Vec<&String> = found
        .iter()
        .filter(|k| k.starts_with(&format!("{prefix}rl:login-account:")))
        .collect();
    assert_eq!(accounts.len(), 1 + odd.len(), "{found:?}");
    for key in &found {
        let tail = key.rsplit(':').next().unwrap_or_default();
        assert_eq!(tail.len(), 64, "{key}");
        assert!(tail.bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut connection)
            .await
            .expect("PTTL");
        // Never immortal; never longer than the bucket's full-burst time (the window).
        let window_ms = [
            (":login-account:", 600_000),
            (":login-pair:", 900_000),
            (":login-pair-slow:", 86_400_000),
            (":login-fail-ip:", 3_600_000),
        ]
        .iter()
        .find(|(policy, _)| key.contains(policy))
        .map_or(60_000, |(_, window)| *window);
        assert!(ttl > 0 && ttl <= window_ms, "{key}: PTTL {ttl}");
    }
    delete_keys(&url, &prefix).await;
}

#[tokio::test]
async fn unreachable_redis_fails_open_to_this_instances_limits() {
    let url = format!("redis://127.0.0.1:{}", closed_port());
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        &[
            ("AERIE_REDIS_URL", &url),
            ("AERIE_REDIS_FAILURE", "open"),
            ("AERIE_RATE_LIMIT_LOGIN_IP", "3/3600"),
        ],
    )
    .await;
    for attempt in 0..3 {
        let reply = wrong_login(&app, "victim@example.com").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let reply = wrong_login(&app, "victim@example.com").await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the local limiter still holds: {}",
        reply.body
    );
    assert_eq!(reply.header("retry-after"), Some("1200"));
    let ready = app.get("/readyz", None).await;
    assert_eq!(
        ready.status,
        StatusCode::OK,
        "fail-open instances stay in rotation"
    );
    assert_eq!(ready.body["redis"], "unreachable");
}

/// An outage is logged, but not once per request: a line at most every ten seconds (saying
/// how many failures it stands for), so a Redis outage under load cannot flood the logs or
/// the disk they go to. The real binary, for its log lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_is_logged_once_not_once_per_request() {
    let url = format!("redis://127.0.0.1:{}", closed_port());
    let server = common::start_logging_server(&[
        ("AERIE_REDIS_URL", url.as_str()),
        ("AERIE_REDIS_FAILURE", "open"),
    ])
    .await;
    let client = reqwest::Client::new();
    for _ in 0..20 {
        let reply = client
            .get(server.http("/api/tags"))
            .send()
            .await
            .expect("answered");
        assert_eq!(reply.status(), StatusCode::OK, "fail-open serves");
    }
    let lines = server.stop().await;
    let outage: Vec<&String> = lines
        .iter()
        .filter(|line| line.contains("rate-limit store (Redis) unavailable"))
        .collect();
    assert_eq!(outage.len(), 1, "one line for 20 failures: {outage:#?}");
    assert!(
        outage[0].contains(r#""on_failure":"open""#),
        "the line says what the instance does meanwhile: {}",
        outage[0]
    );
}

#[tokio::test]
async fn unreachable_redis_fails_closed_with_503() {
    let url = format!("redis://127.0.0.1:{}", closed_port());
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        &[("AERIE_REDIS_URL", &url), ("AERIE_REDIS_FAILURE", "closed")],
    )
    .await;
    for path in ["/api/tags", "/readyz"] {
        let reply = app.get(path, None).await;
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{path}: {}",
            reply.body
        );
    }
    let reply = wrong_login(&app, "victim@example.com").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        reply.body["errors"],
        json!({"body": ["service unavailable"]})
    );
    assert!(reply.body["requestId"].is_string(), "{}", reply.body);
}

#[tokio::test]
async fn unreachable_redis_with_auth_closed_refuses_only_credential_routes() {
    let url = format!("redis://127.0.0.1:{}", closed_port());
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        &[
            ("AERIE_REDIS_URL", &url),
            ("AERIE_REDIS_FAILURE", "auth-closed"),
        ],
    )
    .await;
    assert_eq!(app.get("/api/tags", None).await.status, StatusCode::OK);
    assert_eq!(app.get("/readyz", None).await.status, StatusCode::OK);
    // Guessing must not get N instances' worth of budget while the shared count is gone.
    let reply = wrong_login(&app, "victim@example.com").await;
    reply.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    let signup = json!({"user": {"username": "newbie", "email": "newbie@example.com", "password": common::PASSWORD}});
    let reply = app.post("/api/users", None, signup).await;
    reply.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    let refresh = json!({"refreshToken": common::random_refresh_token()});
    let reply = app.post("/api/auth/refresh", None, refresh).await;
    reply.assert_status(StatusCode::SERVICE_UNAVAILABLE);
}

/// A Redis that accepts connections and never answers (a hung server, a black-holed
/// network): the kernel completes the handshake into the backlog of a listener nobody reads.
#[tokio::test]
async fn a_hung_redis_never_hangs_a_request() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("redis://{}", silent.local_addr().expect("address"));
    for (failure, expected) in [
        ("open", StatusCode::OK),
        ("closed", StatusCode::SERVICE_UNAVAILABLE),
    ] {
        let app = TestApp::spawn_with(
            Engine::Sqlite,
            &[
                ("AERIE_REDIS_URL", &url),
                ("AERIE_REDIS_FAILURE", failure),
                ("AERIE_REDIS_TIMEOUT_MS", "100"),
            ],
        )
        .await;
        // The client gives up after 5 s; each request makes at most a few bounded Redis calls.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        for _ in 0..3 {
            let response = client
                .get(app.url("/api/tags"))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{failure}: no answer while Redis hangs: {e}"));
            assert_eq!(response.status(), expected, "{failure}");
            let body: Value = response.json().await.expect("JSON body");
            if expected.is_server_error() {
                assert_eq!(body["errors"], json!({"body": ["service unavailable"]}));
            }
        }
    }
    drop(silent);
}

#[tokio::test]
async fn the_shared_store_comes_back_after_its_connections_are_cut() {
    let Some((url, prefix)) =
        live_redis("the_shared_store_comes_back_after_its_connections_are_cut")
    else {
        return;
    };
    let (relay, relayed_url) = Relay::for_url(&url, 6379).await;
    let app = spawn_on_redis(
        &relayed_url,
        &prefix,
        &[
            ("AERIE_RATE_LIMIT_LOGIN_IP", "100/3600"),
            // Closed: a request the shared store cannot answer is a visible 503, never a
            // silent fallback to this instance's memory.
            ("AERIE_REDIS_FAILURE", "closed"),
        ],
    )
    .await;
    let first = wrong_login(&app, "victim@example.com").await;
    first.assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(first.header("ratelimit"), Some("\"login-ip\";r=99;t=36"));

    relay.cut_links();
    // The connection manager reconnects on the next command that fails; a request or two may
    // meet the cut connection (503), after which the budget is Redis's again, where it was.
    let mut outage = 0;
    let recovered = loop {
        let reply = wrong_login(&app, "victim@example.com").await;
        if reply.status == StatusCode::UNAUTHORIZED {
            break reply;
        }
        reply.assert_status(StatusCode::SERVICE_UNAVAILABLE);
        outage += 1;
        assert!(outage < 50, "the Redis store never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let remaining = recovered.header("ratelimit").expect("ratelimit header");
    assert_eq!(
        remaining, "\"login-ip\";r=98;t=72",
        "the budget continues in Redis after {outage} refused request(s)"
    );
    assert_eq!(app.get("/readyz", None).await.body["redis"], "ok");
    delete_keys(&url, &prefix).await;
}

/// The login guard's rules on the shared store (issue 14.1): failures are charged and looked
/// at through Redis, so a pair's budget spent on one instance holds on the other, and the
/// owner's correct password from a clean address passes on both while it is spent.
#[tokio::test]
async fn the_lockout_rules_hold_on_the_shared_store() {
    let Some((url, prefix)) = live_redis("the_lockout_rules_hold_on_the_shared_store") else {
        return;
    };
    let settings = [
        ("AERIE_TRUSTED_PROXIES", "127.0.0.1/32"),
        ("AERIE_RATE_LIMIT_LOGIN_PAIR", "3/3600"),
        ("AERIE_RATE_LIMIT_LOGIN_ACCOUNT", "1000/3600"),
    ];
    let first = spawn_on_redis(&url, &prefix, &settings).await;
    let second = first
        .spawn_sibling_with(&[
            ("AERIE_REDIS_URL", url.as_str()),
            ("AERIE_REDIS_PREFIX", prefix.as_str()),
            settings[0],
            settings[1],
            settings[2],
        ])
        .await;
    first.register("victim").await;
    let from = |app: &TestApp, password: &'static str, ip: &'static str| {
        let request = app
            .client
            .post(app.url(LOGIN))
            .header("X-Forwarded-For", ip)
            .json(&json!({"user": {"email": "victim@example.com", "password": password}}));
        async move { common::read(request.send().await.expect("request sent")).await }
    };
    for attempt in 0..3 {
        let app = if attempt % 2 == 0 { &first } else { &second };
        from(app, "not the password 123", "203.0.113.7")
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
    }
    for app in [&first, &second] {
        let refused = from(app, "not the password 123", "203.0.113.7").await;
        refused.assert_status(StatusCode::TOO_MANY_REQUESTS);
        // Redis time, not the test's: a second may pass between the failures and this.
        let retry = refused
            .header("retry-after")
            .and_then(|v| v.parse::<u64>().ok());
        assert!(
            retry.is_some_and(|secs| (1190..=1200).contains(&secs)),
            "{retry:?}"
        );
        from(app, common::PASSWORD, "198.51.100.7")
            .await
            .assert_status(StatusCode::OK);
    }
    delete_keys(&url, &prefix).await;
}

/// Asserts `a` and `b` are the same text, except that a count of seconds (`t=N`, `Retry-After`,
/// "try again in N s") may differ by one: the shared store counts with Redis's own clock, which
/// keeps running while a test's clock stands still, so under load a second can pass between
/// two requests. Every other number (`r=`, the budget left) must match exactly.
#[track_caller]
fn assert_same_but_seconds(a: &str, b: &str) {
    let (a_parts, b_parts) = (numbers_and_text(a), numbers_and_text(b));
    let same = a_parts.len() == b_parts.len()
        && a_parts.iter().zip(&b_parts).all(|(x, y)| match (x, y) {
            (Part::Seconds(x), Part::Seconds(y)) => x.abs_diff(*y) <= 1,
            _ => x == y,
        });
    assert!(same, "{a:?} vs {b:?}");
}

#[derive(PartialEq, Debug)]
enum Part {
    Text(String),
    Number(u64),
    Seconds(u64),
}

/// Splits text into runs of digits and the text between them; a number is seconds when it
/// follows `t=` or "in ", or is the whole text (a `Retry-After` value).
fn numbers_and_text(text: &str) -> Vec<Part> {
    let mut parts: Vec<Part> = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits > 0 {
            let value: u64 = rest[..digits].parse().expect("digits");
            let after_seconds_label = matches!(
                parts.last(),
                Some(Part::Text(t)) if t.ends_with("t=") || t.ends_with("in ")
            );
            let whole = digits == text.len();
            parts.push(if after_seconds_label || whole {
                Part::Seconds(value)
            } else {
                Part::Number(value)
            });
            rest = &rest[digits..];
        } else {
            let text_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            parts.push(Part::Text(rest[..text_len].to_owned()));
            rest = &rest[text_len..];
        }
    }
    parts
}
