//! JSON a parser could read two ways (attacks.md §4 Z9): duplicate keys, deep nesting, arrays
//! for objects and values of the wrong type are refused, never guessed at.

use reqwest::StatusCode;
use serde_json::json;

use super::{assert_error_shape, assert_invalid, login_status, post_json_text};
use crate::common::{PASSWORD, TestApp, engine_tests};

async fn duplicate_json_keys_are_refused(app: TestApp) {
    let body = format!(
        r#"{{"user":{{"username":"dupe","email":"a@example.com","email":"b@example.com","password":"{PASSWORD}"}}}}"#
    );
    let reply = post_json_text(&app, "/api/users", None, &body).await;
    assert_invalid(&reply, "body");
    let body = format!(
        r#"{{"user":{{"username":"dupe","email":"dupe@example.com","password":"{PASSWORD}"}},"user":{{"username":"other","email":"other@example.com","password":"{PASSWORD}"}}}}"#
    );
    let reply = post_json_text(&app, "/api/users", None, &body).await;
    assert_invalid(&reply, "body");
    assert_eq!(login_status(&app, "dupe").await, StatusCode::UNAUTHORIZED);
    assert_eq!(login_status(&app, "other").await, StatusCode::UNAUTHORIZED);
    // On login, a second password must not override the first.
    app.register("victim").await;
    let body = format!(
        r#"{{"user":{{"email":"victim@example.com","password":"wrong","password":"{PASSWORD}"}}}}"#
    );
    let reply = post_json_text(&app, "/api/users/login", None, &body).await;
    assert_invalid(&reply, "body");
}

async fn deeply_nested_json_is_refused_without_a_crash(app: TestApp) {
    let depth = 10_000;
    let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let objects = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
    let in_field = format!(r#"{{"user":{{"username":{arrays}}}}}"#);
    let in_unknown = format!(r#"{{"user":{{"username":"x","nested":{objects}}}}}"#);
    let token = app.register("nester").await;
    for body in [&arrays, &objects, &in_field, &in_unknown] {
        for path in ["/api/users", "/api/users/login"] {
            let reply = post_json_text(&app, path, None, body).await;
            assert!(reply.status.is_client_error(), "{path}: {}", reply.status);
            assert_error_shape(&reply);
        }
        let reply = post_json_text(&app, "/api/articles", Some(&token), body).await;
        assert!(reply.status.is_client_error(), "{}", reply.status);
        assert_error_shape(&reply);
    }
    // The server survived.
    assert_eq!(app.get("/api/tags", None).await.status, StatusCode::OK);
}

async fn arrays_are_not_read_as_positional_fields(app: TestApp) {
    // serde fills a struct from an array by position unless told otherwise.
    let reply = app
        .post(
            "/api/users",
            None,
            json!([["bob", "bob@example.com", PASSWORD]]),
        )
        .await;
    assert_invalid(&reply, "body");
    // The message names the shape expected, so a client sees what to send instead.
    let message = reply.error_on("body").unwrap_or_default();
    assert!(message.contains("expected a JSON object"), "{message}");
    let reply = app
        .post(
            "/api/users",
            None,
            json!({"user": ["bob", "bob@example.com", PASSWORD]}),
        )
        .await;
    assert_invalid(&reply, "body");
    assert_eq!(login_status(&app, "bob").await, StatusCode::UNAUTHORIZED);
    let token = app.register("bob").await;
    for body in [
        json!({"user": ["bob@example.com", PASSWORD]}),
        json!([{"user": {"email": "bob@example.com", "password": PASSWORD}}]),
        json!([["bob@example.com", PASSWORD], ["bob@example.com", "guess"]]),
    ] {
        let reply = app.post("/api/users/login", None, body).await;
        assert_invalid(&reply, "body");
    }
    let reply = app
        .put(
            "/api/user",
            Some(&token),
            json!({"user": [null, null, null, null, "positional bio", null]}),
        )
        .await;
    assert_invalid(&reply, "body");
    let reply = app
        .post(
            "/api/articles",
            Some(&token),
            json!({"article": ["t", "d", "b", []]}),
        )
        .await;
    assert_invalid(&reply, "body");
    let slug = app.create_article(&token, "Positional", &[]).await;
    let reply = app
        .post(
            &format!("/api/articles/{slug}/comments"),
            Some(&token),
            json!({"comment": ["hi"]}),
        )
        .await;
    assert_invalid(&reply, "body");
    assert_eq!(
        app.get("/api/articles", None).await.body["articlesCount"],
        1
    );
}

async fn json_type_confusion_is_a_422(app: TestApp) {
    app.register("typed").await;
    for email in [
        json!({"$ne": null}),
        json!(["typed@example.com", "b"]),
        json!(1),
        json!(true),
        json!({"$gt": ""}),
    ] {
        let reply = app
            .post(
                "/api/users/login",
                None,
                json!({"user": {"email": email, "password": PASSWORD}}),
            )
            .await;
        assert_invalid(&reply, "body");
        let reply = app
            .post(
                "/api/users",
                None,
                json!({"user": {"username": "x", "email": email, "password": PASSWORD}}),
            )
            .await;
        assert_invalid(&reply, "body");
    }
    let reply = app
        .post(
            "/api/users/login",
            None,
            json!({"user": {"email": "typed@example.com", "password": {"$ne": null}}}),
        )
        .await;
    assert_invalid(&reply, "body");
    for body in [
        json!([]),
        json!("user"),
        json!(null),
        json!({"user": []}),
        json!({"user": "typed"}),
    ] {
        let reply = app.post("/api/users/login", None, body).await;
        assert_invalid(&reply, "body");
    }
    let token = app.register("author").await;
    for article in [
        json!({"title": ["a"], "description": "d", "body": "b"}),
        json!({"title": "t", "description": "d", "body": "b", "tagList": "rust"}),
        json!({"title": "t", "description": "d", "body": "b", "tagList": [1, 2]}),
        json!({"title": "t", "description": "d", "body": {"$ne": null}}),
    ] {
        let reply = app
            .post("/api/articles", Some(&token), json!({"article": article}))
            .await;
        assert_invalid(&reply, "body");
    }
}

engine_tests!(
    duplicate_json_keys_are_refused,
    deeply_nested_json_is_refused_without_a_crash,
    arrays_are_not_read_as_positional_fields,
    json_type_confusion_is_a_422,
);
