//! X-Request-Id: every response carries one; a well-formed id from the client is echoed and
//! a malformed one replaced.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{BODY_LIMIT, assert_refused, post_raw, registration};
use crate::common::{self, TestApp, engine_tests};

async fn every_response_carries_a_request_id(app: TestApp) {
    let token = app.register("tracer").await;
    let replies = vec![
        app.get("/api/tags", None).await,
        app.get("/api/user", Some(&token)).await,
        app.post("/api/users", None, registration("tracer2")).await,
        app.get("/api/user", None).await,
        app.get("/api/nothing", None).await,
        app.request(Method::PATCH, "/api/user", None, None).await,
        app.post("/api/users", None, json!({"user": {"username": ""}}))
            .await,
        post_raw(&app, "/api/users", Some("text/plain"), b"x".to_vec()).await,
        post_raw(&app, "/api/users", Some("application/json"), b"{".to_vec()).await,
        app.raw_post("/api/users", vec![b' '; BODY_LIMIT + 1], false)
            .await,
        app.raw_post("/api/users", vec![b' '; BODY_LIMIT + 1], true)
            .await,
    ];
    let mut seen = std::collections::HashSet::new();
    for reply in &replies {
        let id = reply
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{}: no X-Request-Id", reply.status));
        assert!(!id.is_empty());
        assert!(seen.insert(id.to_owned()), "request ids are unique: {id}");
    }
}

async fn request_id_answer(app: &TestApp, sent: &[&str]) -> String {
    let mut request = app.client.get(app.url("/api/articles/missing"));
    for id in sent {
        request = request.header("X-Request-Id", *id);
    }
    let reply = common::read(request.send().await.expect("request sent")).await;
    assert_refused(&reply, StatusCode::NOT_FOUND);
    let ids: Vec<&str> = reply
        .headers
        .get_all("x-request-id")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(ids.len(), 1, "exactly one request id: {ids:?}");
    ids[0].to_owned()
}

async fn well_formed_client_request_id_is_echoed(app: TestApp) {
    for id in [
        "abc-123",
        "trace_01.Z",
        &"x".repeat(64),
        "0b6a1c4e-2f55-4f0b-9a55-9d2b3b9f7c10",
    ] {
        assert_eq!(request_id_answer(&app, &[id]).await, id);
    }
}

async fn malformed_client_request_id_is_replaced(app: TestApp) {
    let long = "a".repeat(200);
    for sent in [
        vec![long.as_str()],
        vec!["<script>alert(1)</script>"],
        vec!["has spaces in it"],
        vec!["quote\"and'semicolon;"],
        vec!["%0d%0aInjected: yes"],
        vec![""],
        vec!["one", "two"],
    ] {
        let answered = request_id_answer(&app, &sent).await;
        assert!(!sent.contains(&answered.as_str()), "{sent:?} was echoed");
        assert!(
            !answered.is_empty()
                && answered.len() <= 64
                && answered
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')),
            "replacement id is well-formed: {answered}"
        );
    }
}

engine_tests!(
    every_response_carries_a_request_id,
    well_formed_client_request_id_is_echoed,
    malformed_client_request_id_is_replaced,
);
