//! Articles: create, read, update, delete, and the filtered, paged list, on both engines.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{
    ARTICLE_KEYS, LISTED_ARTICLE_KEYS, PROFILE_KEYS, TestApp, assert_keys, assert_timestamp,
    engine_tests, slugs,
};

/// Moves the server clock on, so the next article is strictly newer.
async fn list(app: &TestApp, query: &str, token: Option<&str>) -> Value {
    let reply = app.get(&format!("/api/articles{query}"), token).await;
    assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.body);
    reply.body
}

async fn create_article_returns_201_with_the_full_article(app: TestApp) {
    let token = app.register("alice").await;
    let reply = app
        .post(
            "/api/articles",
            Some(&token),
            json!({"article": {
                "title": "How to train your dragon",
                "description": "Ever wonder how?",
                "body": "You have to believe",
                "tagList": ["reactjs", "angularjs", "dragons"],
            }}),
        )
        .await;
    reply.assert_status(StatusCode::CREATED);
    assert_keys(&reply.body, &["article"]);
    let article = &reply.body["article"];
    assert_keys(article, ARTICLE_KEYS);
    assert_eq!(article["slug"], "how-to-train-your-dragon");
    assert_eq!(article["title"], "How to train your dragon");
    assert_eq!(article["description"], "Ever wonder how?");
    assert_eq!(article["body"], "You have to believe");
    assert_eq!(article["bodyHtml"], "<p>You have to believe</p>\n");
    assert_eq!(
        article["tagList"],
        json!(["angularjs", "dragons", "reactjs"])
    );
    let now = app.now_timestamp();
    assert_eq!(article["createdAt"], now.as_str());
    assert_eq!(article["updatedAt"], now.as_str());
    assert_eq!(article["favorited"], false);
    assert_eq!(article["favoritesCount"], 0);
    assert_keys(&article["author"], PROFILE_KEYS);
    assert_eq!(
        article["author"],
        json!({"username": "alice", "bio": null, "image": null, "following": false})
    );
}

async fn create_article_without_tag_list_has_an_empty_tag_list(app: TestApp) {
    let token = app.register("alice").await;
    let reply = app
        .post(
            "/api/articles",
            Some(&token),
            json!({"article": {"title": "No tags", "description": "d", "body": "b"}}),
        )
        .await;
    reply.assert_status(StatusCode::CREATED);
    assert_eq!(reply.body["article"]["tagList"], json!([]));
}

async fn get_article_works_anonymously_and_authenticated(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let slug = app.create_article(&alice, "Readable by all", &["x"]).await;
    for token in [None, Some(alice.as_str()), Some(bob.as_str())] {
        let reply = app.get(&format!("/api/articles/{slug}"), token).await;
        reply.assert_status(StatusCode::OK);
        assert_keys(&reply.body, &["article"]);
        let article = &reply.body["article"];
        assert_keys(article, ARTICLE_KEYS);
        assert_eq!(article["slug"], slug.as_str());
        assert_eq!(article["title"], "Readable by all");
        assert_eq!(article["description"], "about it");
        assert_eq!(article["body"], "# Body\n\ntext");
        assert_eq!(article["tagList"], json!(["x"]));
        assert_eq!(article["author"]["username"], "alice");
        assert_eq!(article["author"]["following"], false);
    }
}

async fn article_author_shows_following_for_a_follower(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let slug = app.create_article(&alice, "Followed", &[]).await;
    let follow = app
        .send_without_body(Method::POST, "/api/profiles/alice/follow", Some(&bob))
        .await;
    follow.assert_status(StatusCode::OK);
    let seen_by_bob = app.get(&format!("/api/articles/{slug}"), Some(&bob)).await;
    assert_eq!(seen_by_bob.body["article"]["author"]["following"], true);
    let seen_anonymously = app.get(&format!("/api/articles/{slug}"), None).await;
    assert_eq!(
        seen_anonymously.body["article"]["author"]["following"],
        false
    );
    let listed = list(&app, "", Some(&bob)).await;
    assert_eq!(listed["articles"][0]["author"]["following"], true);
}

