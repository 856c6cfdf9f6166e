//! Black-box check of the field properties proven in-process (src/domain/properties.rs and
//! src/http/rejection_properties.rs): a handful of generated values that each rule rejects,
//! sent over HTTP the way a client sends them, get a 422 whose error body names that field,
//! and nothing is stored. Few cases, drawn with a fixed seed, so the test stays fast and
//! repeatable.

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{self, PASSWORD, TestApp, engine_tests};

/// `count` values from `strategy`, the same ones on every run.
fn draw(strategy: impl Strategy<Value = String>, count: usize) -> Vec<String> {
    let mut runner = TestRunner::deterministic();
    (0..count)
        .filter_map(|_| {
            strategy
                .new_tree(&mut runner)
                .ok()
                .map(|tree| tree.current())
        })
        .collect()
}

/// Rejected values per field: a character outside the rule, a length past the limit, or a
/// control character that forges log lines.
fn rejected_usernames() -> Vec<String> {
    draw("[a-z]{1,5}[ <>@/ЬｂéÀ\u{202E}\n][a-z]{1,5}|[a-z]{33,40}", 4)
}

fn rejected_emails() -> Vec<String> {
    draw(
        "[a-z]{1,8}|[a-z]{1,5}@[a-z]{1,5}|[a-z]{1,5} [a-z]{1,5}@x\\.io|[a-z]{1,5}@x\\.\\.io",
        4,
    )
}

fn rejected_titles() -> Vec<String> {
    draw(
        " {1,4}|[a-z]{201,210}|[a-z]{1,5}[\n\u{0}\u{1b}\u{2028}][a-z]{1,5}",
        4,
    )
}

fn assert_422_on(reply: &common::Reply, field: &str, value: &str) {
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{field} = {value:?}: {}",
        reply.body
    );
    assert!(
        reply.error_on(field).is_some_and(|m| !m.is_empty()),
        "{field} = {value:?}: no message for the field in {}",
        reply.body
    );
}

async fn generated_invalid_registrations_get_422_on_the_field(app: TestApp) {
    for (i, name) in rejected_usernames().iter().enumerate() {
        let email = format!("user{i}@example.com");
        let body = json!({"user": {"username": name, "email": email, "password": PASSWORD}});
        assert_422_on(&app.post("/api/users", None, body).await, "username", name);
    }
    for (i, email) in rejected_emails().iter().enumerate() {
        let body =
            json!({"user": {"username": format!("user{i}"), "email": email, "password": PASSWORD}});
        assert_422_on(&app.post("/api/users", None, body).await, "email", email);
    }
    // Nothing was stored: the first valid registration with those names still works.
    app.register_user("user0").await;
}

async fn generated_invalid_articles_get_422_on_the_field(app: TestApp) {
    let token = app.register("author").await;
    for title in rejected_titles() {
        let article = json!({"title": title, "description": "d", "body": "b", "tagList": []});
        let reply = app
            .post("/api/articles", Some(&token), json!({"article": article}))
            .await;
        assert_422_on(&reply, "title", &title);
    }
    let too_many: Vec<Value> = (0..21).map(|i| json!(format!("tag{i}"))).collect();
    let article = json!({"title": "t", "description": "d", "body": "b", "tagList": too_many});
    let reply = app
        .post("/api/articles", Some(&token), json!({"article": article}))
        .await;
    assert_422_on(&reply, "tagList", "21 tags");
    let listed = app.get("/api/articles", None).await;
    assert_eq!(listed.body["articlesCount"], 0, "{}", listed.body);
}

engine_tests!(
    generated_invalid_registrations_get_422_on_the_field,
    generated_invalid_articles_get_422_on_the_field,
);
