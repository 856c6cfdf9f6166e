//! The personal feed (articles by followed authors) and favorites, on both engines.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{LISTED_ARTICLE_KEYS, TestApp, assert_keys, engine_tests, slugs};

async fn feed(app: &TestApp, query: &str, token: &str) -> Value {
    let reply = app
        .get(&format!("/api/articles/feed{query}"), Some(token))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.body);
    reply.body
}

async fn follow(app: &TestApp, token: &str, username: &str) {
    let reply = app
        .request(
            Method::POST,
            &format!("/api/profiles/{username}/follow"),
            Some(token),
            None,
        )
        .await;
    reply.assert_status(StatusCode::OK);
}

async fn favorite(app: &TestApp, token: &str, slug: &str) -> Value {
    let reply = app
        .request(
            Method::POST,
            &format!("/api/articles/{slug}/favorite"),
            Some(token),
            None,
        )
        .await;
    reply.assert_status(StatusCode::OK);
    reply.body
}

async fn unfavorite(app: &TestApp, token: &str, slug: &str) -> Value {
    let reply = app
        .delete(&format!("/api/articles/{slug}/favorite"), Some(token))
        .await;
    reply.assert_status(StatusCode::OK);
    reply.body
}

async fn feed_shows_only_articles_by_followed_authors_newest_first(app: TestApp) {
    let reader = app.register("reader").await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let a1 = app.create_article(&alice, "Alice one", &[]).await;
    app.tick();
    app.create_article(&carol, "Carol one", &[]).await;
    app.tick();
    let b1 = app.create_article(&bob, "Bob one", &[]).await;
    app.tick();
    app.create_article(&reader, "Reader one", &[]).await;
    app.tick();
    let a2 = app.create_article(&alice, "Alice two", &[]).await;
    follow(&app, &reader, "alice").await;
    follow(&app, &reader, "bob").await;

    let body = feed(&app, "", &reader).await;
    assert_keys(&body, &["articles", "articlesCount"]);
    assert_eq!(slugs(&body), [a2, b1, a1]);
    assert_eq!(body["articlesCount"], 3);
    for item in body["articles"].as_array().expect("articles") {
        assert_keys(item, LISTED_ARTICLE_KEYS);
        assert_eq!(item["author"]["following"], true);
    }
}

async fn feed_is_empty_when_following_nobody(app: TestApp) {
    let alice = app.register("alice").await;
    let reader = app.register("reader").await;
    app.create_article(&alice, "Unseen", &[]).await;
    app.create_article(&reader, "Own article", &[]).await;
    assert_eq!(
        feed(&app, "", &reader).await,
        json!({"articles": [], "articlesCount": 0})
    );
}

async fn feed_pages_with_limit_and_offset(app: TestApp) {
    let alice = app.register("alice").await;
    let reader = app.register("reader").await;
    let mut created = Vec::new();
    for n in 0..4 {
        created.push(app.create_article(&alice, &format!("Post {n}"), &[]).await);
        app.tick();
    }
    created.reverse();
    follow(&app, &reader, "alice").await;
    let page = feed(&app, "?limit=2", &reader).await;
    assert_eq!(slugs(&page), created[0..2]);
    assert_eq!(page["articlesCount"], 4);
    let page = feed(&app, "?limit=2&offset=3", &reader).await;
    assert_eq!(slugs(&page), created[3..4]);
    assert_eq!(page["articlesCount"], 4);
}

async fn unfollowing_removes_an_author_from_the_feed(app: TestApp) {
    let alice = app.register("alice").await;
    let reader = app.register("reader").await;
    let slug = app.create_article(&alice, "Briefly followed", &[]).await;
    follow(&app, &reader, "alice").await;
    assert_eq!(slugs(&feed(&app, "", &reader).await), [slug]);
    let reply = app
        .delete("/api/profiles/alice/follow", Some(&reader))
        .await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(
        feed(&app, "", &reader).await,
        json!({"articles": [], "articlesCount": 0})
    );
}

async fn favorite_sets_favorited_and_counts_each_user_once(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let slug = app.create_article(&alice, "Popular", &[]).await;

    let body = favorite(&app, &bob, &slug).await;
    assert_keys(&body, &["article"]);
    assert_eq!(body["article"]["slug"], slug.as_str());
    assert_eq!(body["article"]["favorited"], true);
    assert_eq!(body["article"]["favoritesCount"], 1);
    assert_eq!(body["article"]["body"], "# Body\n\ntext");

    // Favoriting twice does not count twice.
    let again = favorite(&app, &bob, &slug).await;
    assert_eq!(again["article"]["favorited"], true);
    assert_eq!(again["article"]["favoritesCount"], 1);

    let by_carol = favorite(&app, &carol, &slug).await;
    assert_eq!(by_carol["article"]["favorited"], true);
    assert_eq!(by_carol["article"]["favoritesCount"], 2);

    // Each viewer sees their own `favorited`; everyone sees the same count.
    let as_alice = app.article(&slug, Some(&alice)).await;
    assert_eq!(as_alice["favorited"], false);
    assert_eq!(as_alice["favoritesCount"], 2);
    let anonymous = app.article(&slug, None).await;
    assert_eq!(anonymous["favorited"], false);
    assert_eq!(anonymous["favoritesCount"], 2);
    assert_eq!(app.article(&slug, Some(&bob)).await["favorited"], true);
}

