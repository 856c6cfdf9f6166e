//! Deep pages of the article lists (issue 20): the `after` cursor, the `offset` cap, and the
//! database budget that answers a statement running too long with a 503; on both engines.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::common::{Engine, Locker, TestApp, engine_tests, slugs};

/// Five articles, one second apart: `e` newest. Alice writes a, c, e (tagged `odd`), Bob b, d.
async fn five_articles(app: &TestApp) -> (String, String) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    for (title, token, tags) in [
        ("a", &alice, &["odd"][..]),
        ("b", &bob, &[][..]),
        ("c", &alice, &["odd"][..]),
        ("d", &bob, &[][..]),
        ("e", &alice, &["odd"][..]),
    ] {
        app.create_article(token, title, tags).await;
        app.tick();
    }
    (alice, bob)
}

/// Follows `nextCursor` from `first` to the end; every page's slugs, in order.
async fn walk(app: &TestApp, path: &str, first: &str, token: Option<&str>) -> Vec<Vec<String>> {
    let joiner = if first.contains('?') { '&' } else { '?' };
    let mut pages = Vec::new();
    let mut query = format!("{path}{first}");
    loop {
        let reply = app.get(&query, token).await;
        assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.body);
        pages.push(slugs(&reply.body));
        match reply.body.get("nextCursor").and_then(Value::as_str) {
            Some(cursor) => query = format!("{path}{first}{joiner}after={cursor}"),
            None => return pages,
        }
        assert!(pages.len() < 10, "the cursor never ends");
    }
}

async fn the_cursor_pages_through_every_article_once(app: TestApp) {
    let (alice, bob) = five_articles(&app).await;
    let pages = walk(&app, "/api/articles", "?limit=2", None).await;
    assert_eq!(pages, [vec!["e", "d"], vec!["c", "b"], vec!["a"]]);
    let tagged = walk(&app, "/api/articles", "?tag=odd&limit=2", None).await;
    assert_eq!(tagged, [vec!["e", "c"], vec!["a"]]);
    let by_author = walk(&app, "/api/articles", "?author=bob&limit=1", Some(&alice)).await;
    assert_eq!(by_author, [vec!["d"], vec!["b"]]);
    let follow = app
        .request(Method::POST, "/api/profiles/alice/follow", Some(&bob), None)
        .await;
    follow.assert_status(StatusCode::OK);
    let feed = walk(&app, "/api/articles/feed", "?limit=2", Some(&bob)).await;
    assert_eq!(feed, [vec!["e", "c"], vec!["a"]]);
    // A full last page says nothing follows: no cursor, and the RealWorld shape unchanged.
    let exact = app.get("/api/articles?limit=5", None).await;
    assert_eq!(exact.body.get("nextCursor"), None, "{}", exact.body);
}

async fn a_cursor_survives_its_article_being_deleted(app: TestApp) {
    let (alice, bob) = five_articles(&app).await;
    let first = app.get("/api/articles?limit=2", None).await;
    let cursor = first.body["nextCursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    app.delete("/api/articles/d", Some(&bob))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let next = app
        .get(
            &format!("/api/articles?limit=2&after={cursor}"),
            Some(&alice),
        )
        .await;
    next.assert_status(StatusCode::OK);
    assert_eq!(slugs(&next.body), ["c", "b"]);
}

async fn a_cursor_from_elsewhere_or_edited_is_refused(app: TestApp) {
    let (alice, _) = five_articles(&app).await;
    let first = app.get("/api/articles?tag=odd&limit=1", None).await;
    let cursor = first.body["nextCursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let mut edited = cursor.clone().into_bytes();
    edited[3] = if edited[3] == b'A' { b'B' } else { b'A' };
    let edited = String::from_utf8(edited).expect("ASCII");
    for query in [
        format!("/api/articles?tag=other&after={cursor}"),
        format!("/api/articles?after={cursor}"),
        format!("/api/articles?tag=odd&after={edited}"),
        "/api/articles?after=not-a-cursor".to_owned(),
        format!("/api/articles/feed?after={cursor}"),
    ] {
        let reply = app.get(&query, Some(&alice)).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {}",
            reply.body
        );
        assert!(reply.error_on("after").is_some(), "{query}: {}", reply.body);
    }
    let both = app
        .get(
            &format!("/api/articles?tag=odd&offset=1&after={cursor}"),
            None,
        )
        .await;
    assert_eq!(
        both.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        both.body
    );
    let good = app
        .get(
            &format!("/api/articles?tag=odd&limit=1&after={cursor}"),
            None,
        )
        .await;
    good.assert_status(StatusCode::OK);
    assert_eq!(slugs(&good.body), ["c"]);
}

async fn an_offset_past_the_cap_is_refused(engine: Engine) {
    let app = TestApp::spawn_with(engine, &[("AERIE_MAX_LIST_OFFSET", "3")]).await;
    let (alice, _) = five_articles(&app).await;
    let deepest = app.get("/api/articles?offset=3", None).await;
    deepest.assert_status(StatusCode::OK);
    assert_eq!(slugs(&deepest.body), ["b", "a"]);
    for path in ["/api/articles?offset=4", "/api/articles/feed?offset=4"] {
        let reply = app.get(path, Some(&alice)).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: {}",
            reply.body
        );
        assert!(reply.error_on("offset").is_some(), "{path}: {}", reply.body);
    }
}