async fn slug_is_derived_from_the_title(app: TestApp) {
    let token = app.register("alice").await;
    let slug = app
        .create_article(&token, "  Hello, World! Rust 2024 -- is here ", &[])
        .await;
    assert_eq!(slug, "hello-world-rust-2024-is-here");
}

async fn two_articles_with_the_same_title_get_different_slugs(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let first = app.create_article(&alice, "Same Title", &[]).await;
    let second = app.create_article(&bob, "Same Title", &[]).await;
    let third = app.create_article(&alice, "Same Title", &[]).await;
    assert_eq!(first, "same-title");
    assert_ne!(second, first);
    assert_ne!(third, first);
    assert_ne!(third, second);
    for (slug, author) in [(&first, "alice"), (&second, "bob"), (&third, "alice")] {
        assert!(slug.starts_with("same-title"), "{slug}");
        let reply = app.get(&format!("/api/articles/{slug}"), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{slug}: {}", reply.body);
        assert_eq!(reply.body["article"]["author"]["username"], author);
    }
    assert_eq!(list(&app, "", None).await["articlesCount"], 3);
}

async fn update_article_changes_only_the_given_fields(app: TestApp) {
    let token = app.register("alice").await;
    let slug = app
        .create_article(&token, "Original title", &["keep"])
        .await;
    let created_at = app.now_timestamp();
    app.tick();
    let reply = app
        .put(
            &format!("/api/articles/{slug}"),
            Some(&token),
            json!({"article": {"description": "new description", "body": "new **body**"}}),
        )
        .await;
    reply.assert_status(StatusCode::OK);
    assert_keys(&reply.body, &["article"]);
    let article = &reply.body["article"];
    assert_keys(article, ARTICLE_KEYS);
    assert_eq!(article["slug"], slug.as_str());
    assert_eq!(article["title"], "Original title");
    assert_eq!(article["description"], "new description");
    assert_eq!(article["body"], "new **body**");
    assert_eq!(article["bodyHtml"], "<p>new <strong>body</strong></p>\n");
    assert_eq!(article["tagList"], json!(["keep"]));
    assert_eq!(article["createdAt"], created_at.as_str());
    assert_eq!(article["updatedAt"], app.now_timestamp().as_str());
    assert_ne!(article["updatedAt"], article["createdAt"]);

    let fetched = app.get(&format!("/api/articles/{slug}"), None).await;
    assert_eq!(fetched.body["article"], *article);
}

async fn editing_the_title_changes_the_slug_and_the_old_slug_is_404(app: TestApp) {
    let token = app.register("alice").await;
    let old = app.create_article(&token, "First draft", &[]).await;
    let reply = app
        .put(
            &format!("/api/articles/{old}"),
            Some(&token),
            json!({"article": {"title": "Final Version"}}),
        )
        .await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.body["article"]["slug"], "final-version");
    assert_eq!(reply.body["article"]["title"], "Final Version");
    assert_eq!(reply.body["article"]["body"], "# Body\n\ntext");

    let gone = app.get(&format!("/api/articles/{old}"), None).await;
    gone.assert_status(StatusCode::NOT_FOUND);
    let moved = app.get("/api/articles/final-version", None).await;
    moved.assert_status(StatusCode::OK);
    assert_eq!(moved.body["article"]["title"], "Final Version");
}

async fn editing_to_a_title_another_article_holds_gives_a_unique_slug(app: TestApp) {
    let token = app.register("alice").await;
    let taken = app.create_article(&token, "Taken", &[]).await;
    let mine = app.create_article(&token, "Mine", &[]).await;
    let reply = app
        .put(
            &format!("/api/articles/{mine}"),
            Some(&token),
            json!({"article": {"title": "Taken"}}),
        )
        .await;
    reply.assert_status(StatusCode::OK);
    let new_slug = reply.body["article"]["slug"]
        .as_str()
        .expect("slug")
        .to_owned();
    assert_ne!(new_slug, taken);
    assert!(new_slug.starts_with("taken-"), "{new_slug}");
    let other = app.get(&format!("/api/articles/{taken}"), None).await;
    assert_eq!(other.body["article"]["title"], "Taken");
    assert_eq!(
        app.get(&format!("/api/articles/{new_slug}"), None)
            .await
            .status,
        StatusCode::OK
    );
}

