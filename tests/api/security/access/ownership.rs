//! Broken object-level authorization (attacks.md §4 Z1–Z4): nobody edits or deletes an
//! article or comment that is not theirs, and a comment id counts only under its own article.

use reqwest::StatusCode;
use serde_json::json;

use super::{comment, comment_ids, segment};
use crate::common::{Reply, TestApp, engine_tests};

#[track_caller]
fn assert_forbidden(reply: &Reply, case: &str) {
    assert_eq!(
        reply.status,
        StatusCode::FORBIDDEN,
        "{case}: {}",
        reply.body
    );
    assert_eq!(
        reply.body,
        serde_json::json!({"errors": {"access": ["is denied"]}}),
        "{case}"
    );
}

async fn another_user_cannot_edit_someone_elses_article(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let slug = app.create_article(&alice, "Alice writes", &["mine"]).await;
    let before = app.article(&slug, None).await;
    for change in [
        json!({"title": "Bob was here"}),
        json!({"body": "defaced"}),
        json!({"description": "defaced"}),
        json!({"tagList": ["spam"]}),
    ] {
        let reply = app
            .put(
                &format!("/api/articles/{slug}"),
                Some(&bob),
                json!({"article": change}),
            )
            .await;
        assert_forbidden(&reply, &change.to_string());
    }
    assert_eq!(
        app.article(&slug, None).await,
        before,
        "the article is unchanged"
    );
    assert_eq!(
        app.get("/api/articles/bob-was-here", None).await.status,
        StatusCode::NOT_FOUND
    );
    // Its author still can, so the 403 was about who asked.
    let reply = app
        .put(
            &format!("/api/articles/{slug}"),
            Some(&alice),
            json!({"article": {"body": "edited"}}),
        )
        .await;
    reply.assert_status(StatusCode::OK);
}

async fn another_user_cannot_delete_someone_elses_article(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let slug = app.create_article(&alice, "Keep me", &[]).await;
    let before = app.article(&slug, None).await;
    let reply = app
        .delete(&format!("/api/articles/{slug}"), Some(&bob))
        .await;
    assert_forbidden(&reply, "bob deletes alice's article");
    assert_eq!(app.article(&slug, None).await, before);
    let reply = app
        .delete(&format!("/api/articles/{slug}"), Some(&alice))
        .await;
    reply.assert_status(StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&format!("/api/articles/{slug}"), None).await.status,
        StatusCode::NOT_FOUND
    );
}

async fn another_user_cannot_delete_someone_elses_comment(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let slug = app.create_article(&alice, "Discussed", &[]).await;
    let by_alice = comment(&app, &alice, &slug, "author's note").await;
    let by_carol = comment(&app, &carol, &slug, "carol's view").await;
    for id in [by_alice, by_carol] {
        let reply = app
            .delete(&format!("/api/articles/{slug}/comments/{id}"), Some(&bob))
            .await;
        assert_forbidden(&reply, &format!("bob deletes comment {id}"));
    }
    // A commenter cannot delete the article author's comment either.
    let reply = app
        .delete(
            &format!("/api/articles/{slug}/comments/{by_alice}"),
            Some(&carol),
        )
        .await;
    assert_forbidden(&reply, "carol deletes alice's comment");
    let mut expected = vec![by_alice, by_carol];
    expected.sort_unstable();
    assert_eq!(
        comment_ids(&app, &slug).await,
        expected,
        "no comment was deleted"
    );
    assert_eq!(app.article(&slug, None).await["title"], "Discussed");
    // Carol may delete her own.
    let reply = app
        .delete(
            &format!("/api/articles/{slug}/comments/{by_carol}"),
            Some(&carol),
        )
        .await;
    reply.assert_status(StatusCode::NO_CONTENT);
    assert_eq!(comment_ids(&app, &slug).await, vec![by_alice]);
}

