//! `GET /metrics` (issue 7 §5, attacks.md Z12): absent unless a token is configured, 404 to a
//! missing or wrong token, labelled by route template so random paths cannot blow up the
//! registry (label cardinality attack), and free of secrets and user data. Each server has
//! its own registry, so exact counts hold while tests run in parallel.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{Engine, PASSWORD, Sample, TestApp, engine_tests, fresh_metrics_token};

async fn with_token(engine: Engine, token: &str) -> TestApp {
    TestApp::spawn_with(engine, &[("AERIE_METRICS_TOKEN", token)]).await
}

/// GET `path` with `Authorization: <authorization>` when given; status and body text.
async fn get_text(app: &TestApp, url: &str, authorization: Option<&str>) -> (StatusCode, String) {
    let mut request = app.client.get(url);
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    let response = request.send().await.expect("sent");
    let status = response.status();
    (status, response.text().await.expect("body"))
}

async fn without_a_token_the_metrics_route_does_not_exist(app: TestApp) {
    let (_, not_found) = get_text(&app, &app.url("/no-such-route"), None).await;
    for authorization in [
        None,
        Some("Bearer anything-at-all-that-is-long-enough-000"),
        Some("Token x"),
    ] {
        let (status, body) = get_text(&app, &app.url("/metrics"), authorization).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{authorization:?}");
        assert_eq!(
            body, not_found,
            "indistinguishable from a route that does not exist"
        );
    }
    let post = app.request(Method::POST, "/metrics", None, None).await;
    assert_eq!(
        post.status,
        StatusCode::NOT_FOUND,
        "no 405 revealing the route either"
    );
}

