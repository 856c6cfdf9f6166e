//! Public profiles and follows, on both engines.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::{PROFILE_KEYS, TestApp, assert_keys, engine_tests};

async fn profile(app: &TestApp, username: &str, token: Option<&str>) -> serde_json::Value {
    let reply = app.get(&format!("/api/profiles/{username}"), token).await;
    reply.assert_status(StatusCode::OK);
    assert_keys(&reply.body, &["profile"]);
    assert_keys(&reply.body["profile"], PROFILE_KEYS);
    reply.body["profile"].clone()
}

async fn get_profile_anonymously(app: TestApp) {
    app.register("alice").await;
    assert_eq!(
        profile(&app, "alice", None).await,
        json!({"username": "alice", "bio": null, "image": null, "following": false})
    );
}

async fn get_profile_shows_bio_and_image(app: TestApp) {
    let alice = app.register("alice").await;
    let reply = app
        .put("/api/user", Some(&alice), json!({"user": {"bio": "I work at statefarm", "image": "https://cdn.example.com/alice.png"}}))
        .await;
    reply.assert_status(StatusCode::OK);
    let bob = app.register("bob").await;
    assert_eq!(
        profile(&app, "alice", Some(&bob)).await,
        json!({"username": "alice", "bio": "I work at statefarm", "image": "https://cdn.example.com/alice.png", "following": false})
    );
}

async fn get_own_profile_authenticated(app: TestApp) {
    let alice = app.register("alice").await;
    assert_eq!(
        profile(&app, "alice", Some(&alice)).await,
        json!({"username": "alice", "bio": null, "image": null, "following": false})
    );
}

async fn unknown_profile_is_404(app: TestApp) {
    app.register("alice").await;
    let reply = app.get("/api/profiles/nobody", None).await;
    reply.assert_status(StatusCode::NOT_FOUND);
    assert!(reply.body["errors"].is_object(), "{}", reply.body);
}

async fn follow_returns_the_profile_with_following_true(app: TestApp) {
    app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let reply = app
        .request(Method::POST, "/api/profiles/alice/follow", Some(&bob), None)
        .await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(
        reply.body,
        json!({"profile": {"username": "alice", "bio": null, "image": null, "following": true}})
    );
    assert_eq!(profile(&app, "alice", Some(&bob)).await["following"], true);
    // `following` is the viewer's own relation, not anyone else's.
    assert_eq!(profile(&app, "alice", None).await["following"], false);
    assert_eq!(
        profile(&app, "alice", Some(&carol)).await["following"],
        false
    );
    assert_eq!(profile(&app, "bob", Some(&bob)).await["following"], false);
}

async fn following_twice_is_idempotent(app: TestApp) {
    app.register("alice").await;
    let bob = app.register("bob").await;
    for _ in 0..2 {
        let reply = app
            .request(Method::POST, "/api/profiles/alice/follow", Some(&bob), None)
            .await;
        reply.assert_status(StatusCode::OK);
        assert_eq!(reply.body["profile"]["following"], true);
    }
    let unfollow = app.delete("/api/profiles/alice/follow", Some(&bob)).await;
    assert_eq!(unfollow.body["profile"]["following"], false);
    assert_eq!(profile(&app, "alice", Some(&bob)).await["following"], false);
}

async fn unfollow_returns_the_profile_with_following_false(app: TestApp) {
    app.register("alice").await;
    let bob = app.register("bob").await;
    app.request(Method::POST, "/api/profiles/alice/follow", Some(&bob), None)
        .await;
    let reply = app.delete("/api/profiles/alice/follow", Some(&bob)).await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(
        reply.body,
        json!({"profile": {"username": "alice", "bio": null, "image": null, "following": false}})
    );
    assert_eq!(profile(&app, "alice", Some(&bob)).await["following"], false);
    // Unfollowing someone not followed is not an error.
    let again = app.delete("/api/profiles/alice/follow", Some(&bob)).await;
    again.assert_status(StatusCode::OK);
    assert_eq!(again.body["profile"]["following"], false);
}

async fn follow_and_unfollow_with_json_content_type_and_no_body_are_accepted(app: TestApp) {
    app.register("alice").await;
    let bob = app.register("bob").await;
    let reply = app
        .send_without_body(Method::POST, "/api/profiles/alice/follow", Some(&bob))
        .await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.body["profile"]["following"], true);
    let reply = app
        .send_without_body(Method::DELETE, "/api/profiles/alice/follow", Some(&bob))
        .await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.body["profile"]["following"], false);
}

async fn follow_ignores_a_request_body(app: TestApp) {
    app.register("alice").await;
    let bob = app.register("bob").await;
    let reply = app
        .post(
            "/api/profiles/alice/follow",
            Some(&bob),
            json!({"user": {"email": "alice@example.com"}}),
        )
        .await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.body["profile"]["username"], "alice");
    assert_eq!(reply.body["profile"]["following"], true);
}

async fn profiles_never_contain_email_role_or_id(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let slug = app.create_article(&alice, "Who wrote this", &[]).await;
    let comment = app
        .post(
            &format!("/api/articles/{slug}/comments"),
            Some(&alice),
            json!({"comment": {"body": "me"}}),
        )
        .await;
    comment.assert_status(StatusCode::OK);
    let follow = app
        .request(Method::POST, "/api/profiles/alice/follow", Some(&bob), None)
        .await;

    let mut profiles = vec![
        app.get("/api/profiles/alice", None).await.body["profile"].clone(),
        app.get("/api/profiles/alice", Some(&bob)).await.body["profile"].clone(),
        follow.body["profile"].clone(),
        app.get(&format!("/api/articles/{slug}"), Some(&bob))
            .await
            .body["article"]["author"]
            .clone(),
        app.get("/api/articles", None).await.body["articles"][0]["author"].clone(),
        app.get(&format!("/api/articles/{slug}/comments"), None)
            .await
            .body["comments"][0]["author"]
            .clone(),
    ];
    profiles.push(comment.body["comment"]["author"].clone());
    for shown in profiles {
        assert_keys(&shown, PROFILE_KEYS);
        assert_eq!(shown["username"], "alice");
        let text = shown.to_string();
        assert!(!text.contains("alice@example.com"), "{text}");
    }
}

engine_tests!(
    get_profile_anonymously,
    get_profile_shows_bio_and_image,
    get_own_profile_authenticated,
    unknown_profile_is_404,
    follow_returns_the_profile_with_following_true,
    following_twice_is_idempotent,
    unfollow_returns_the_profile_with_following_false,
    follow_and_unfollow_with_json_content_type_and_no_body_are_accepted,
    follow_ignores_a_request_body,
    profiles_never_contain_email_role_or_id,
);
