//! Comments on articles: add, list (oldest first), delete, on both engines.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{PROFILE_KEYS, TestApp, assert_keys, assert_timestamp, engine_tests};

/// A Comment object: the contract's fields plus the rendered `bodyHtml`.
const COMMENT_KEYS: &[&str] = &["id", "createdAt", "updatedAt", "body", "bodyHtml", "author"];

async fn list_comments(app: &TestApp, slug: &str, token: Option<&str>) -> Vec<Value> {
    let reply = app
        .get(&format!("/api/articles/{slug}/comments"), token)
        .await;
    reply.assert_status(StatusCode::OK);
    assert_keys(&reply.body, &["comments", "commentsCount"]);
    reply.body["comments"]
        .as_array()
        .expect("comments array")
        .clone()
}

fn bodies(comments: &[Value]) -> Vec<&str> {
    comments
        .iter()
        .map(|c| c["body"].as_str().expect("body"))
        .collect()
}

async fn add_comment_returns_200_with_the_comment(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let slug = app.create_article(&alice, "Discussed", &[]).await;
    app.clock.advance(Duration::from_millis(1234));
    let comment = app.add_comment(&bob, &slug, "Thank you so much!").await;
    assert_keys(&comment, COMMENT_KEYS);
    assert!(comment["id"].is_i64(), "id is an integer: {comment}");
    assert_eq!(comment["body"], "Thank you so much!");
    assert_eq!(comment["bodyHtml"], "<p>Thank you so much!</p>\n");
    assert_timestamp(&comment["createdAt"]);
    assert_timestamp(&comment["updatedAt"]);
    assert_eq!(comment["createdAt"], app.now_timestamp().as_str());
    assert_eq!(comment["updatedAt"], app.now_timestamp().as_str());
    assert_keys(&comment["author"], PROFILE_KEYS);
    assert_eq!(
        comment["author"],
        json!({"username": "bob", "bio": null, "image": null, "following": false})
    );
}

async fn list_comments_returns_them_oldest_first(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let slug = app.create_article(&alice, "Thread", &[]).await;
    let first = app.add_comment(&bob, &slug, "first").await;
    app.clock.advance(Duration::from_secs(1));
    let second = app.add_comment(&alice, &slug, "second").await;
    app.clock.advance(Duration::from_secs(1));
    let third = app.add_comment(&bob, &slug, "third").await;

    let listed = list_comments(&app, &slug, None).await;
    assert_eq!(bodies(&listed), ["first", "second", "third"]);
    assert_eq!(listed, [first, second, third]);
    for comment in &listed {
        assert_keys(comment, COMMENT_KEYS);
    }
}

async fn comments_added_in_the_same_millisecond_keep_their_order(app: TestApp) {
    let alice = app.register("alice").await;
    let slug = app.create_article(&alice, "Fast thread", &[]).await;
    for body in ["one", "two", "three", "four"] {
        app.add_comment(&alice, &slug, body).await;
    }
    let listed = list_comments(&app, &slug, Some(&alice)).await;
    assert_eq!(bodies(&listed), ["one", "two", "three", "four"]);
}

async fn list_comments_is_empty_for_a_new_article(app: TestApp) {
    let alice = app.register("alice").await;
    let slug = app.create_article(&alice, "Quiet", &[]).await;
    assert_eq!(list_comments(&app, &slug, None).await, Vec::<Value>::new());
}

async fn comments_belong_to_their_article_only(app: TestApp) {
    let alice = app.register("alice").await;
    let one = app.create_article(&alice, "One", &[]).await;
    let two = app.create_article(&alice, "Two", &[]).await;
    app.add_comment(&alice, &one, "on one").await;
    app.add_comment(&alice, &two, "on two").await;
    assert_eq!(bodies(&list_comments(&app, &one, None).await), ["on one"]);
    assert_eq!(bodies(&list_comments(&app, &two, None).await), ["on two"]);
}

async fn comment_author_shows_following_for_the_viewer(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let slug = app.create_article(&alice, "Followed commenter", &[]).await;
    app.add_comment(&bob, &slug, "hello").await;
    let reply = app
        .request(Method::POST, "/api/profiles/bob/follow", Some(&alice), None)
        .await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(
        list_comments(&app, &slug, Some(&alice)).await[0]["author"]["following"],
        true
    );
    assert_eq!(
        list_comments(&app, &slug, None).await[0]["author"]["following"],
        false
    );
    assert_eq!(
        list_comments(&app, &slug, Some(&bob)).await[0]["author"]["following"],
        false
    );
}