async fn only_the_exact_bearer_token_reads_the_metrics(engine: Engine) {
    let token = fresh_metrics_token();
    let app = with_token(engine, &token).await;
    let (_, not_found) = get_text(&app, &app.url("/no-such-route"), None).await;
    let user = app.register("mona").await;
    let wrong = [
        None,
        Some(format!("Bearer {}", fresh_metrics_token())),
        Some(format!("Bearer {}", &token[..token.len() - 1])),
        Some(format!("Bearer {token}x")),
        Some(format!("bearer {token}")),
        Some(format!("Token {token}")),
        Some(format!("Token {user}")),
        Some(format!("Bearer {user}")),
    ];
    for authorization in &wrong {
        let (status, body) = get_text(&app, &app.url("/metrics"), authorization.as_deref()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{authorization:?}");
        assert_eq!(body, not_found);
    }
    // A body past the body limit changes nothing: the token is checked first, so no 413
    // tells a scraper without it that the route exists.
    let oversized = app
        .client
        .get(app.url("/metrics"))
        .body(vec![b'x'; 128 * 1024])
        .send()
        .await
        .expect("sent");
    assert_eq!(oversized.status(), StatusCode::NOT_FOUND);
    assert_eq!(oversized.text().await.expect("body"), not_found);
    let response = app
        .client
        .get(app.url("/metrics"))
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
}

async fn requests_logins_and_revocations_are_counted_by_route_template(engine: Engine) {
    let token = fresh_metrics_token();
    let app = with_token(engine, &token).await;
    let alice = app.register_user("alice").await;
    let access = alice["token"].as_str().expect("token");
    let slug = app.create_article(access, "Counting things", &["m"]).await;
    for _ in 0..2 {
        assert_eq!(
            app.get(&format!("/api/articles/{slug}"), None).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(
        app.get("/api/articles/no-such-article", None).await.status,
        StatusCode::NOT_FOUND
    );
    for _ in 0..2 {
        let reply = app.login("alice@example.com", "not the password 1").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let session = app.login_user("alice").await;
    let logout = app
        .post("/api/auth/logout", session["token"].as_str(), json!({}))
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);

    let metrics = app.metrics(&token).await;
    let requests = "aerie_http_requests_total";
    let article = [("route", "/api/articles/{slug}"), ("method", "GET")];
    assert_eq!(
        metrics.value(requests, &[article[0], article[1], ("status", "200")]),
        2.0,
        "{metrics}"
    );
    assert_eq!(
        metrics.value(requests, &[article[0], article[1], ("status", "404")]),
        1.0
    );
    assert_eq!(
        metrics.value(
            requests,
            &[
                ("route", "/api/users/login"),
                ("method", "POST"),
                ("status", "401")
            ]
        ),
        2.0
    );
    assert!(
        !metrics.text().contains(&slug),
        "a concrete slug became a label"
    );
    assert!(!metrics.text().contains("no-such-article"));
    let buckets = "aerie_http_request_duration_seconds_bucket";
    assert_eq!(
        metrics.value(buckets, &[article[0], article[1], ("le", "+Inf")]),
        3.0
    );
    assert_eq!(
        metrics.value("aerie_http_request_duration_seconds_count", &article),
        3.0
    );
    assert!(
        metrics
            .text()
            .contains("# TYPE aerie_http_request_duration_seconds histogram")
    );
    assert!(
        metrics
            .samples()
            .iter()
            .any(|s| s.label("le") == Some("0.005")),
        "API-sized buckets"
    );
    assert_eq!(
        metrics.value("aerie_logins_total", &[("result", "failure")]),
        2.0
    );
    assert_eq!(
        metrics.value("aerie_logins_total", &[("result", "success")]),
        1.0
    );
    assert_eq!(
        metrics.value("aerie_audit_events_total", &[("type", "user_registered")]),
        1.0
    );
    assert_eq!(
        metrics.value("aerie_audit_events_total", &[("type", "login_failed")]),
        2.0
    );
    assert_eq!(metrics.value("aerie_sessions_revoked_total", &[]), 1.0);
    assert_eq!(metrics.value("aerie_password_hash_queue_depth", &[]), 0.0);
    assert!(
        metrics.text().contains("aerie_password_hash_in_progress "),
        "{metrics}"
    );
    // One argon2 block (19 MiB) for each hashing thread that has hashed (one thread per
    // core by default): passwords were hashed above, so at least one, never more than that.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let block = 19.0 * 1024.0 * 1024.0;
    let blocks = metrics.value("aerie_password_hash_memory_bytes", &[]) / block;
    assert!(
        blocks.fract() == 0.0 && (1.0..=cores as f64).contains(&blocks),
        "{blocks} blocks"
    );
    assert_eq!(
        metrics.value("aerie_db_pool_max_connections", &[]),
        5.0,
        "the harness's pool size"
    );
    // Connections go back to the pool asynchronously: how many are idle at the moment of
    // the scrape varies, but the pool has opened some.
    let open = metrics.value("aerie_db_pool_connections", &[("state", "idle")])
        + metrics.value("aerie_db_pool_connections", &[("state", "in_use")]);
    assert!((1.0..=5.0).contains(&open), "{metrics}");
}

async fn random_paths_and_methods_cannot_grow_the_label_set(engine: Engine) {
    let token = fresh_metrics_token();
    let app = with_token(engine, &token).await;
    let mut paths = Vec::new();
    for i in 0..1000 {
        let path = format!(
            "/probe{i}-{:x}/{:x}",
            rand::random::<u64>(),
            rand::random::<u32>()
        );
        assert_eq!(
            app.get(&path, None).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
        paths.push(path);
    }
    for invented in ["FROB", "QWERTY1", "X-PROPFIND"] {
        let method = Method::from_bytes(invented.as_bytes()).expect("method");
        app.request(method, "/api/tags", None, None).await;
    }
    let metrics = app.metrics(&token).await;
    let series: Vec<Sample> = metrics
        .samples()
        .into_iter()
        .filter(|s| s.name == "aerie_http_requests_total")
        .collect();
    let routes: BTreeSet<&str> = series.iter().filter_map(|s| s.label("route")).collect();
    let methods: BTreeSet<&str> = series.iter().filter_map(|s| s.label("method")).collect();
    assert_eq!(
        routes,
        BTreeSet::from(["/api/tags", "unmatched"]),
        "{metrics}"
    );
    assert_eq!(methods, BTreeSet::from(["GET", "other"]), "{metrics}");
    assert_eq!(
        metrics.value(
            "aerie_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ),
        1000.0
    );
    assert!(
        series.len() <= 4,
        "one series per route, method and status: {}",
        series.len()
    );
    for path in &paths[..20] {
        assert!(
            !metrics.text().contains(path.trim_start_matches('/')),
            "{path} reached the metrics"
        );
    }
    assert!(!metrics.text().contains("FROB") && !metrics.text().contains("QWERTY1"));
}

async fn the_metrics_never_carry_secrets_or_user_data(engine: Engine) {
    let token = fresh_metrics_token();
    let app = with_token(engine, &token).await;
    let user = app.register_user("quinn.private").await;
    let access = user["token"].as_str().expect("token").to_owned();
    let refresh = user["refreshToken"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    let new_email = "quinn.second@example.org";
    let changed = app
        .put(
            "/api/user",
            Some(&access),
            json!({"user": {"email": new_email}}),
        )
        .await;
    changed.assert_status(StatusCode::OK);
    let refreshed = app
        .post("/api/auth/refresh", None, json!({"refreshToken": refresh}))
        .await;
    refreshed.assert_status(StatusCode::OK);
    app.get(&format!("/api/profiles/quinn.private?secret={token}"), None)
        .await;
    let wrong = app.login(new_email, "wrong but long password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let metrics = app.metrics(&token).await;
    assert!(
        metrics.text().contains("aerie_logins_total"),
        "the flow was counted: {metrics}"
    );
    for secret in [
        token.as_str(),
        access.as_str(),
        refresh.as_str(),
        refreshed.body["user"]["refreshToken"]
            .as_str()
            .expect("rotated"),
        PASSWORD,
        "wrong but long password",
        "quinn.private@example.com",
        new_email,
        "quinn",
    ] {
        assert!(
            !metrics.text().contains(secret),
            "metrics contain {secret:?}"
        );
    }
}

async fn the_metrics_listener_serves_only_metrics_without_a_token(engine: Engine) {
    let app = TestApp::spawn_with(engine, &[("AERIE_METRICS_LISTEN", "127.0.0.1:0")]).await;
    let internal = app.metrics_address.clone().expect("metrics listener");
    assert_eq!(app.get("/api/tags", None).await.status, StatusCode::OK);
    let metrics = app.internal_metrics().await;
    assert_eq!(
        metrics.value(
            "aerie_http_requests_total",
            &[("route", "/api/tags"), ("status", "200")]
        ),
        1.0,
        "{metrics}"
    );
    for path in ["/api/tags", "/healthz", "/metrics/x"] {
        let (status, _) = get_text(&app, &format!("{internal}{path}"), None).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{path} on the metrics listener"
        );
    }
    let (status, _) = get_text(&app, &app.url("/metrics"), None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "no token configured: not on the main listener"
    );
}

engine_tests!(
    without_a_token_the_metrics_route_does_not_exist,
    only_the_exact_bearer_token_reads_the_metrics,
    requests_logins_and_revocations_are_counted_by_route_template,
    random_paths_and_methods_cannot_grow_the_label_set,
    the_metrics_never_carry_secrets_or_user_data,
    the_metrics_listener_serves_only_metrics_without_a_token,
);
