//! Data minimisation (issue 16 item 5): an email is answered only to its owner
//! (`/api/user`, login, registration) and to administrators; accounts nobody has logged into
//! for a long time are found, and disabled, by `aerie accounts dormant`; an owner downloads
//! everything held about them (`GET /api/user/export`, after a recent password); an owner
//! or an administrator deletes an account, and so does the operator (`aerie user delete`).

use aerie::clock::Clock as _;
use reqwest::StatusCode;

use crate::common::{Engine, PASSWORD, TestApp, aerie, engine_tests, rows_of, token_of};

engine_tests!(
    only_the_owner_and_administrators_see_an_email,
    dormant_accounts_are_listed_and_disabled,
    an_account_exports_everything_held_about_it,
    an_owner_deletes_their_account_and_keeps_nothing_personal,
    deletion_can_remove_the_content_too,
    an_administrator_deletes_an_account_only_after_a_recent_password,
    the_operator_deletes_an_account_from_the_command_line,
);

async fn only_the_owner_and_administrators_see_an_email(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let slug = app.create_article(&alice, "On privacy", &["privacy"]).await;
    app.add_comment(&alice, &slug, "first").await;
    app.post(
        "/api/profiles/alice/follow",
        Some(&bob),
        serde_json::json!({}),
    )
    .await
    .assert_status(StatusCode::OK);
    let seen_by_others = [
        app.get("/api/profiles/alice", Some(&bob)).await,
        app.get("/api/profiles/alice", None).await,
        app.get(&format!("/api/articles/{slug}"), Some(&bob)).await,
        app.get(&format!("/api/articles/{slug}/comments"), Some(&bob))
            .await,
        app.get("/api/articles?author=alice", None).await,
        app.get("/api/articles/feed", Some(&bob)).await,
    ];
    for reply in &seen_by_others {
        reply.assert_status(StatusCode::OK);
        let body = reply.body.to_string();
        assert!(!body.contains("alice@example.com"), "{body}");
        assert!(!body.contains("\"email\""), "{body}");
    }
    let own = app.get("/api/user", Some(&alice)).await;
    assert_eq!(own.body["user"]["email"], "alice@example.com");
    app.register("admin").await;
    app.set_role("admin", "admin").await;
    let admin = token_of(&app.login_user("admin").await);
    let listed = app
        .get("/api/admin/users?query=alice@example.com", Some(&admin))
        .await;
    listed.assert_status(StatusCode::OK);
    let users = listed.body["users"].as_array().expect("users");
    assert_eq!(
        users.len(),
        1,
        "found by the whole address: {}",
        listed.body
    );
    assert_eq!(users[0]["email"], "alice@example.com");
    let by_name = app.get("/api/admin/users?query=ali", Some(&admin)).await;
    assert_eq!(by_name.body["users"][0]["email"], "alice@example.com");
}