async fn delete_own_comment_returns_204_and_it_is_gone(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let slug = app.create_article(&alice, "Retracted", &[]).await;
    let keep = app.add_comment(&bob, &slug, "keep").await;
    let drop = app.add_comment(&bob, &slug, "drop").await;
    let id = drop["id"].as_i64().expect("id");
    let reply = app
        .delete(&format!("/api/articles/{slug}/comments/{id}"), Some(&bob))
        .await;
    reply.assert_status(StatusCode::NO_CONTENT);
    assert_eq!(reply.body, Value::Null);
    assert_eq!(list_comments(&app, &slug, None).await, [keep]);
    let again = app
        .delete(&format!("/api/articles/{slug}/comments/{id}"), Some(&bob))
        .await;
    again.assert_status(StatusCode::NOT_FOUND);
}

async fn delete_comment_with_json_content_type_and_no_body_is_accepted(app: TestApp) {
    let alice = app.register("alice").await;
    let slug = app.create_article(&alice, "Client deletes", &[]).await;
    let comment = app.add_comment(&alice, &slug, "bye").await;
    let id = comment["id"].as_i64().expect("id");
    let reply = app
        .send_without_body(
            Method::DELETE,
            &format!("/api/articles/{slug}/comments/{id}"),
            Some(&alice),
        )
        .await;
    reply.assert_status(StatusCode::NO_CONTENT);
    assert_eq!(list_comments(&app, &slug, None).await, Vec::<Value>::new());
}

async fn article_author_may_delete_a_readers_comment(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let slug = app.create_article(&alice, "Moderated by author", &[]).await;
    let comment = app.add_comment(&bob, &slug, "off topic").await;
    let id = comment["id"].as_i64().expect("id");
    let reply = app
        .delete(&format!("/api/articles/{slug}/comments/{id}"), Some(&alice))
        .await;
    reply.assert_status(StatusCode::NO_CONTENT);
    assert_eq!(list_comments(&app, &slug, None).await, Vec::<Value>::new());
}

async fn comment_body_html_is_sanitized(app: TestApp) {
    let alice = app.register("alice").await;
    let slug = app.create_article(&alice, "Markdown comments", &[]).await;
    let source =
        "*nice* <script>alert(1)</script> <img src=x onerror=alert(1)> [x](javascript:alert(1))";
    let comment = app.add_comment(&alice, &slug, source).await;
    assert_eq!(comment["body"], source);
    let html = comment["bodyHtml"]
        .as_str()
        .expect("bodyHtml")
        .to_ascii_lowercase();
    assert!(html.contains("<em>nice</em>"), "{html}");
    for needle in ["<script", "onerror", "javascript:"] {
        assert!(!html.contains(needle), "{needle} survived in {html}");
    }
    assert_eq!(list_comments(&app, &slug, None).await[0]["body"], source);
}

async fn deleting_an_article_deletes_its_comments(app: TestApp) {
    let alice = app.register("alice").await;
    let slug = app.create_article(&alice, "Doomed", &[]).await;
    app.add_comment(&alice, &slug, "gone soon").await;
    let reply = app
        .delete(&format!("/api/articles/{slug}"), Some(&alice))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let comments = app
        .get(&format!("/api/articles/{slug}/comments"), None)
        .await;
    comments.assert_status(StatusCode::NOT_FOUND);
    // A new article with the same title gets the slug back, without the old comments.
    let again = app.create_article(&alice, "Doomed", &[]).await;
    assert_eq!(again, slug);
    assert_eq!(list_comments(&app, &again, None).await, Vec::<Value>::new());
}

engine_tests!(
    add_comment_returns_200_with_the_comment,
    list_comments_returns_them_oldest_first,
    comments_added_in_the_same_millisecond_keep_their_order,
    list_comments_is_empty_for_a_new_article,
    comments_belong_to_their_article_only,
    comment_author_shows_following_for_the_viewer,
    delete_own_comment_returns_204_and_it_is_gone,
    delete_comment_with_json_content_type_and_no_body_is_accepted,
    article_author_may_delete_a_readers_comment,
    comment_body_html_is_sanitized,
    deleting_an_article_deletes_its_comments,
);
