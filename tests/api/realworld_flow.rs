//! A RealWorld front end's session, step by step: two people register, edit their settings,
//! post, edit, favorite, follow, comment, browse by tag and feed, and delete. Every answer is
//! checked against the shapes API.md promises, so a front end written for the RealWorld
//! contract works unchanged.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{
    self, ARTICLE_KEYS, LISTED_ARTICLE_KEYS, PASSWORD, PROFILE_KEYS, TestApp, assert_keys,
    assert_timestamp, engine_tests, slugs,
};

/// The User object: the contract's fields, plus Aerie's `role` (and `refreshToken` once
/// sessions can be refreshed).
#[track_caller]
fn assert_user(body: &Value, email: &str, username: &str, bio: Value, image: Value) -> String {
    assert_keys(body, &["user"]);
    let user = &body["user"];
    let mut keys: Vec<&str> = vec![
        "email",
        "token",
        "username",
        "bio",
        "image",
        "role",
        "emailVerified",
    ];
    if user.get("refreshToken").is_some() {
        keys.push("refreshToken");
    }
    assert_keys(user, &keys);
    assert_eq!(user["email"], email);
    assert_eq!(user["username"], username);
    assert_eq!(user["bio"], bio);
    assert_eq!(user["image"], image);
    let token = user["token"].as_str().expect("token is a string");
    assert_eq!(token.split('.').count(), 3, "token is a JWT: {token}");
    token.to_owned()
}

#[track_caller]
fn assert_profile(profile: &Value, username: &str, following: bool) {
    assert_keys(profile, PROFILE_KEYS);
    assert_eq!(profile["username"], username);
    assert_eq!(profile["following"], following);
}

/// A full article, with the contract's field types.
#[track_caller]
fn assert_article(article: &Value, keys: &[&str]) {
    assert_keys(article, keys);
    for field in ["slug", "title", "description"] {
        assert!(article[field].is_string(), "{field}: {article}");
    }
    assert!(article["tagList"].is_array(), "{article}");
    assert!(article["favorited"].is_boolean(), "{article}");
    assert!(article["favoritesCount"].is_u64(), "{article}");
    assert_timestamp(&article["createdAt"]);
    assert_timestamp(&article["updatedAt"]);
    assert_keys(&article["author"], PROFILE_KEYS);
}

#[track_caller]
fn assert_listed(list: &Value, expected_slugs: &[&str], count: u64) {
    assert_keys(list, &["articles", "articlesCount"]);
    assert_eq!(slugs(list), expected_slugs);
    assert_eq!(list["articlesCount"], count);
    for article in list["articles"].as_array().expect("articles") {
        assert_article(article, LISTED_ARTICLE_KEYS);
    }
}

async fn ok(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Value {
    let reply = app.request(method.clone(), path, token, body).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{method} {path}: {}",
        reply.body
    );
    reply.body
}

/// What a RealWorld client sends for follow, favorite and delete: the JSON content type, no body.
async fn bodiless(app: &TestApp, method: Method, path: &str, token: &str) -> common::Reply {
    app.send_without_body(method, path, Some(token)).await
}