async fn article_author_can_delete_a_comment_by_someone_else(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let slug = app.create_article(&alice, "Moderated", &[]).await;
    let spam = comment(&app, &bob, &slug, "buy now").await;
    let kept = comment(&app, &bob, &slug, "a fair point").await;
    let reply = app
        .delete(
            &format!("/api/articles/{slug}/comments/{spam}"),
            Some(&alice),
        )
        .await;
    reply.assert_status(StatusCode::NO_CONTENT);
    assert_eq!(comment_ids(&app, &slug).await, vec![kept]);
    // ...but only on their own article: bob's comment on bob's article is out of reach.
    let other = app.create_article(&bob, "Bob's own", &[]).await;
    let on_bobs = comment(&app, &bob, &other, "mine").await;
    let reply = app
        .delete(
            &format!("/api/articles/{other}/comments/{on_bobs}"),
            Some(&alice),
        )
        .await;
    assert_forbidden(&reply, "alice deletes a comment on bob's article");
    assert_eq!(comment_ids(&app, &other).await, vec![on_bobs]);
}

async fn comment_id_under_another_articles_slug_is_not_found(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let on_x = app.create_article(&alice, "Article X", &[]).await;
    let on_y = app.create_article(&bob, "Article Y", &[]).await;
    let id = comment(&app, &alice, &on_x, "on X").await;
    // Bob owns Y, so "article author may delete" must not extend to X's comment via Y.
    let reply = app
        .delete(&format!("/api/articles/{on_y}/comments/{id}"), Some(&bob))
        .await;
    reply.assert_status(StatusCode::NOT_FOUND);
    // Not even the comment's own author reaches it through the wrong parent.
    let reply = app
        .delete(&format!("/api/articles/{on_y}/comments/{id}"), Some(&alice))
        .await;
    reply.assert_status(StatusCode::NOT_FOUND);
    assert_eq!(comment_ids(&app, &on_x).await, vec![id]);
}

async fn non_numeric_comment_id_is_not_found(app: TestApp) {
    let alice = app.register("alice").await;
    let slug = app.create_article(&alice, "Numbers", &[]).await;
    let id = comment(&app, &alice, &slug, "only one").await;
    for bad in [
        "abc",
        "1 OR 1=1",
        "-1",
        "0",
        "1.0",
        "1e1",
        "0x1",
        " 1",
        "99999999999999999999",
        "%00",
        "1;",
        &format!("{id}abc"),
    ] {
        let reply = app
            .delete(
                &format!("/api/articles/{slug}/comments/{}", segment(bad)),
                Some(&alice),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{bad:?}: {}",
            reply.body
        );
        assert!(reply.body["errors"].is_object(), "{bad:?}: {}", reply.body);
    }
    assert_eq!(comment_ids(&app, &slug).await, vec![id]);
}

async fn enumerating_comment_ids_deletes_only_your_own(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let slug = app.create_article(&alice, "Busy thread", &[]).await;
    let other = app.create_article(&alice, "Other thread", &[]).await;
    let mut alices = Vec::new();
    for i in 0..3 {
        alices.push(comment(&app, &alice, &slug, &format!("alice {i}")).await);
    }
    let bobs = comment(&app, &bob, &slug, "bob's").await;
    let elsewhere = comment(&app, &alice, &other, "elsewhere").await;
    let mut deleted = Vec::new();
    for id in 1..=30 {
        let reply = app
            .delete(&format!("/api/articles/{slug}/comments/{id}"), Some(&bob))
            .await;
        match reply.status {
            StatusCode::NO_CONTENT => deleted.push(id),
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => {}
            other => panic!("id {id}: unexpected {other} {}", reply.body),
        }
    }
    assert_eq!(deleted, vec![bobs], "only bob's own comment went");
    assert_eq!(comment_ids(&app, &slug).await, alices);
    assert_eq!(comment_ids(&app, &other).await, vec![elsewhere]);
}

engine_tests!(
    another_user_cannot_edit_someone_elses_article,
    another_user_cannot_delete_someone_elses_article,
    another_user_cannot_delete_someone_elses_comment,
    article_author_can_delete_a_comment_by_someone_else,
    comment_id_under_another_articles_slug_is_not_found,
    non_numeric_comment_id_is_not_found,
    enumerating_comment_ids_deletes_only_your_own,
);
