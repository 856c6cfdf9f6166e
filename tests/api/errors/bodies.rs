//! 415, 400, 413: a body that is not JSON, is not valid JSON, holds numbers out of range, or
//! is larger than the limit (with or without a length) is refused before any handler.

use reqwest::StatusCode;
use serde_json::json;

use super::{
    BODY_LIMIT, assert_error_shape, assert_invalid, assert_refused, login_status, post_json_text,
    post_raw, registration,
};
use crate::common::{PASSWORD, TestApp, engine_tests};

async fn non_json_content_types_are_refused_with_415(app: TestApp) {
    let json_looking = registration("simple").to_string().into_bytes();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/json-patch+json"),
        Some("application/json; charset=latin1"),
        None,
    ] {
        let reply = post_raw(&app, "/api/users", content_type, json_looking.clone()).await;
        assert_refused(&reply, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let form = b"user[username]=simple&user[email]=simple@example.com".to_vec();
    let reply = post_raw(
        &app,
        "/api/users",
        Some("application/x-www-form-urlencoded"),
        form,
    )
    .await;
    assert_refused(&reply, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Nothing was created by any of them.
    assert_eq!(login_status(&app, "simple").await, StatusCode::UNAUTHORIZED);
    // The same body as JSON is fine, so the 415s were about the content type alone.
    let reply = post_raw(
        &app,
        "/api/users",
        Some("application/json; charset=utf-8"),
        json_looking,
    )
    .await;
    reply.assert_status(StatusCode::CREATED);
}

async fn malformed_json_is_a_400(app: TestApp) {
    let mut bodies: Vec<Vec<u8>> = [
        "",
        "{",
        "{\"user\":",
        "not json",
        "{\"user\":{}}trailing",
        "{'user':{}}",
        "{\"user\":{\"username\":\"a\",}}",
        "{\"user\":{\"username\":NaN}}",
        "{\"user\":{\"username\":Infinity}}",
        "{\"user\":{\"username\":\"\\ud800\"}}",
        "\u{feff}{\"user\":{}}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    // Invalid UTF-8 inside a string, and an overlong encoding of '/'.
    bodies.push(b"{\"user\":{\"username\":\"\xff\xfe\"}}".to_vec());
    bodies.push(b"{\"user\":{\"username\":\"\xc0\xaf\"}}".to_vec());
    for body in bodies {
        let reply = post_raw(&app, "/api/users", Some("application/json"), body.clone()).await;
        assert_refused(&reply, StatusCode::BAD_REQUEST);
        assert!(
            reply.error_on("body").is_some(),
            "{:?}: {}",
            String::from_utf8_lossy(&body),
            reply.body
        );
    }
}

async fn number_edge_cases_are_refused_not_crashed(app: TestApp) {
    for number in [
        "1e999999",
        "-0",
        "1.0000000000000000000000001",
        "123456789012345678901234567890",
        "-1e-999999",
    ] {
        let body = format!(
            "{{\"user\":{{\"username\":{number},\"email\":\"n@example.com\",\"password\":\"{PASSWORD}\"}}}}"
        );
        let reply = post_raw(
            &app,
            "/api/users",
            Some("application/json"),
            body.into_bytes(),
        )
        .await;
        assert!(
            matches!(
                reply.status,
                StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY
            ),
            "{number}: {} {}",
            reply.status,
            reply.body
        );
        assert_error_shape(&reply);
    }
    let reply = app.get("/api/articles?limit=1e999999", None).await;
    assert_invalid(&reply, "limit");
}

async fn body_over_the_limit_is_a_413(app: TestApp) {
    let padding = "a".repeat(BODY_LIMIT);
    let body =
        json!({"user": {"username": "big", "email": "big@example.com", "password": padding}});
    let reply = app
        .raw_post("/api/users", body.to_string().into_bytes(), false)
        .await;
    assert_refused(&reply, StatusCode::PAYLOAD_TOO_LARGE);
    // A body just under the limit (padded with JSON whitespace) is read and handled.
    let mut small = registration("small").to_string();
    small.push_str(&" ".repeat(BODY_LIMIT - small.len() - 16));
    let reply = post_json_text(&app, "/api/users", None, &small).await;
    reply.assert_status(StatusCode::CREATED);
    assert_eq!(login_status(&app, "big").await, StatusCode::UNAUTHORIZED);
}

async fn chunked_body_over_the_limit_without_a_length_is_a_413(app: TestApp) {
    let mut body =
        br#"{"user":{"username":"chunky","email":"chunky@example.com","password":""#.to_vec();
    body.extend(std::iter::repeat_n(b'a', BODY_LIMIT + 1024));
    body.extend_from_slice(br#""}}"#);
    let reply = app.raw_post("/api/users", body, true).await;
    assert_refused(&reply, StatusCode::PAYLOAD_TOO_LARGE);
    // A small chunked body is read normally, so the 413 was about the size alone.
    let reply = app
        .raw_post(
            "/api/users",
            registration("chunky").to_string().into_bytes(),
            true,
        )
        .await;
    reply.assert_status(StatusCode::CREATED);
}

engine_tests!(
    non_json_content_types_are_refused_with_415,
    malformed_json_is_a_400,
    number_edge_cases_are_refused_not_crashed,
    body_over_the_limit_is_a_413,
    chunked_body_over_the_limit_without_a_length_is_a_413,
);