async fn update_with_a_tag_list_replaces_the_tags(app: TestApp) {
    let token = app.register("alice").await;
    let slug = app.create_article(&token, "Tagged", &["old", "both"]).await;
    let reply = app
        .put(
            &format!("/api/articles/{slug}"),
            Some(&token),
            json!({"article": {"tagList": ["new", "both"]}}),
        )
        .await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.body["article"]["tagList"], json!(["both", "new"]));
    assert_eq!(list(&app, "?tag=old", None).await["articlesCount"], 0);
    assert_eq!(slugs(&list(&app, "?tag=new", None).await), [slug.as_str()]);

    let cleared = app
        .put(
            &format!("/api/articles/{slug}"),
            Some(&token),
            json!({"article": {"tagList": []}}),
        )
        .await;
    cleared.assert_status(StatusCode::OK);
    assert_eq!(cleared.body["article"]["tagList"], json!([]));
}

async fn delete_article_returns_204_and_then_it_is_gone(app: TestApp) {
    let token = app.register("alice").await;
    let slug = app.create_article(&token, "Short lived", &["gone"]).await;
    let keep = app.create_article(&token, "Stays", &[]).await;
    let reply = app
        .delete(&format!("/api/articles/{slug}"), Some(&token))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(reply.body, Value::Null);
    let after = app.get(&format!("/api/articles/{slug}"), None).await;
    assert_eq!(after.status, StatusCode::NOT_FOUND);
    let listed = list(&app, "", None).await;
    assert_eq!(slugs(&listed), [keep]);
    assert_eq!(listed["articlesCount"], 1);
}

async fn delete_article_with_json_content_type_and_no_body_is_accepted(app: TestApp) {
    let token = app.register("alice").await;
    let slug = app
        .create_article(&token, "Deleted by a RealWorld client", &[])
        .await;
    let reply = app
        .send_without_body(
            Method::DELETE,
            &format!("/api/articles/{slug}"),
            Some(&token),
        )
        .await;
    reply.assert_status(StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&format!("/api/articles/{slug}"), None).await.status,
        StatusCode::NOT_FOUND
    );
}

async fn tag_list_is_sorted_alphabetically_everywhere(app: TestApp) {
    let token = app.register("alice").await;
    let reply = app
        .post("/api/articles", Some(&token), json!({"article": {"title": "Sorted", "description": "d", "body": "b", "tagList": ["zeta", "alpha", "mid", "beta"]}}))
        .await;
    reply.assert_status(StatusCode::CREATED);
    let sorted = json!(["alpha", "beta", "mid", "zeta"]);
    assert_eq!(reply.body["article"]["tagList"], sorted);
    let fetched = app.get("/api/articles/sorted", None).await;
    assert_eq!(fetched.body["article"]["tagList"], sorted);
    let listed = list(&app, "", None).await;
    assert_eq!(listed["articles"][0]["tagList"], sorted);
}

async fn list_articles_is_newest_first_with_the_total_count(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let first = app.create_article(&alice, "First", &[]).await;
    app.tick();
    let second = app.create_article(&bob, "Second", &[]).await;
    app.tick();
    let third = app.create_article(&alice, "Third", &[]).await;
    let listed = list(&app, "", None).await;
    assert_keys(&listed, &["articles", "articlesCount"]);
    assert_eq!(slugs(&listed), [third, second, first]);
    assert_eq!(listed["articlesCount"], 3);
}

async fn list_articles_is_empty_on_a_fresh_server(app: TestApp) {
    let listed = list(&app, "", None).await;
    assert_eq!(listed, json!({"articles": [], "articlesCount": 0}));
}

async fn list_responses_leave_out_the_body(app: TestApp) {
    let token = app.register("alice").await;
    app.create_article(&token, "Listed", &["t"]).await;
    for query in ["", "?tag=t", "?author=alice"] {
        let listed = list(&app, query, Some(&token)).await;
        let article = &listed["articles"][0];
        assert_keys(article, LISTED_ARTICLE_KEYS);
        assert_keys(&article["author"], PROFILE_KEYS);
        assert_eq!(article["slug"], "listed");
        assert_eq!(article["description"], "about it");
    }
}

