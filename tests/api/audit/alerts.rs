//! Alerts (asvs.md 47, attacks.md §11): repeated failed logins raise an alert that reaches a
//! webhook (a local receiver on 127.0.0.1), retried when the receiver fails, and a dead
//! webhook never slows a request down; repeated server errors raise one alert per window.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use reqwest::StatusCode as ClientStatus;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::common::{Engine, TestApp, engine_tests};

/// A webhook receiver that refuses the first `failures` posts with a 503, then accepts.
pub(crate) async fn receiver(failures: usize) -> (String, mpsc::UnboundedReceiver<Value>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let seen = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/hook",
            post(
                move |State((tx, seen)): State<(
                    mpsc::UnboundedSender<Value>,
                    Arc<AtomicUsize>,
                )>,
                      axum::Json(alert): axum::Json<Value>| async move {
                    if seen.fetch_add(1, Ordering::SeqCst) < failures {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let _ = tx.send(alert);
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .with_state((tx, seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{address}/hook"), rx)
}

async fn wrong_login(app: &TestApp, email: &str) {
    let reply = app.login(email, "not the password 1").await;
    assert_eq!(reply.status, reqwest::StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failed_logins_alert_the_webhook_with_retries() {
    let (url, mut alerts) = receiver(2).await;
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        &[
            ("AERIE_ALERT_WEBHOOK", url.as_str()),
            ("AERIE_ALERT_FAILED_LOGINS", "3"),
        ],
    )
    .await;
    app.register("erin").await;
    wrong_login(&app, "erin@example.com").await;
    wrong_login(&app, "erin@example.com").await;
    let quiet = tokio::time::timeout(Duration::from_millis(300), alerts.recv()).await;
    assert!(quiet.is_err(), "no alert below the threshold");
    wrong_login(&app, "erin@example.com").await;
    let mut rules = Vec::new();
    for _ in 0..2 {
        let alert = tokio::time::timeout(Duration::from_secs(15), alerts.recv())
            .await
            .expect("an alert arrives despite two refused posts")
            .expect("alert");
        assert_eq!(alert["severity"], "warning");
        assert!(alert["seq"].as_i64().is_some());
        assert!(
            !alert.to_string().contains("erin@example.com"),
            "no email in alerts"
        );
        rules.push(alert["rule"].as_str().unwrap_or_default().to_owned());
    }
    rules.sort();
    assert_eq!(rules, ["failed_logins_account", "failed_logins_ip"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_outside_the_window_do_not_alert() {
    let (url, mut alerts) = receiver(0).await;
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        &[
            ("AERIE_ALERT_WEBHOOK", url.as_str()),
            ("AERIE_ALERT_FAILED_LOGINS", "3"),
            ("AERIE_ALERT_FAILED_LOGIN_WINDOW_SECS", "60"),
        ],
    )
    .await;
    wrong_login(&app, "frank@example.com").await;
    wrong_login(&app, "frank@example.com").await;
    app.clock.advance(Duration::from_secs(61));
    wrong_login(&app, "frank@example.com").await;
    let quiet = tokio::time::timeout(Duration::from_millis(500), alerts.recv()).await;
    assert!(
        quiet.is_err(),
        "failures a minute apart stay below the threshold"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_webhook_never_slows_requests() {
    // A port that was bound and released: nothing listens there.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}/hook", listener.local_addr().expect("address"))
    };
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        &[
            ("AERIE_ALERT_WEBHOOK", dead.as_str()),
            ("AERIE_ALERT_FAILED_LOGINS", "1"),
        ],
    )
    .await;
    let started = Instant::now();
    for _ in 0..5 {
        wrong_login(&app, "gina@example.com").await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "requests waited for the webhook: {:?}",
        started.elapsed()
    );
}

/// Asserts that no alert arrives within `wait`.
async fn assert_quiet(alerts: &mut mpsc::UnboundedReceiver<Value>, wait: Duration, why: &str) {
    let quiet = tokio::time::timeout(wait, alerts.recv()).await;
    assert!(quiet.is_err(), "{why}: {quiet:?}");
}

async fn next_alert(alerts: &mut mpsc::UnboundedReceiver<Value>, why: &str) -> Value {
    tokio::time::timeout(Duration::from_secs(10), alerts.recv())
        .await
        .unwrap_or_else(|_| panic!("{why}"))
        .expect("receiver open")
}

async fn server_errors(app: &TestApp, n: usize) {
    for _ in 0..n {
        let reply = app.get("/api/tags", None).await;
        assert_eq!(reply.status, ClientStatus::INTERNAL_SERVER_ERROR);
    }
}

async fn repeated_server_errors_raise_one_alert_per_window(engine: Engine) {
    let (url, mut alerts) = receiver(0).await;
    let app = TestApp::spawn_with(
        engine,
        &[
            ("AERIE_ALERT_WEBHOOK", url.as_str()),
            ("AERIE_ALERT_5XX_THRESHOLD", "3"),
            ("AERIE_ALERT_5XX_WINDOW_SECS", "60"),
        ],
    )
    .await;
    // A table the tag list reads disappears: every call is now a real 500.
    app.execute_sql("DROP TABLE tag_counts").await;
    server_errors(&app, 2).await;
    assert_quiet(
        &mut alerts,
        Duration::from_millis(300),
        "below the threshold",
    )
    .await;
    server_errors(&app, 1).await;
    let alert = next_alert(&mut alerts, "an alert arrives").await;
    assert_eq!(alert["rule"], "repeated_5xx");
    assert_eq!(alert["severity"], "critical");
    let message = alert["message"].as_str().unwrap_or_default();
    assert!(message.contains("500 on GET /api/tags"), "{message}");
    server_errors(&app, 6).await;
    assert_quiet(
        &mut alerts,
        Duration::from_millis(500),
        "one alert per window, not one per error",
    )
    .await;
    app.clock.advance(Duration::from_secs(61));
    server_errors(&app, 3).await;
    let again = next_alert(&mut alerts, "the next window alerts again").await;
    assert_eq!(again["rule"], "repeated_5xx");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_answers_and_client_errors_are_not_server_errors() {
    let (url, mut alerts) = receiver(0).await;
    let mut app = TestApp::spawn_with(
        Engine::Sqlite,
        &[
            ("AERIE_ALERT_WEBHOOK", url.as_str()),
            ("AERIE_ALERT_5XX_THRESHOLD", "2"),
            ("AERIE_SHUTDOWN_DELAY_SECS", "60"),
        ],
    )
    .await;
    for _ in 0..5 {
        assert_eq!(
            app.get("/api/articles/missing", None).await.status,
            ClientStatus::NOT_FOUND
        );
    }
    app.begin_shutdown();
    let mut unready = 0;
    for _ in 0..100 {
        if app.get("/readyz", None).await.status == ClientStatus::SERVICE_UNAVAILABLE {
            unready += 1;
            if unready == 5 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(unready, 5, "readiness never failed");
    assert_quiet(
        &mut alerts,
        Duration::from_millis(500),
        "a draining server's 503s are by design",
    )
    .await;
}

/// A failed login for `email` that appears to come from `ip` (through the trusted proxy).
async fn wrong_login_from(app: &TestApp, email: &str, ip: &str) {
    app.login_from(email, "not the password 1", ip)
        .await
        .assert_status(reqwest::StatusCode::UNAUTHORIZED);
}

/// Issue 22.3: a full counter map used to be cleared, so a spray of one-try addresses between
/// a victim's ninth and tenth failures erased the count and no alert came. Now the spray
/// evicts its own one-try counters, is itself reported, and the tenth failure still alerts.
async fn a_spray_larger_than_the_counters_cannot_flush_a_victims_failed_logins(engine: Engine) {
    let (url, mut alerts) = receiver(0).await;
    let app = TestApp::spawn_with(
        engine,
        &[
            ("AERIE_ALERT_WEBHOOK", url.as_str()),
            ("AERIE_ALERT_FAILED_LOGINS", "10"),
            ("AERIE_ALERT_FAILED_LOGIN_WINDOW_SECS", "300"),
            ("AERIE_ALERT_MAX_TRACKED", "16"),
            ("AERIE_TRUSTED_PROXIES", "127.0.0.1/32"),
        ],
    )
    .await;
    app.register("victim").await;
    for n in 1..=9 {
        wrong_login_from(&app, "victim@example.com", &format!("203.0.113.{n}")).await;
    }
    for n in 0..60 {
        app.clock.advance(Duration::from_secs(1));
        let ip = format!("198.51.100.{n}");
        wrong_login_from(&app, &format!("nobody{n}@example.com"), &ip).await;
    }
    let spray = next_alert(&mut alerts, "the spray itself is reported").await;
    assert_eq!(spray["rule"], "login_spray_detected");
    assert_quiet(
        &mut alerts,
        Duration::from_millis(300),
        "one spray report per window, and the victim is still below the threshold",
    )
    .await;
    wrong_login_from(&app, "victim@example.com", "203.0.113.10").await;
    let alert = next_alert(&mut alerts, "the tenth failure alerts despite the spray").await;
    assert_eq!(alert["rule"], "failed_logins_account");
}

engine_tests!(
    repeated_server_errors_raise_one_alert_per_window,
    a_spray_larger_than_the_counters_cannot_flush_a_victims_failed_logins,
);