/// A statement held up past the budget (by a lock this test takes, so the wait is certain)
/// is answered 503 in the error shape and counted, and the server answers again after.
async fn a_statement_past_its_budget_is_a_503(engine: Engine) {
    let token = "metrics-token-for-budget-test-0123456789";
    let app = TestApp::spawn_with(
        engine,
        &[
            ("AERIE_DATABASE_STATEMENT_BUDGET_MS", "1000"),
            ("AERIE_METRICS_TOKEN", token),
        ],
    )
    .await;
    let (alice, _) = five_articles(&app).await;
    let lock = Locker::take(&app, "articles").await;
    // SQLite readers never wait for a writer (WAL), so the held-up request is a write there.
    let reply = match engine {
        Engine::Sqlite => {
            app.request(Method::POST, "/api/articles/b/favorite", Some(&alice), None)
                .await
        }
        Engine::Postgres => app.get("/api/articles", None).await,
    };
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.body
    );
    assert!(reply.error_on("body").is_some(), "{}", reply.body);
    lock.release().await;
    app.get("/api/articles", None)
        .await
        .assert_status(StatusCode::OK);
    app.metrics(token)
        .await
        .assert_value("aerie_db_budget_exceeded_total", &[], 1.0);
}

/// `articlesCount` of each list, read off `user_totals` (author, favorited, feed),
/// `tag_counts`, `article_totals`, or an index range (filters combined).
async fn counts(app: &TestApp, token: &str) -> Vec<i64> {
    let mut counts = Vec::new();
    for path in [
        "/api/articles",
        "/api/articles?author=alice",
        "/api/articles?author=bob",
        "/api/articles?favorited=alice",
        "/api/articles?favorited=bob",
        "/api/articles?tag=odd",
        "/api/articles?author=alice&tag=odd",
        "/api/articles/feed",
    ] {
        let reply = app.get(path, Some(token)).await;
        reply.assert_status(StatusCode::OK);
        counts.push(reply.body["articlesCount"].as_i64().expect("articlesCount"));
    }
    counts
}

async fn every_lists_count_follows_writes_and_deletions(app: TestApp) {
    let (alice, bob) = five_articles(&app).await;
    app.request(Method::POST, "/api/profiles/alice/follow", Some(&bob), None)
        .await
        .assert_status(StatusCode::OK);
    for (slug, token) in [("b", &alice), ("d", &alice), ("a", &bob)] {
        app.request(
            Method::POST,
            &format!("/api/articles/{slug}/favorite"),
            Some(token),
            None,
        )
        .await
        .assert_status(StatusCode::OK);
    }
    assert_eq!(counts(&app, &bob).await, [5, 3, 2, 2, 1, 3, 3, 3]);
    // An article deleted, a favorite withdrawn, and a favorited article deleted (its
    // favorites go with it).
    app.delete("/api/articles/e", Some(&alice))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    app.delete("/api/articles/d/favorite", Some(&alice))
        .await
        .assert_status(StatusCode::OK);
    app.delete("/api/articles/b", Some(&bob))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    assert_eq!(counts(&app, &bob).await, [3, 2, 1, 0, 1, 2, 2, 2]);
}

engine_tests!(
    every_lists_count_follows_writes_and_deletions,
    the_cursor_pages_through_every_article_once,
    a_cursor_survives_its_article_being_deleted,
    a_cursor_from_elsewhere_or_edited_is_refused,
    an_offset_past_the_cap_is_refused,
    a_statement_past_its_budget_is_a_503,
);