async fn list_filters_by_tag(app: TestApp) {
    let token = app.register("alice").await;
    let rust = app.create_article(&token, "Rust", &["rust", "lang"]).await;
    app.tick();
    let go = app.create_article(&token, "Go", &["go", "lang"]).await;
    app.tick();
    app.create_article(&token, "Untagged", &[]).await;

    let by_rust = list(&app, "?tag=rust", None).await;
    assert_eq!(slugs(&by_rust), [rust.as_str()]);
    assert_eq!(by_rust["articlesCount"], 1);
    let by_lang = list(&app, "?tag=lang", None).await;
    assert_eq!(slugs(&by_lang), [go, rust]);
    assert_eq!(by_lang["articlesCount"], 2);
    // Filters compare exactly: a LIKE wildcard or a prefix matches nothing.
    for query in ["?tag=ru", "?tag=%25", "?tag=r_st"] {
        assert_eq!(
            list(&app, query, None).await,
            json!({"articles": [], "articlesCount": 0}),
            "{query}"
        );
    }
}

async fn list_filters_by_author(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let a1 = app.create_article(&alice, "Alice one", &[]).await;
    app.tick();
    let b1 = app.create_article(&bob, "Bob one", &[]).await;
    app.tick();
    let a2 = app.create_article(&alice, "Alice two", &[]).await;

    let by_alice = list(&app, "?author=alice", None).await;
    assert_eq!(slugs(&by_alice), [a2, a1]);
    assert_eq!(by_alice["articlesCount"], 2);
    let by_bob = list(&app, "?author=bob", None).await;
    assert_eq!(slugs(&by_bob), [b1]);
    assert_eq!(by_bob["articlesCount"], 1);
    let nobody = list(&app, "?author=nobody", None).await;
    assert_eq!(nobody, json!({"articles": [], "articlesCount": 0}));
}

async fn list_filters_by_who_favorited(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let liked = app.create_article(&alice, "Liked", &[]).await;
    app.tick();
    app.create_article(&alice, "Ignored", &[]).await;
    let reply = app
        .send_without_body(
            Method::POST,
            &format!("/api/articles/{liked}/favorite"),
            Some(&bob),
        )
        .await;
    reply.assert_status(StatusCode::OK);

    let by_bob = list(&app, "?favorited=bob", None).await;
    assert_eq!(slugs(&by_bob), [liked]);
    assert_eq!(by_bob["articlesCount"], 1);
    assert_eq!(by_bob["articles"][0]["favoritesCount"], 1);
    let by_alice = list(&app, "?favorited=alice", None).await;
    assert_eq!(by_alice, json!({"articles": [], "articlesCount": 0}));
}

async fn list_filters_combine(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let alice_rust = app.create_article(&alice, "Alice on Rust", &["rust"]).await;
    app.create_article(&alice, "Alice on Go", &["go"]).await;
    app.create_article(&bob, "Bob on Rust", &["rust"]).await;
    let both = list(&app, "?tag=rust&author=alice", None).await;
    assert_eq!(slugs(&both), [alice_rust]);
    assert_eq!(both["articlesCount"], 1);
}

async fn limit_and_offset_page_through_the_list(app: TestApp) {
    let token = app.register("alice").await;
    let mut created = Vec::new();
    for n in 0..5 {
        created.push(
            app.create_article(&token, &format!("Article {n}"), &["paged"])
                .await,
        );
        app.tick();
    }
    created.reverse(); // newest first
    let page = list(&app, "?limit=2", None).await;
    assert_eq!(slugs(&page), created[0..2]);
    assert_eq!(page["articlesCount"], 5);
    let page = list(&app, "?limit=2&offset=2", None).await;
    assert_eq!(slugs(&page), created[2..4]);
    assert_eq!(page["articlesCount"], 5);
    let page = list(&app, "?tag=paged&limit=2&offset=4", None).await;
    assert_eq!(slugs(&page), created[4..5]);
    assert_eq!(page["articlesCount"], 5);
    let page = list(&app, "?offset=5", None).await;
    assert_eq!(page, json!({"articles": [], "articlesCount": 5}));
    let page = list(&app, "?offset=1", None).await;
    assert_eq!(slugs(&page), created[1..5]);
}

