//! No token, a malformed one, the wrong scheme, a token in the query string or an oversized
//! header (attacks.md §1, §2 S12): the same 401 everywhere a login is needed.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{
    assert_no_credential, assert_unauthorized, attacker_key, b64, me, me_with_header, server_key,
    sign, victim,
};
use crate::common::{self, TestApp, engine_tests};

async fn every_authenticated_route_refuses_a_missing_token(app: TestApp) {
    let alice = app.register("alice").await;
    app.register("bob").await;
    let slug = app.create_article(&alice, "Guarded", &["x"]).await;
    let comment = app
        .post(
            &format!("/api/articles/{slug}/comments"),
            Some(&alice),
            json!({"comment": {"body": "mine"}}),
        )
        .await;
    let comment_id = comment.body["comment"]["id"].as_i64().expect("comment id");
    let article = json!({"article": {"title": "t", "description": "d", "body": "b"}});
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/api/user".into(), None),
        (
            Method::PUT,
            "/api/user".into(),
            Some(json!({"user": {"bio": "x"}})),
        ),
        (Method::POST, "/api/profiles/bob/follow".into(), None),
        (Method::DELETE, "/api/profiles/bob/follow".into(), None),
        (Method::GET, "/api/articles/feed".into(), None),
        (Method::POST, "/api/articles".into(), Some(article.clone())),
        (Method::PUT, format!("/api/articles/{slug}"), Some(article)),
        (Method::DELETE, format!("/api/articles/{slug}"), None),
        (
            Method::POST,
            format!("/api/articles/{slug}/comments"),
            Some(json!({"comment": {"body": "x"}})),
        ),
        (
            Method::DELETE,
            format!("/api/articles/{slug}/comments/{comment_id}"),
            None,
        ),
        (Method::POST, format!("/api/articles/{slug}/favorite"), None),
        (
            Method::DELETE,
            format!("/api/articles/{slug}/favorite"),
            None,
        ),
    ];
    for (method, path, body) in routes {
        let reply = app.request(method.clone(), &path, None, body.clone()).await;
        assert_no_credential(&reply, &format!("{method} {path} without a token"));
        let reply = app
            .request(method.clone(), &path, Some("not-a-token"), body)
            .await;
        assert_unauthorized(&reply, &format!("{method} {path} with a malformed token"));
    }
    // Nothing happened: the article and the comment are still there, unfavorited.
    let article = app.get(&format!("/api/articles/{slug}"), None).await;
    assert_eq!(article.body["article"]["title"], "Guarded");
    assert_eq!(article.body["article"]["favoritesCount"], 0);
    let comments = app
        .get(&format!("/api/articles/{slug}/comments"), None)
        .await;
    assert_eq!(comments.body["comments"].as_array().map(Vec::len), Some(1));
}

async fn bad_token_on_optional_auth_routes_is_not_treated_as_anonymous(app: TestApp) {
    let bob = victim(&app, "bob").await;
    let slug = app.create_article(&bob.token, "Public", &[]).await;
    let forged = sign(&attacker_key(), &bob.header, &bob.claims);
    for path in [
        "/api/articles".to_owned(),
        format!("/api/articles/{slug}"),
        format!("/api/articles/{slug}/comments"),
        "/api/profiles/bob".to_owned(),
    ] {
        assert_eq!(
            app.get(&path, None).await.status,
            StatusCode::OK,
            "{path} is public"
        );
        assert_unauthorized(&app.get(&path, Some(&forged)).await, &path);
        assert_unauthorized(&app.get(&path, Some("garbage")).await, &path);
    }
}

async fn malformed_tokens_are_refused(app: TestApp) {
    let bob = victim(&app, "bob").await;
    let (h, p) = bob.token.split_at(bob.token.find('.').expect("dot"));
    let cases = [
        "x".to_owned(),
        "a.b.c".to_owned(),
        "..".to_owned(),
        "...".to_owned(),
        format!("{}.{}", b64(b"{"), b64(b"{}")),
        format!("{}.{}.", b64(b"not json"), b64(b"{}")),
        format!("{h}{p}.extra"),
        format!("{}.{}", bob.token, "more"),
        bob.token.replace('.', ""),
        bob.token.to_uppercase(),
        format!("{}=", bob.token),
        bob.token.chars().rev().collect(),
    ];
    for token in cases {
        assert_unauthorized(&me(&app, &token).await, &token);
    }
}

async fn scheme_confusion_is_refused(app: TestApp) {
    let bob = victim(&app, "bob").await;
    let token = &bob.token;
    for header in [
        format!("token {token}"),
        format!("TOKEN {token}"),
        format!("bearer {token}"),
        format!("Token  {token}"),
        format!("Token {token} extra"),
        format!("Token\t{token}"),
        format!("Token{token}"),
        format!("Basic {token}"),
        format!("JWT {token}"),
        token.clone(),
        "Token".to_owned(),
        "Token ".to_owned(),
    ] {
        assert_unauthorized(&me_with_header(&app, &header).await, &header);
    }
    // Two Authorization headers, even when both are valid, are ambiguous.
    let request = app
        .client
        .get(app.url("/api/user"))
        .header("Authorization", format!("Token {token}"))
        .header("Authorization", format!("Token {token}"));
    let reply = common::read(request.send().await.expect("sent")).await;
    assert_unauthorized(&reply, "two Authorization headers");
}

async fn token_in_the_query_string_is_ignored(app: TestApp) {
    let bob = victim(&app, "bob").await;
    for name in ["token", "access_token", "jwt", "auth", "authorization"] {
        let reply = app
            .get(&format!("/api/user?{name}={}", bob.token), None)
            .await;
        assert_no_credential(&reply, name);
    }
    // Nor from a cookie or a custom header.
    for (header, value) in [
        ("Cookie", format!("token={}", bob.token)),
        ("X-Access-Token", bob.token.clone()),
        ("X-Auth-Token", bob.token.clone()),
    ] {
        let request = app.client.get(app.url("/api/user")).header(header, value);
        let reply = common::read(request.send().await.expect("sent")).await;
        assert_no_credential(&reply, header);
    }
}

async fn oversized_authorization_header_is_refused_without_a_crash(app: TestApp) {
    let bob = victim(&app, "bob").await;
    let huge = format!("Token {}", "A".repeat(64 * 1024));
    let request = app
        .client
        .get(app.url("/api/user"))
        .header("Authorization", huge);
    let reply = common::read(request.send().await.expect("sent")).await;
    assert!(
        matches!(
            reply.status,
            StatusCode::BAD_REQUEST
                | StatusCode::UNAUTHORIZED
                | StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        ),
        "{}",
        reply.status
    );
    // A correctly signed token with a 64 KB `sub` is refused too, before any parsing.
    let mut claims = bob.claims.clone();
    claims["sub"] = json!("1".repeat(64 * 1024));
    let forged = sign(&server_key(&app), &bob.header, &claims);
    let reply = me(&app, &forged).await;
    assert!(
        matches!(
            reply.status,
            StatusCode::BAD_REQUEST
                | StatusCode::UNAUTHORIZED
                | StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        ),
        "{}",
        reply.status
    );
    // The server is still serving.
    assert_eq!(me(&app, &bob.token).await.status, StatusCode::OK);
}

engine_tests!(
    every_authenticated_route_refuses_a_missing_token,
    bad_token_on_optional_auth_routes_is_not_treated_as_anonymous,
    malformed_tokens_are_refused,
    scheme_confusion_is_refused,
    token_in_the_query_string_is_ignored,
    oversized_authorization_header_is_refused_without_a_crash,
);
