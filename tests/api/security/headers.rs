//! Security headers on every kind of response, and CORS from an allowlist only.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{self, Engine, TestApp};

/// The exact header set every response must carry (attacks.md §10, issue: transport security).
const EXPECTED: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("origin-agent-cluster", "?1"),
    (
        "permissions-policy",
        "accelerometer=(), autoplay=(), camera=(), display-capture=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), midi=(), payment=(), usb=(), interest-cohort=()",
    ),
    ("x-permitted-cross-domain-policies", "none"),
    ("x-dns-prefetch-control", "off"),
    ("x-download-options", "noopen"),
    ("cache-control", "no-store"),
];

fn assert_hardened(what: &str, headers: &reqwest::header::HeaderMap) {
    for (name, value) in EXPECTED {
        assert_eq!(
            headers.get(*name).and_then(|v| v.to_str().ok()),
            Some(*value),
            "{what}: header {name}"
        );
    }
    assert!(
        !headers.contains_key("server"),
        "{what}: Server header leaks the software"
    );
    assert!(
        !headers.contains_key("x-powered-by"),
        "{what}: X-Powered-By leaks the software"
    );
}

#[tokio::test]
async fn every_kind_of_response_carries_the_security_headers() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let token = app.register("hdr").await;
    let slug = app.create_article(&token, "Headers", &["x"]).await;
    let cases: Vec<(&str, common::Reply)> = vec![
        ("200 tags", app.get("/api/tags", None).await),
        ("200 user", app.get("/api/user", Some(&token)).await),
        ("200 article", app.get(&format!("/api/articles/{slug}"), None).await),
        ("200 healthz", app.get("/healthz", None).await),
        ("201 register", app.post("/api/users", None, json!({"user": {"username": "h2", "email": "h2@example.com", "password": common::PASSWORD}})).await),
        ("204 delete", app.delete(&format!("/api/articles/{slug}"), Some(&token)).await),
        ("401 no token", app.get("/api/user", None).await),
        ("404 route", app.get("/nope", None).await),
        ("404 article", app.get("/api/articles/missing", None).await),
        ("405 method", app.request(Method::PATCH, "/api/user", Some(&token), None).await),
        ("405 trace", app.request(Method::TRACE, "/api/tags", None, None).await),
        ("422 validation", app.post("/api/users", None, json!({"user": {}})).await),
    ];
    for (what, reply) in &cases {
        assert_hardened(what, &reply.headers);
    }
    let statuses: Vec<u16> = cases.iter().map(|(_, r)| r.status.as_u16()).collect();
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 201, 204, 401, 404, 404, 405, 405, 422]
    );
    let big = app
        .client
        .post(app.url("/api/users"))
        .header("content-type", "application/json")
        .body(vec![b' '; 70_000])
        .send()
        .await
        .expect("sent");
    assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_hardened("413", big.headers());
    let text = app
        .client
        .post(app.url("/api/users"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .expect("sent");
    assert_eq!(text.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_hardened("415", text.headers());
}

/// Every route in the access table, called anonymously with placeholder parameters: whatever
/// it answers (200, 401, 404, 405, 422...), the response carries the full header set.
#[tokio::test]
async fn every_route_in_the_route_table_carries_the_security_headers() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    for rule in aerie::http::access::ROUTES {
        let path = rule
            .path
            .replace("{username}", "nobody")
            .replace("{slug}", "no-such-article")
            .replace("{id}", "1");
        let reply = app.request(rule.method.clone(), &path, None, None).await;
        if rule.path == "/.well-known/jwks.json" {
            continue; // cacheable on purpose: see the test below
        }
        assert_hardened(
            &format!("{} {} ({})", rule.method, rule.path, reply.status),
            &reply.headers,
        );
    }
}

/// The public keys are meant to be cached by verifiers (the handler says `public,
/// max-age=300`); the security-header layer must not overwrite that with `no-store`, while
/// every other header of the preset is still set, and other routes keep `no-store`.
#[tokio::test]
async fn the_jwks_keeps_its_cacheable_header_and_nothing_else_does() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let reply = app.get("/.well-known/jwks.json", None).await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(
        reply
            .headers
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("public, max-age=300")
    );
    let mut others = reply.headers.clone();
    others.insert("cache-control", "no-store".parse().expect("value"));
    assert_hardened("jwks", &others);
    let tags = app.get("/api/tags", None).await;
    assert_eq!(
        tags.headers
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
}

/// HTTP/1.1 requires exactly one `Host` (RFC 9112 §3.2): a request without one, or with two
/// that a proxy and the server could read differently, is a 400 in the error shape.
#[tokio::test]
async fn a_missing_or_repeated_host_header_is_a_400() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let missing = app
        .raw_request("GET /api/tags HTTP/1.1\r\nConnection: close\r\n\r\n")
        .await;
    missing.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(missing.error_on("Host"), Some("header is missing"));
    let repeated = app
        .raw_request(
            "GET /api/tags HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n",
        )
        .await;
    repeated.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(repeated.error_on("Host"), Some("header is repeated"));
    assert_hardened("400 host", &repeated.headers);
    let one = app
        .raw_request("GET /api/tags HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n")
        .await;
    one.assert_status(StatusCode::OK);
    // HTTP/1.0 predates the rule.
    let old = app.raw_request("GET /api/tags HTTP/1.0\r\n\r\n").await;
    old.assert_status(StatusCode::OK);
}

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, app.url("/api/articles"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .expect("sent")
}

#[tokio::test]
async fn allowed_origin_gets_cors_headers_and_preflight_answer() {
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        &[("AERIE_CORS_ORIGINS", "https://app.example.com")],
    )
    .await;
    let reply = preflight(&app, "https://app.example.com").await;
    assert!(reply.status().is_success());
    let headers = reply.headers();
    assert_eq!(
        headers
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("https://app.example.com")
    );
    assert_eq!(
        headers
            .get("access-control-allow-credentials")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let methods = headers
        .get("access-control-allow-methods")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(methods.contains("POST"), "{methods}");
    let simple = app
        .client
        .get(app.url("/api/tags"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .expect("sent");
    assert_eq!(
        simple
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("https://app.example.com")
    );
}

#[tokio::test]
async fn disallowed_origins_get_no_cors_headers() {
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        &[
            ("AERIE_ENV", "development"),
            ("AERIE_CORS_ORIGINS", "https://app.example.com"),
        ],
    )
    .await;
    for origin in [
        "https://evil.example",
        "null",
        "https://app.example.com.evil.io",
        "https://evilapp.example.com",
        "http://app.example.com",
        "http://localhost.evil.io",
    ] {
        let reply = preflight(&app, origin).await;
        assert!(
            !reply.headers().contains_key("access-control-allow-origin"),
            "preflight from {origin} was allowed"
        );
        let simple = app
            .client
            .get(app.url("/api/tags"))
            .header("origin", origin)
            .send()
            .await
            .expect("sent");
        assert!(
            !simple.headers().contains_key("access-control-allow-origin"),
            "{origin} was allowed"
        );
    }
}

#[tokio::test]
async fn development_allows_a_local_front_end() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let reply = preflight(&app, "http://localhost:4200").await;
    assert_eq!(
        reply
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("http://localhost:4200")
    );
}
