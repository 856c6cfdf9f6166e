//! Readiness (issue 7 §5): `/readyz` answers 503 once shutdown begins, while the server keeps
//! serving (a load balancer takes it out of rotation before the listener closes) and
//! requests already under way still complete; and 503 when the database does not answer.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{
    self, Engine, HalfSent, TestApp, engine_tests, start_registration_at, until_the_listener_closes,
};

/// [`start_registration_at`] on `app`.
async fn start_registration(app: &TestApp, name: &str) -> HalfSent {
    start_registration_at(app.address.trim_start_matches("http://"), name).await
}

/// Polls `/readyz` until it answers `want` (at most 10 s).
async fn readyz_until(app: &TestApp, want: StatusCode) -> common::Reply {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = app.get("/readyz", None).await;
        if reply.status == want || Instant::now() > deadline {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn readiness_fails_during_the_shutdown_delay_while_requests_complete(engine: Engine) {
    let mut app = TestApp::spawn_with(engine, &[("AERIE_SHUTDOWN_DELAY_SECS", "60")]).await;
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body, json!({"status": "ready", "database": "ok"}));
    let in_flight = start_registration(&app, "inflight").await;

    app.begin_shutdown();
    let draining = readyz_until(&app, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(draining.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        draining.body,
        json!({"status": "shutting_down", "database": "ok"})
    );
    assert_eq!(
        app.get("/healthz", None).await.status,
        StatusCode::OK,
        "still alive"
    );
    assert_eq!(
        app.get("/api/tags", None).await.status,
        StatusCode::OK,
        "still serving"
    );
    assert_eq!(
        in_flight.finish().await,
        201,
        "the request under way completes"
    );
    let fresh = TestApp::spawn_with(engine, &[]).await;
    assert_eq!(
        fresh.get("/readyz", None).await.status,
        StatusCode::OK,
        "servers do not share the flag"
    );
}

async fn after_the_delay_the_listener_closes_but_requests_under_way_complete(engine: Engine) {
    let mut app = TestApp::spawn(engine).await;
    let in_flight = start_registration(&app, "drained").await;
    app.begin_shutdown();
    let address = app.address.trim_start_matches("http://").to_owned();
    until_the_listener_closes(&address, Duration::from_secs(10)).await;
    assert_eq!(in_flight.finish().await, 201, "drained, not cut off");
}

/// PostgreSQL refusing connections to the server's database is "unreachable" for real; the
/// probe answers 503 within its 2 s timeout, and 200 again once the database is back.
/// (An embedded SQLite file has no such state short of a broken disk.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_while_the_database_refuses_connections() {
    use sqlx::Connection;
    let Some(app) = TestApp::spawn_postgres().await else {
        return;
    };
    let base = std::env::var("AERIE_TEST_POSTGRES_URL").expect("set");
    let (_, database) = app.database_url.rsplit_once('/').expect("database name");
    let mut admin = sqlx::PgConnection::connect(&base).await.expect("connect");
    let run = |sql: String| sqlx::query(sqlx::AssertSqlSafe(sql));
    assert_eq!(app.get("/readyz", None).await.status, StatusCode::OK);
    run(format!("ALTER DATABASE {database} ALLOW_CONNECTIONS false"))
        .execute(&mut admin)
        .await
        .expect("refuse connections");
    run(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'"
    ))
    .execute(&mut admin)
    .await
    .expect("end the server's connections");
    let started = Instant::now();
    let down = readyz_until(&app, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        down.body,
        json!({"status": "unavailable", "database": "unreachable"})
    );
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "the probe hung: {:?}",
        started.elapsed()
    );
    run(format!("ALTER DATABASE {database} ALLOW_CONNECTIONS true"))
        .execute(&mut admin)
        .await
        .expect("accept connections again");
    assert_eq!(
        readyz_until(&app, StatusCode::OK).await.status,
        StatusCode::OK,
        "ready again"
    );
}

engine_tests!(
    readiness_fails_during_the_shutdown_delay_while_requests_complete,
    after_the_delay_the_listener_closes_but_requests_under_way_complete,
);