async fn a_realworld_front_end_session_works_end_to_end(app: TestApp) {
    // Sign up: two people.
    let reply = app
        .post(
            "/api/users",
            None,
            json!({"user": {"username": "jake", "email": "jake@jake.jake", "password": PASSWORD}}),
        )
        .await;
    reply.assert_status(StatusCode::CREATED);
    assert_user(
        &reply.body,
        "jake@jake.jake",
        "jake",
        Value::Null,
        Value::Null,
    );
    let reply = app
        .post("/api/users", None, json!({"user": {"username": "jane", "email": "jane@example.com", "password": PASSWORD}}))
        .await;
    reply.assert_status(StatusCode::CREATED);
    let jane = assert_user(
        &reply.body,
        "jane@example.com",
        "jane",
        Value::Null,
        Value::Null,
    );

    // Sign in; the app then loads the current user with the stored token.
    let body = ok(
        &app,
        Method::POST,
        "/api/users/login",
        None,
        Some(json!({"user": {"email": "jake@jake.jake", "password": PASSWORD}})),
    )
    .await;
    let jake = assert_user(&body, "jake@jake.jake", "jake", Value::Null, Value::Null);
    let body = ok(&app, Method::GET, "/api/user", Some(&jake), None).await;
    assert_eq!(
        assert_user(&body, "jake@jake.jake", "jake", Value::Null, Value::Null),
        jake
    );

    // Settings page: submits every field, with the password left blank.
    let settings = json!({"user": {
        "image": "https://api.realworld.io/images/smiley-cyrus.jpeg",
        "username": "jake",
        "bio": "I work at statefarm",
        "email": "jake@jake.jake",
        "password": "",
    }});
    let body = ok(&app, Method::PUT, "/api/user", Some(&jake), Some(settings)).await;
    assert_user(
        &body,
        "jake@jake.jake",
        "jake",
        json!("I work at statefarm"),
        json!("https://api.realworld.io/images/smiley-cyrus.jpeg"),
    );

    // Editor: post a new article.
    let reply = app
        .post(
            "/api/articles",
            Some(&jake),
            json!({"article": {
                "title": "How to train your dragon",
                "description": "Ever wonder how?",
                "body": "You have to believe",
                "tagList": ["training", "dragons"],
            }}),
        )
        .await;
    reply.assert_status(StatusCode::CREATED);
    assert_keys(&reply.body, &["article"]);
    let article = &reply.body["article"];
    assert_article(article, ARTICLE_KEYS);
    assert_eq!(article["slug"], "how-to-train-your-dragon");
    assert_eq!(article["body"], "You have to believe");
    assert_eq!(article["tagList"], json!(["dragons", "training"]));
    assert_eq!(article["favorited"], false);
    assert_eq!(article["favoritesCount"], 0);
    assert_eq!(
        article["author"],
        json!({"username": "jake", "bio": "I work at statefarm", "image": "https://api.realworld.io/images/smiley-cyrus.jpeg", "following": false})
    );

    // Editor: change the title and body; the slug follows the title.
    app.clock.advance(std::time::Duration::from_secs(60));
    let body = ok(
        &app,
        Method::PUT,
        "/api/articles/how-to-train-your-dragon",
        Some(&jake),
        Some(
            json!({"article": {"title": "How to train your dragon 2", "body": "With two dragons"}}),
        ),
    )
    .await;
    let article = &body["article"];
    assert_article(article, ARTICLE_KEYS);
    assert_eq!(article["slug"], "how-to-train-your-dragon-2");
    assert_eq!(article["description"], "Ever wonder how?");
    assert_eq!(article["body"], "With two dragons");
    assert_ne!(article["updatedAt"], article["createdAt"]);
    let slug = "how-to-train-your-dragon-2";
    let path = format!("/api/articles/{slug}");
    assert_eq!(
        app.get("/api/articles/how-to-train-your-dragon", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Home page, anonymous: global feed and the tag cloud.
    let home = ok(
        &app,
        Method::GET,
        "/api/articles?limit=10&offset=0",
        None,
        None,
    )
    .await;
    assert_listed(&home, &[slug], 1);
    let tags = ok(&app, Method::GET, "/api/tags", None, None).await;
    assert_keys(&tags, &["tags"]);
    let mut tag_names: Vec<&str> = tags["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    tag_names.sort_unstable();
    assert_eq!(tag_names, ["dragons", "training"]);

    // Jane opens the article and its comments.
    let body = ok(&app, Method::GET, &path, Some(&jane), None).await;
    assert_article(&body["article"], ARTICLE_KEYS);
    assert_profile(&body["article"]["author"], "jake", false);
    let comments = ok(
        &app,
        Method::GET,
        &format!("{path}/comments"),
        Some(&jane),
        None,
    )
    .await;
    // `commentsCount` is Aerie's addition (comments come a page at a time); clients ignore it.
    assert_eq!(comments, json!({"comments": [], "commentsCount": 0}));

    // Jane favorites it.
    let reply = bodiless(&app, Method::POST, &format!("{path}/favorite"), &jane).await;
    reply.assert_status(StatusCode::OK);
    assert_article(&reply.body["article"], ARTICLE_KEYS);
    assert_eq!(reply.body["article"]["favorited"], true);
    assert_eq!(reply.body["article"]["favoritesCount"], 1);

    // Jane visits jake's profile and follows him.
    let body = ok(&app, Method::GET, "/api/profiles/jake", Some(&jane), None).await;
    assert_keys(&body, &["profile"]);
    assert_profile(&body["profile"], "jake", false);
    assert_eq!(body["profile"]["bio"], "I work at statefarm");
    let reply = bodiless(&app, Method::POST, "/api/profiles/jake/follow", &jane).await;
    reply.assert_status(StatusCode::OK);
    assert_keys(&reply.body, &["profile"]);
    assert_profile(&reply.body["profile"], "jake", true);

    // Profile page tabs: "My Articles" and "Favorited Articles".
    let mine = ok(
        &app,
        Method::GET,
        "/api/articles?author=jake&limit=5&offset=0",
        Some(&jane),
        None,
    )
    .await;
    assert_listed(&mine, &[slug], 1);
    let favorited = ok(
        &app,
        Method::GET,
        "/api/articles?favorited=jane&limit=5&offset=0",
        Some(&jane),
        None,
    )
    .await;
    assert_listed(&favorited, &[slug], 1);
    assert_eq!(favorited["articles"][0]["favorited"], true);

    // Jane's feed now has jake's article.
    let feed = ok(
        &app,
        Method::GET,
        "/api/articles/feed?limit=10&offset=0",
        Some(&jane),
        None,
    )
    .await;
    assert_listed(&feed, &[slug], 1);
    assert_eq!(feed["articles"][0]["favorited"], true);
    assert_eq!(feed["articles"][0]["favoritesCount"], 1);
    assert_profile(&feed["articles"][0]["author"], "jake", true);

    // Browse by tag.
    let by_tag = ok(
        &app,
        Method::GET,
        "/api/articles?tag=dragons&limit=10&offset=0",
        None,
        None,
    )
    .await;
    assert_listed(&by_tag, &[slug], 1);
    let other_tag = ok(
        &app,
        Method::GET,
        "/api/articles?tag=cats&limit=10&offset=0",
        None,
        None,
    )
    .await;
    assert_listed(&other_tag, &[], 0);

    // Jane comments; the comment comes back and is listed.
    let comment = ok(
        &app,
        Method::POST,
        &format!("{path}/comments"),
        Some(&jane),
        Some(json!({"comment": {"body": "Thank you so much!"}})),
    )
    .await;
    assert_keys(&comment, &["comment"]);
    let comment = &comment["comment"];
    assert_keys(
        comment,
        &["id", "createdAt", "updatedAt", "body", "bodyHtml", "author"],
    );
    assert!(comment["id"].is_i64(), "{comment}");
    assert_timestamp(&comment["createdAt"]);
    assert_timestamp(&comment["updatedAt"]);
    assert_eq!(comment["body"], "Thank you so much!");
    assert_profile(&comment["author"], "jane", false);
    let listed = ok(&app, Method::GET, &format!("{path}/comments"), None, None).await;
    assert_eq!(listed, json!({"comments": [comment], "commentsCount": 1}));
    let id = comment["id"].as_i64().expect("id");

    // Jane deletes her comment, unfavorites and unfollows.
    let reply = bodiless(
        &app,
        Method::DELETE,
        &format!("{path}/comments/{id}"),
        &jane,
    )
    .await;
    reply.assert_status(StatusCode::NO_CONTENT);
    assert_eq!(
        ok(&app, Method::GET, &format!("{path}/comments"), None, None).await,
        json!({"comments": [], "commentsCount": 0})
    );
    let reply = bodiless(&app, Method::DELETE, &format!("{path}/favorite"), &jane).await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.body["article"]["favorited"], false);
    assert_eq!(reply.body["article"]["favoritesCount"], 0);
    let reply = bodiless(&app, Method::DELETE, "/api/profiles/jake/follow", &jane).await;
    reply.assert_status(StatusCode::OK);
    assert_profile(&reply.body["profile"], "jake", false);
    let feed = ok(
        &app,
        Method::GET,
        "/api/articles/feed?limit=10&offset=0",
        Some(&jane),
        None,
    )
    .await;
    assert_listed(&feed, &[], 0);

    // Jake deletes the article: it, its tags and its listing are gone.
    let reply = bodiless(&app, Method::DELETE, &path, &jake).await;
    reply.assert_status(StatusCode::NO_CONTENT);
    assert_eq!(app.get(&path, None).await.status, StatusCode::NOT_FOUND);
    let home = ok(
        &app,
        Method::GET,
        "/api/articles?limit=10&offset=0",
        None,
        None,
    )
    .await;
    assert_listed(&home, &[], 0);
    assert_eq!(
        ok(&app, Method::GET, "/api/tags", None, None).await,
        json!({"tags": []})
    );
}

engine_tests!(a_realworld_front_end_session_works_end_to_end,);