async fn unfavorite_clears_favorited_and_decrements_the_count(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let slug = app.create_article(&alice, "Fading", &[]).await;
    favorite(&app, &bob, &slug).await;
    favorite(&app, &carol, &slug).await;

    let body = unfavorite(&app, &bob, &slug).await;
    assert_keys(&body, &["article"]);
    assert_eq!(body["article"]["favorited"], false);
    assert_eq!(body["article"]["favoritesCount"], 1);

    // Unfavoriting what one has not favorited changes nothing.
    let again = unfavorite(&app, &bob, &slug).await;
    assert_eq!(again["article"]["favorited"], false);
    assert_eq!(again["article"]["favoritesCount"], 1);

    assert_eq!(app.article(&slug, Some(&carol)).await["favorited"], true);
    let body = unfavorite(&app, &carol, &slug).await;
    assert_eq!(body["article"]["favoritesCount"], 0);
}

async fn favorite_and_unfavorite_with_json_content_type_and_no_body_are_accepted(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let slug = app.create_article(&alice, "Client style", &[]).await;
    let path = format!("/api/articles/{slug}/favorite");
    let reply = app.send_without_body(Method::POST, &path, Some(&bob)).await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.body["article"]["favorited"], true);
    assert_eq!(reply.body["article"]["favoritesCount"], 1);
    let reply = app
        .send_without_body(Method::DELETE, &path, Some(&bob))
        .await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.body["article"]["favorited"], false);
    assert_eq!(reply.body["article"]["favoritesCount"], 0);
}

async fn favorited_filter_lists_what_a_user_favorited(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let first = app.create_article(&alice, "First", &[]).await;
    app.tick();
    app.create_article(&alice, "Second", &[]).await;
    app.tick();
    let third = app.create_article(&bob, "Third", &[]).await;
    favorite(&app, &bob, &first).await;
    favorite(&app, &bob, &third).await;
    favorite(&app, &alice, &third).await;

    let reply = app.get("/api/articles?favorited=bob", Some(&bob)).await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(slugs(&reply.body), [third.clone(), first.clone()]);
    assert_eq!(reply.body["articlesCount"], 2);
    assert_eq!(reply.body["articles"][0]["favorited"], true);
    assert_eq!(reply.body["articles"][0]["favoritesCount"], 2);
    assert_eq!(reply.body["articles"][1]["favoritesCount"], 1);

    unfavorite(&app, &bob, &first).await;
    let reply = app.get("/api/articles?favorited=bob", None).await;
    assert_eq!(slugs(&reply.body), [third]);
    assert_eq!(reply.body["articlesCount"], 1);
    assert_eq!(reply.body["articles"][0]["favorited"], false);
}

async fn list_and_feed_show_the_viewers_favorited_flag(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let liked = app.create_article(&alice, "Liked", &[]).await;
    app.tick();
    let other = app.create_article(&alice, "Other", &[]).await;
    favorite(&app, &bob, &liked).await;
    follow(&app, &bob, "alice").await;

    let listed = app.get("/api/articles", Some(&bob)).await;
    assert_eq!(slugs(&listed.body), [other.clone(), liked.clone()]);
    assert_eq!(listed.body["articles"][0]["favorited"], false);
    assert_eq!(listed.body["articles"][1]["favorited"], true);
    assert_eq!(listed.body["articles"][1]["favoritesCount"], 1);

    let body = feed(&app, "", &bob).await;
    assert_eq!(slugs(&body), [other, liked]);
    assert_eq!(body["articles"][1]["favorited"], true);
    assert_eq!(body["articles"][1]["favoritesCount"], 1);
}

engine_tests!(
    feed_shows_only_articles_by_followed_authors_newest_first,
    feed_is_empty_when_following_nobody,
    feed_pages_with_limit_and_offset,
    unfollowing_removes_an_author_from_the_feed,
    favorite_sets_favorited_and_counts_each_user_once,
    unfavorite_clears_favorited_and_decrements_the_count,
    favorite_and_unfavorite_with_json_content_type_and_no_body_are_accepted,
    favorited_filter_lists_what_a_user_favorited,
    list_and_feed_show_the_viewers_favorited_flag,
);
