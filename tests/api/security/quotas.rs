//! Per-user quotas (issue 22.4): one account filled about 1 GB an hour within the rate
//! limits. Each quota is tested at a small configured value; standing limits answer 422,
//! daily budgets 429 with `Retry-After`, both naming the quota.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{Engine, Reply, TestApp, engine_tests, token_of};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

async fn post_article(app: &TestApp, token: &str, title: &str, body: &str, tags: &[&str]) -> Reply {
    let article = json!({"title": title, "description": "d", "body": body, "tagList": tags});
    app.post("/api/articles", Some(token), json!({ "article": article }))
        .await
}

#[track_caller]
fn assert_quota(reply: &Reply, status: StatusCode, quota: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    // Read as "quota of 2 articles per user is reached".
    assert_eq!(reply.error_on("quota"), Some(quota), "{}", reply.body);
    let retry_after = reply.headers.get("retry-after");
    if status == StatusCode::TOO_MANY_REQUESTS {
        let secs: u64 = retry_after
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("Retry-After in seconds");
        assert!((1..=DAY.as_secs()).contains(&secs), "{secs}");
    } else {
        assert!(retry_after.is_none());
    }
}

async fn articles_beyond_the_per_user_quota_are_refused(engine: Engine) {
    let app = TestApp::spawn_with(engine, &[("AERIE_QUOTA_ARTICLES_PER_USER", "2")]).await;
    let alice = app.register("alice").await;
    let first = app.create_article(&alice, "One", &[]).await;
    app.create_article(&alice, "Two", &[]).await;
    let refused = post_article(&app, &alice, "Three", "b", &[]).await;
    assert_quota(
        &refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "of 2 articles per user is reached",
    );

    // Administrators are held to it too.
    app.set_role("alice", "admin").await;
    let admin = token_of(&app.login_user("alice").await);
    let refused = post_article(&app, &admin, "Three", "b", &[]).await;
    assert_quota(
        &refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "of 2 articles per user is reached",
    );

    let bob = app.register("bob").await;
    app.create_article(&bob, "Bob's", &[]).await;
    let reply = app
        .delete(&format!("/api/articles/{first}"), Some(&alice))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    app.create_article(&alice, "Three", &[]).await;
}

async fn tag_lists_longer_than_the_quota_are_refused(engine: Engine) {
    let app = TestApp::spawn_with(engine, &[("AERIE_QUOTA_TAGS_PER_ARTICLE", "3")]).await;
    let alice = app.register("alice").await;
    let four = ["a", "b", "c", "d"];
    let refused = post_article(&app, &alice, "Tagged", "b", &four).await;
    refused.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        refused.error_on("tagList"),
        Some("has too many tags (maximum is 3)")
    );
    // The list counts as sent, duplicates too: the published `maxItems` is the quota, so a
    // list longer than it is refused whatever it would shrink to (a schema-driven fuzzer
    // found four tags accepted under a `maxItems` of three).
    let repeated = post_article(&app, &alice, "Tagged", "b", &["a", "b", "c", "a"]).await;
    repeated.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        repeated.error_on("tagList"),
        Some("has too many tags (maximum is 3)")
    );
    let slug = app.create_article(&alice, "Tagged", &["a", "b", "c"]).await;
    let edit = json!({"article": {"tagList": ["c", "b", "a", "a"]}});
    let refused = app
        .put(&format!("/api/articles/{slug}"), Some(&alice), edit)
        .await;
    refused.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.error_on("tagList").is_some(), "{}", refused.body);
    assert_eq!(
        app.article(&slug, None).await["tagList"],
        json!(["a", "b", "c"])
    );
}

async fn comments_beyond_the_daily_quota_wait_for_the_window(engine: Engine) {
    let app = TestApp::spawn_with(engine, &[("AERIE_QUOTA_COMMENTS_PER_DAY", "2")]).await;
    let alice = app.register("alice").await;
    let slug = app.create_article(&alice, "Discussed", &[]).await;
    app.add_comment(&alice, &slug, "one").await;
    app.tick();
    app.add_comment(&alice, &slug, "two").await;
    let path = format!("/api/articles/{slug}/comments");
    let third = json!({"comment": {"body": "three"}});
    let refused = app.post(&path, Some(&alice), third.clone()).await;
    assert_quota(
        &refused,
        StatusCode::TOO_MANY_REQUESTS,
        "of 2 comments per day is reached",
    );

    // A day after the first comment it leaves the window: one more fits, not two.
    app.clock.advance(DAY - Duration::from_secs(1));
    let alice = token_of(&app.login_user("alice").await);
    app.add_comment(&alice, &slug, "three").await;
    let refused = app.post(&path, Some(&alice), third).await;
    assert_quota(
        &refused,
        StatusCode::TOO_MANY_REQUESTS,
        "of 2 comments per day is reached",
    );
}

async fn body_bytes_beyond_the_daily_quota_are_refused(engine: Engine) {
    let app = TestApp::spawn_with(engine, &[("AERIE_QUOTA_BODY_BYTES_PER_DAY", "2500")]).await;
    let alice = app.register("alice").await;
    let kilobyte = "é".repeat(500); // 1000 bytes, 500 characters: bytes are counted
    post_article(&app, &alice, "One", &kilobyte, &[])
        .await
        .assert_status(StatusCode::CREATED);
    post_article(&app, &alice, "Two", &kilobyte, &[])
        .await
        .assert_status(StatusCode::CREATED);
    let refused = post_article(&app, &alice, "Three", &kilobyte, &[]).await;
    assert_quota(
        &refused,
        StatusCode::TOO_MANY_REQUESTS,
        "of 2500 bytes of bodies per day is reached",
    );
    let comment = json!({"comment": {"body": kilobyte}});
    let refused = app
        .post("/api/articles/one/comments", Some(&alice), comment)
        .await;
    assert_quota(
        &refused,
        StatusCode::TOO_MANY_REQUESTS,
        "of 2500 bytes of bodies per day is reached",
    );

    app.clock.advance(DAY);
    let alice = token_of(&app.login_user("alice").await);
    post_article(&app, &alice, "Three", &kilobyte, &[])
        .await
        .assert_status(StatusCode::CREATED);
}

engine_tests!(
    articles_beyond_the_per_user_quota_are_refused,
    tag_lists_longer_than_the_quota_are_refused,
    comments_beyond_the_daily_quota_wait_for_the_window,
    body_bytes_beyond_the_daily_quota_are_refused,
);
