//! 422: every validation rule names its field, for registration, articles, user updates and
//! paging.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{assert_invalid, assert_refused, login_status};
use crate::common::{PASSWORD, TestApp, engine_tests};

async fn registration_rules_name_their_field(app: TestApp) {
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"username": "", "email": "a@example.com", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": "a".repeat(33), "email": "a@example.com", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": "bad name", "email": "a@example.com", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": "<script>", "email": "a@example.com", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": "bell\u{7}", "email": "a@example.com", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": "nul\u{0}", "email": "a@example.com", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": "new\nline", "email": "a@example.com", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"email": "a@example.com", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": "valid", "email": "not-an-email", "password": PASSWORD}),
            "email",
        ),
        (
            json!({"username": "valid", "email": "a@b", "password": PASSWORD}),
            "email",
        ),
        (
            json!({"username": "valid", "email": "", "password": PASSWORD}),
            "email",
        ),
        (json!({"username": "valid", "password": PASSWORD}), "email"),
        (
            json!({"username": "valid", "email": "a@example.com", "password": "short"}),
            "password",
        ),
        (
            json!({"username": "valid", "email": "a@example.com", "password": "password123"}),
            "password",
        ),
        (
            json!({"username": "valid", "email": "a@example.com", "password": "Password1!"}),
            "password",
        ),
        (
            json!({"username": "valid", "email": "a@example.com", "password": "x7#Q".repeat(33)}),
            "password",
        ),
        (
            json!({"username": "valid", "email": "a@example.com"}),
            "password",
        ),
    ];
    for (user, field) in cases {
        let reply = app.post("/api/users", None, json!({"user": user})).await;
        assert_invalid(&reply, field);
    }
    // Every problem is reported at once.
    let reply = app
        .post(
            "/api/users",
            None,
            json!({"user": {"username": "", "email": "x", "password": "x"}}),
        )
        .await;
    for field in ["username", "email", "password"] {
        assert_invalid(&reply, field);
    }
    assert_eq!(login_status(&app, "valid").await, StatusCode::UNAUTHORIZED);
}

async fn article_rules_name_their_field(app: TestApp) {
    let token = app.register("writer").await;
    let many_tags: Vec<String> = (0..21).map(|i| format!("tag{i}")).collect();
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"title": "", "description": "d", "body": "b"}),
            "title",
        ),
        (
            json!({"title": "   ", "description": "d", "body": "b"}),
            "title",
        ),
        (
            json!({"title": "t".repeat(201), "description": "d", "body": "b"}),
            "title",
        ),
        (
            json!({"title": "line\nbreak", "description": "d", "body": "b"}),
            "title",
        ),
        (
            json!({"title": "nul\u{0}byte", "description": "d", "body": "b"}),
            "title",
        ),
        (
            json!({"title": "escape\u{1b}[31m", "description": "d", "body": "b"}),
            "title",
        ),
        (
            json!({"title": "bidi\u{202e}txt", "description": "d", "body": "b"}),
            "title",
        ),
        (json!({"description": "d", "body": "b"}), "title"),
        (
            json!({"title": "t", "description": "", "body": "b"}),
            "description",
        ),
        (
            json!({"title": "t", "description": "d", "body": ""}),
            "body",
        ),
        (
            json!({"title": "t", "description": "d", "body": "  \n "}),
            "body",
        ),
        (json!({"title": "t", "description": "d"}), "body"),
        (
            json!({"title": "t", "description": "d", "body": "b", "tagList": many_tags}),
            "tagList",
        ),
        (
            json!({"title": "t", "description": "d", "body": "b", "tagList": [""]}),
            "tagList",
        ),
        (
            json!({"title": "t", "description": "d", "body": "b", "tagList": ["a\u{0}b"]}),
            "tagList",
        ),
    ];
    for (article, field) in cases {
        let reply = app
            .post("/api/articles", Some(&token), json!({"article": article}))
            .await;
        assert_invalid(&reply, field);
    }
    let slug = app.create_article(&token, "Kept", &[]).await;
    for (article, field) in [
        (json!({"title": "  "}), "title"),
        (json!({"body": ""}), "body"),
        (json!({"title": "ctrl\u{7}"}), "title"),
    ] {
        let reply = app
            .put(
                &format!("/api/articles/{slug}"),
                Some(&token),
                json!({"article": article}),
            )
            .await;
        assert_invalid(&reply, field);
    }
    let reply = app
        .post(
            &format!("/api/articles/{slug}/comments"),
            Some(&token),
            json!({"comment": {"body": " "}}),
        )
        .await;
    assert_invalid(&reply, "body");
    let list = app.get("/api/articles", None).await;
    assert_eq!(
        list.body["articlesCount"], 1,
        "only the valid article exists"
    );
}

