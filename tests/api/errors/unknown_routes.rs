//! 404 and 405: unknown routes, unknown objects and wrong methods get the shaped error, never
//! the framework's default answer.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::assert_refused;
use crate::common::{TestApp, engine_tests};

async fn unknown_routes_are_a_shaped_404(app: TestApp) {
    for path in [
        "/api/nothing-here",
        "/nothing",
        "/api/users/me/secret",
        "/.env",
        "/api/admin/../../etc/passwd",
    ] {
        let reply = app.get(path, None).await;
        assert_refused(&reply, StatusCode::NOT_FOUND);
    }
    let reply = app.post("/api/nothing-here", None, json!({})).await;
    assert_refused(&reply, StatusCode::NOT_FOUND);
}

async fn unknown_article_profile_and_comment_are_a_shaped_404(app: TestApp) {
    let token = app.register("owner").await;
    let slug = app.create_article(&token, "Real article", &[]).await;
    for path in [
        "/api/articles/no-such-article",
        "/api/profiles/nobody",
        "/api/articles/no-such-article/comments",
    ] {
        let reply = app.get(path, Some(&token)).await;
        assert_refused(&reply, StatusCode::NOT_FOUND);
    }
    for reply in [
        app.delete(
            &format!("/api/articles/{slug}/comments/987654"),
            Some(&token),
        )
        .await,
        app.delete("/api/articles/no-such-article/comments/1", Some(&token))
            .await,
        app.delete("/api/articles/no-such-article", Some(&token))
            .await,
        app.post(
            "/api/articles/no-such-article/comments",
            Some(&token),
            json!({"comment": {"body": "hi"}}),
        )
        .await,
        app.post("/api/profiles/nobody/follow", Some(&token), json!({}))
            .await,
    ] {
        assert_refused(&reply, StatusCode::NOT_FOUND);
    }
}

async fn wrong_method_is_a_shaped_405(app: TestApp) {
    for (method, path) in [
        (Method::PATCH, "/api/user"),
        (Method::DELETE, "/api/tags"),
        (Method::GET, "/api/users"),
        (Method::PUT, "/api/users/login"),
        // A state change through GET (attacks.md C5) is not routed at all.
        (Method::GET, "/api/articles/some-slug/favorite"),
        (Method::GET, "/api/profiles/someone/follow"),
    ] {
        let reply = app.request(method.clone(), path, None, None).await;
        assert_refused(&reply, StatusCode::METHOD_NOT_ALLOWED);
        assert!(
            reply.headers.contains_key("x-request-id"),
            "{method} {path}"
        );
    }
}

engine_tests!(
    unknown_routes_are_a_shaped_404,
    unknown_article_profile_and_comment_are_a_shaped_404,
    wrong_method_is_a_shaped_405,
);