async fn list_returns_20_by_default_and_up_to_100(app: TestApp) {
    let token = app.register("alice").await;
    for n in 0..21 {
        app.create_article(&token, &format!("Bulk {n}"), &[]).await;
    }
    let default = list(&app, "", None).await;
    assert_eq!(default["articles"].as_array().map(Vec::len), Some(20));
    assert_eq!(default["articlesCount"], 21);
    let max = list(&app, "?limit=100", None).await;
    assert_eq!(max["articles"].as_array().map(Vec::len), Some(21));
}

async fn timestamps_are_rfc3339_utc_with_milliseconds(app: TestApp) {
    let token = app.register("alice").await;
    app.clock.advance(Duration::from_millis(7));
    let slug = app.create_article(&token, "Timed", &[]).await;
    let fetched = app.get(&format!("/api/articles/{slug}"), None).await;
    let article = &fetched.body["article"];
    assert_timestamp(&article["createdAt"]);
    assert_timestamp(&article["updatedAt"]);
    assert_eq!(article["createdAt"], app.now_timestamp().as_str());
    let listed = list(&app, "", None).await;
    assert_timestamp(&listed["articles"][0]["createdAt"]);
    assert_timestamp(&listed["articles"][0]["updatedAt"]);
}

async fn body_is_stored_unchanged_and_body_html_is_sanitized(app: TestApp) {
    let token = app.register("alice").await;
    let source = "# Title\n\n**bold** [ok](https://example.com)\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1)) <img src=x onerror=alert(1)> <p style=\"color:red\" onclick=\"alert(1)\">styled</p>";
    let reply = app
        .post(
            "/api/articles",
            Some(&token),
            json!({"article": {"title": "Markdown", "description": "d", "body": source}}),
        )
        .await;
    reply.assert_status(StatusCode::CREATED);
    assert_eq!(reply.body["article"]["body"], source);
    let fetched = app.get("/api/articles/markdown", None).await;
    assert_eq!(fetched.body["article"]["body"], source);
    let html = fetched.body["article"]["bodyHtml"]
        .as_str()
        .expect("bodyHtml");
    assert!(html.contains("<h1>Title</h1>"), "{html}");
    assert!(html.contains("<strong>bold</strong>"), "{html}");
    assert!(html.contains("href=\"https://example.com\""), "{html}");
    let lower = html.to_ascii_lowercase();
    for needle in ["<script", "javascript:", "onerror", "onclick", "style="] {
        assert!(!lower.contains(needle), "{needle} survived in {html}");
    }
}

engine_tests!(
    create_article_returns_201_with_the_full_article,
    create_article_without_tag_list_has_an_empty_tag_list,
    get_article_works_anonymously_and_authenticated,
    article_author_shows_following_for_a_follower,
    slug_is_derived_from_the_title,
    two_articles_with_the_same_title_get_different_slugs,
    update_article_changes_only_the_given_fields,
    editing_the_title_changes_the_slug_and_the_old_slug_is_404,
    editing_to_a_title_another_article_holds_gives_a_unique_slug,
    update_with_a_tag_list_replaces_the_tags,
    delete_article_returns_204_and_then_it_is_gone,
    delete_article_with_json_content_type_and_no_body_is_accepted,
    tag_list_is_sorted_alphabetically_everywhere,
    list_articles_is_newest_first_with_the_total_count,
    list_articles_is_empty_on_a_fresh_server,
    list_responses_leave_out_the_body,
    list_filters_by_tag,
    list_filters_by_author,
    list_filters_by_who_favorited,
    list_filters_combine,
    limit_and_offset_page_through_the_list,
    list_returns_20_by_default_and_up_to_100,
    timestamps_are_rfc3339_utc_with_milliseconds,
    body_is_stored_unchanged_and_body_html_is_sanitized,
);
