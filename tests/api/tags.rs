//! The tag list (`GET /api/tags`), on both engines.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{Engine, TestApp, assert_keys, engine_tests};

async fn tags(app: &TestApp, token: Option<&str>) -> Vec<String> {
    let reply = app.get("/api/tags", token).await;
    reply.assert_status(StatusCode::OK);
    assert_keys(&reply.body, &["tags"]);
    reply.body["tags"]
        .as_array()
        .expect("tags array")
        .iter()
        .map(|t| t.as_str().expect("tag is a string").to_owned())
        .collect()
}

/// The tags in a stable order, after checking that none repeats.
fn sorted(mut list: Vec<String>) -> Vec<String> {
    let count = list.len();
    list.sort();
    list.dedup();
    assert_eq!(list.len(), count, "a tag is listed twice: {list:?}");
    list
}

async fn tags_is_empty_without_articles(app: TestApp) {
    let reply = app.get("/api/tags", None).await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.body, json!({"tags": []}));
}

async fn tags_lists_each_tag_in_use_once(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    app.create_article(&alice, "One", &["rust", "web"]).await;
    app.create_article(&bob, "Two", &["web", "databases"]).await;
    app.create_article(&bob, "Three", &[]).await;
    let expected = ["databases", "rust", "web"];
    assert_eq!(sorted(tags(&app, None).await), expected);
    assert_eq!(sorted(tags(&app, Some(&alice)).await), expected);
}

async fn tags_keep_their_case_and_spelling(app: TestApp) {
    let alice = app.register("alice").await;
    app.create_article(&alice, "Cased", &["Rust", "C++", "dragons and more"])
        .await;
    assert_eq!(
        sorted(tags(&app, None).await),
        ["C++", "Rust", "dragons and more"]
    );
}

async fn tags_no_longer_in_use_disappear(app: TestApp) {
    let alice = app.register("alice").await;
    let edited = app
        .create_article(&alice, "Edited", &["old", "shared"])
        .await;
    let deleted = app
        .create_article(&alice, "Deleted", &["doomed", "shared"])
        .await;
    assert_eq!(sorted(tags(&app, None).await), ["doomed", "old", "shared"]);

    let reply = app
        .put(
            &format!("/api/articles/{edited}"),
            Some(&alice),
            json!({"article": {"tagList": ["new", "shared"]}}),
        )
        .await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(sorted(tags(&app, None).await), ["doomed", "new", "shared"]);

    let reply = app
        .delete(&format!("/api/articles/{deleted}"), Some(&alice))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(sorted(tags(&app, None).await), ["new", "shared"]);
}

/// Issue 22.4: 100,800 tags made one anonymous call 13 MB. The list holds at most the
/// configured number, the most used first, ties by name, however many tags are stored.
async fn tag_list_is_bounded_and_ordered_by_popularity(engine: Engine) {
    let app = TestApp::spawn_with(engine, &[("AERIE_TAGS_LISTED", "3")]).await;
    let alice = app.register("alice").await;
    app.create_article(&alice, "One", &["a", "b", "c", "d", "e", "f"])
        .await;
    app.create_article(&alice, "Two", &["c", "d", "e"]).await;
    let third = app.create_article(&alice, "Three", &["e", "d"]).await;
    assert_eq!(tags(&app, None).await, ["d", "e", "c"]);

    // Counts follow edits and deletions: "d" and "e" fall back to two articles each.
    let reply = app
        .delete(&format!("/api/articles/{third}"), Some(&alice))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    app.create_article(&alice, "Four", &["f", "b"]).await;
    app.create_article(&alice, "Five", &["f"]).await;
    assert_eq!(tags(&app, None).await, ["f", "b", "c"]);
}

engine_tests!(
    tag_list_is_bounded_and_ordered_by_popularity,
    tags_is_empty_without_articles,
    tags_lists_each_tag_in_use_once,
    tags_keep_their_case_and_spelling,
    tags_no_longer_in_use_disappear,
);