async fn dormant_accounts_are_listed_and_disabled(app: TestApp) {
    app.register("alice").await;
    app.register("bob").await;
    app.register("carol").await;
    // Alice last logged in 100 days ago; carol registered 100 days ago and never logged in
    // since; bob logged in today.
    let long_ago = app.clock.now() - 100 * 24 * 60 * 60 * 1000;
    app.execute_sql(&format!(
        "UPDATE users SET last_login_at = {long_ago} WHERE username_key = 'alice'"
    ))
    .await;
    app.execute_sql(&format!(
        "UPDATE users SET last_login_at = NULL, created_at = {long_ago} WHERE username_key = 'carol'"
    ))
    .await;
    let listed = aerie(&app, "", &["accounts", "dormant", "--days", "90"], "").await;
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(stdout.contains("alice: last login"), "{stdout}");
    assert!(stdout.contains("carol: never logged in"), "{stdout}");
    assert!(!stdout.contains("bob"), "{stdout}");
    assert!(stdout.contains("2 dormant account(s) found"), "{stdout}");
    assert!(
        rows_of(&app, "user_disabled").await.is_empty(),
        "listing changes nothing"
    );
    app.login_user("alice").await;
    // Alice's login just now counts: only carol is still dormant.
    let disabled = aerie(
        &app,
        "",
        &["accounts", "dormant", "--days", "90", "--disable"],
        "",
    )
    .await;
    let stdout = String::from_utf8_lossy(&disabled.stdout);
    assert!(
        stdout.contains("carol: never logged in") && stdout.contains("disabled"),
        "{stdout}"
    );
    assert!(stdout.contains("1 dormant account(s) disabled"), "{stdout}");
    app.login("carol@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    app.login_user("alice").await;
    let events = rows_of(&app, "user_disabled").await;
    assert_eq!(events.len(), 1);
    assert!(
        events[0].detail.contains("\"by\":\"cli\""),
        "{}",
        events[0].detail
    );
}

async fn an_account_exports_everything_held_about_it(app: TestApp) {
    let alice = app.register("alice").await;
    app.register("bob").await;
    let slug = app.create_article(&alice, "Mine", &["own"]).await;
    app.add_comment(&alice, &slug, "a comment of mine").await;
    app.post(
        "/api/profiles/bob/follow",
        Some(&alice),
        serde_json::json!({}),
    )
    .await
    .assert_status(StatusCode::OK);
    app.post(
        &format!("/api/articles/{slug}/favorite"),
        Some(&alice),
        serde_json::json!({}),
    )
    .await
    .assert_status(StatusCode::OK);
    let reply = app.get("/api/user/export", Some(&alice)).await;
    reply.assert_status(StatusCode::OK);
    let export = &reply.body["export"];
    assert_eq!(export["user"]["email"], "alice@example.com");
    assert_eq!(export["user"]["username"], "alice");
    assert_eq!(export["articles"][0]["slug"], slug.as_str());
    assert_eq!(export["comments"][0]["body"], "a comment of mine");
    assert_eq!(export["following"], serde_json::json!(["bob"]));
    assert_eq!(export["favorites"], serde_json::json!([slug]));
    assert_eq!(export["mfaEnabled"], false);
    assert_eq!(export["sessions"].as_array().map(Vec::len), Some(1));
    let events = export["auditEvents"].as_array().expect("events");
    assert!(
        events.iter().any(|e| e["type"] == "user_registered"),
        "{events:?}"
    );
    assert!(
        !reply.body.to_string().contains("$argon2"),
        "no hash: {}",
        reply.body
    );
    assert_eq!(rows_of(&app, "user_data_exported").await.len(), 1);
    // A token whose password authentication is stale must step up first.
    app.clock.advance(std::time::Duration::from_secs(601));
    let stale = app.get("/api/user/export", Some(&alice)).await;
    stale.assert_status(StatusCode::FORBIDDEN);
    assert_eq!(rows_of(&app, "user_data_exported").await.len(), 1);
}

async fn an_owner_deletes_their_account_and_keeps_nothing_personal(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let slug = app.create_article(&alice, "Before I go", &[]).await;
    app.post(
        "/api/profiles/alice/follow",
        Some(&bob),
        serde_json::json!({}),
    )
    .await
    .assert_status(StatusCode::OK);
    // A token without a recent password authentication cannot delete.
    app.clock.advance(std::time::Duration::from_secs(601));
    let stale = app
        .request(reqwest::Method::DELETE, "/api/user", Some(&alice), None)
        .await;
    stale.assert_status(StatusCode::FORBIDDEN);
    let alice = token_of(&app.login_user("alice").await);
    let deleted = app
        .request(reqwest::Method::DELETE, "/api/user", Some(&alice), None)
        .await;
    deleted.assert_status(StatusCode::NO_CONTENT);
    assert_alice_deleted(&app, &alice, r#""mode":"anonymise""#).await;
    app.get("/api/profiles/alice", None)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    let article = app.article(&slug, None).await;
    let author = article["author"]["username"].as_str().expect("author");
    assert!(author.starts_with("deleted-"), "{author}");
    // The name and the address are free again.
    app.register("alice").await;
}

async fn deletion_can_remove_the_content_too(engine: Engine) {
    let app = TestApp::spawn_with(engine, &[("AERIE_ACCOUNT_DELETION", "remove")]).await;
    let alice = app.register("alice").await;
    let slug = app.create_article(&alice, "Gone with me", &[]).await;
    app.request(reqwest::Method::DELETE, "/api/user", Some(&alice), None)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    app.get(&format!("/api/articles/{slug}"), None)
        .await
        .assert_status(StatusCode::NOT_FOUND);
    let users = app.query_text("SELECT username FROM users").await;
    assert!(users.is_empty(), "{users:?}");
    let events = rows_of(&app, "account_deleted").await;
    assert!(
        events[0].detail.contains(r#""mode":"remove""#),
        "{}",
        events[0].detail
    );
}

async fn an_administrator_deletes_an_account_only_after_a_recent_password(app: TestApp) {
    let alice = app.register("alice").await;
    let slug = app.create_article(&alice, "Spam, spam", &[]).await;
    let bob = app.register("bob").await;
    app.register("admin").await;
    app.set_role("admin", "admin").await;
    let admin = token_of(&app.login_user("admin").await);
    let delete = |path: &'static str, token: String| {
        let app = &app;
        async move {
            app.request(reqwest::Method::DELETE, path, Some(&token), None)
                .await
        }
    };
    delete("/api/admin/users/alice", bob.clone())
        .await
        .assert_status(StatusCode::FORBIDDEN);
    delete("/api/admin/users/admin", admin.clone())
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    delete("/api/admin/users/nobody", admin.clone())
        .await
        .assert_status(StatusCode::NOT_FOUND);
    // A stolen admin session without a recent password cannot erase anyone.
    app.clock.advance(std::time::Duration::from_secs(601));
    let stale = delete("/api/admin/users/alice", admin.clone()).await;
    stale.assert_status(StatusCode::FORBIDDEN);
    assert!(
        stale.headers.get("x-aerie-step-up").is_some(),
        "{}",
        stale.body
    );
    app.get("/api/user", Some(&alice))
        .await
        .assert_status(StatusCode::OK);
    assert!(rows_of(&app, "account_deleted").await.is_empty());

    let admin = token_of(&app.login_user("admin").await);
    delete("/api/admin/users/alice", admin)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let event = assert_alice_deleted(&app, &alice, r#""by":"admin""#).await;
    let author = app.article(&slug, None).await["author"]["username"].clone();
    assert!(
        author.as_str().is_some_and(|a| a.starts_with("deleted-")),
        "{author}"
    );
    let ids = app
        .query_text("SELECT CAST(id AS TEXT) FROM users WHERE username = 'admin'")
        .await;
    let admin_id = ids[0].parse::<i64>().ok();
    assert_eq!(event.actor_id, admin_id);
    assert!(event.subject_id.is_some());
    assert_ne!(event.subject_id, admin_id);
}

async fn the_operator_deletes_an_account_from_the_command_line(app: TestApp) {
    let alice = app.register("alice").await;
    let out = aerie(&app, "", &["user", "delete", "alice"], "").await;
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("alice deleted (anonymise)"), "{printed}");
    assert_alice_deleted(&app, &alice, r#""by":"cli""#).await;
}

/// Alice's account is gone: her token and her password no longer work, and the trail holds one
/// `account_deleted` event whose detail contains `detail`. Answers that event.
async fn assert_alice_deleted(app: &TestApp, token: &str, detail: &str) -> aerie::store::AuditRow {
    app.get("/api/user", Some(token))
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    app.login("alice@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    let mut events = rows_of(app, "account_deleted").await;
    assert_eq!(events.len(), 1);
    let event = events.remove(0);
    assert!(event.detail.contains(detail), "{}", event.detail);
    event
}