async fn user_update_rules_name_their_field(app: TestApp) {
    let token = app.register("settings").await;
    for (user, field) in [
        (json!({"image": "javascript:alert(1)"}), "image"),
        (json!({"image": "ftp://cdn.example.com/a.png"}), "image"),
        (
            json!({"image": "data:text/html,<script>alert(1)</script>"}),
            "image",
        ),
        (json!({"image": "file:///etc/passwd"}), "image"),
        (json!({"image": "https://"}), "image"),
        (json!({"username": "bad name"}), "username"),
        (json!({"username": "ctrl\u{1b}"}), "username"),
        (json!({"email": "nope"}), "email"),
        (json!({"bio": "x".repeat(1001)}), "bio"),
        (
            json!({"password": "password123", "currentPassword": PASSWORD}),
            "password",
        ),
    ] {
        let reply = app
            .put("/api/user", Some(&token), json!({"user": user}))
            .await;
        assert_invalid(&reply, field);
    }
    let me = app.get("/api/user", Some(&token)).await;
    assert_eq!(me.body["user"]["image"], Value::Null);
    assert_eq!(me.body["user"]["username"], "settings");
    // Development mode (the test server) accepts http:// as well as https://.
    for image in [
        "http://localhost:3000/me.png",
        "https://cdn.example.com/me.png",
    ] {
        let reply = app
            .put("/api/user", Some(&token), json!({"user": {"image": image}}))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{image}: {}", reply.body);
        assert_eq!(reply.body["user"]["image"], image);
    }
}

async fn bad_paging_parameters_are_a_422(app: TestApp) {
    let token = app.register("pager").await;
    for query in [
        "limit=-1",
        "limit=0",
        "limit=1000",
        "limit=abc",
        "limit=",
        "limit=1;",
        "limit=1e3",
        "limit=1.5",
        "limit=99999999999999999999",
        "limit=1%20OR%201=1",
        "offset=-5",
        "offset=0x10",
        "offset=abc",
        "limit=1&limit=2",
        "offset=0&offset=0",
    ] {
        for path in ["/api/articles", "/api/articles/feed"] {
            let reply = app.get(&format!("{path}?{query}"), Some(&token)).await;
            assert_refused(&reply, StatusCode::UNPROCESSABLE_ENTITY);
        }
    }
    let reply = app.get("/api/articles?limit=abc", None).await;
    assert_invalid(&reply, "limit");
    let reply = app.get("/api/articles?offset=-5", None).await;
    assert_invalid(&reply, "offset");
    // The deepest offset served is AERIE_MAX_LIST_OFFSET (10,000 by default, issue 20).
    for query in ["limit=100&offset=0", "limit=1", "offset=10000"] {
        let reply = app.get(&format!("/api/articles?{query}"), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.body);
    }
    let reply = app.get("/api/articles?offset=2147483647", None).await;
    assert_invalid(&reply, "offset");
}

engine_tests!(
    registration_rules_name_their_field,
    article_rules_name_their_field,
    user_update_rules_name_their_field,
    bad_paging_parameters_are_a_422,
);
