//! Mass assignment (attacks.md §4 Z8): fields a client may not set (role, author, counts,
//! slug) are refused or ignored, and change nothing.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{assert_invalid, login_status, registration};
use crate::common::{TestApp, engine_tests};

async fn mass_assignment_of_role_at_registration_is_refused(app: TestApp) {
    for extra in [
        json!({"role": "admin"}),
        json!({"id": 1}),
        json!({"createdAt": "2020-01-01T00:00:00.000Z"}),
        json!({"password_hash": "$argon2id$v=19$m=19456,t=2,p=1$x$y"}),
        json!({"token": "x"}),
        json!({"__proto__": {"admin": true}}),
        json!({"profile": {"role": "admin"}}),
    ] {
        let mut body = registration("mallory");
        for (key, value) in extra.as_object().expect("object") {
            body["user"][key] = value.clone();
        }
        let reply = app.post("/api/users", None, body).await;
        assert_invalid(&reply, "body");
    }
    let reply = app
        .post(
            "/api/users",
            None,
            json!({"user": registration("mallory")["user"], "constructor": {"prototype": {}}}),
        )
        .await;
    assert_invalid(&reply, "body");
    // None of them created an account; a clean registration then gets role "user".
    assert_eq!(
        login_status(&app, "mallory").await,
        StatusCode::UNAUTHORIZED
    );
    let reply = app.post("/api/users", None, registration("mallory")).await;
    reply.assert_status(StatusCode::CREATED);
    assert_eq!(reply.body["user"]["role"], "user");
}

async fn mass_assignment_on_update_user_changes_nothing(app: TestApp) {
    let token = app.register("mallory").await;
    for body in [
        json!({"user": {"role": "admin"}}),
        json!({"user": {"bio": "promoted", "role": "admin"}}),
        json!({"user": {"bio": "promoted", "id": 1, "createdAt": "2020-01-01T00:00:00.000Z"}}),
        json!({"user": {"bio": "promoted", "password_hash": "x"}}),
        json!({"user": {"bio": "promoted", "disabledAt": null}}),
        json!({"user": {"__proto__": {"admin": true}}}),
        json!({"user": {"profile": {"role": "admin"}}}),
        json!({"user": {"bio": "promoted"}, "role": "admin"}),
    ] {
        let reply = app.put("/api/user", Some(&token), body.clone()).await;
        assert_invalid(&reply, "body");
    }
    let me = app.get("/api/user", Some(&token)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["user"]["role"], "user");
    assert_eq!(
        me.body["user"]["bio"],
        Value::Null,
        "a refused body persists nothing"
    );
}

async fn mass_assignment_of_article_author_count_and_slug_is_refused(app: TestApp) {
    let alice = app.register("alice").await;
    let mallory = app.register("mallory").await;
    let base = json!({"title": "Forged", "description": "d", "body": "b"});
    for (key, value) in [
        ("author", json!({"username": "alice"})),
        ("favoritesCount", json!(9999)),
        ("slug", json!("fixed")),
        ("createdAt", json!("2000-01-01T00:00:00.000Z")),
        ("favorited", json!(true)),
        ("id", json!(1)),
    ] {
        let mut article = base.clone();
        article[key] = value;
        let reply = app
            .post("/api/articles", Some(&mallory), json!({"article": article}))
            .await;
        assert_invalid(&reply, "body");
    }
    let list = app.get("/api/articles", None).await;
    assert_eq!(
        list.body["articlesCount"], 0,
        "nothing persisted: {}",
        list.body
    );
    // The same holds on update: the author cannot be reassigned, nor the count inflated.
    let slug = app.create_article(&mallory, "Mine", &[]).await;
    for article in [
        json!({"author": {"username": "alice"}}),
        json!({"favoritesCount": 9999}),
        json!({"slug": "fixed"}),
    ] {
        let reply = app
            .put(
                &format!("/api/articles/{slug}"),
                Some(&mallory),
                json!({"article": article}),
            )
            .await;
        assert_invalid(&reply, "body");
    }
    let article = app.get(&format!("/api/articles/{slug}"), None).await;
    assert_eq!(article.body["article"]["author"]["username"], "mallory");
    assert_eq!(article.body["article"]["favoritesCount"], 0);
    assert_eq!(
        app.get("/api/articles/fixed", Some(&alice)).await.status,
        StatusCode::NOT_FOUND
    );
}

engine_tests!(
    mass_assignment_of_role_at_registration_is_refused,
    mass_assignment_on_update_user_changes_nothing,
    mass_assignment_of_article_author_count_and_slug_is_refused,
);
