//! Login (attacks.md §3 A4, A7, A10, A11): no enumeration by answer or timing, no hashing
//! of huge passwords, no default accounts, no look-alike usernames.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use super::{assert_unauthorized, b64};
use crate::common::{PASSWORD, Reply, TestApp, engine_tests};

async fn login_does_not_reveal_whether_an_email_is_registered(app: TestApp) {
    app.register("known").await;
    let login =
        |email: &str, password: &str| json!({"user": {"email": email, "password": password}});
    let unknown = app
        .post(
            "/api/users/login",
            None,
            login("nobody@example.com", "wrong password 123"),
        )
        .await;
    let wrong = app
        .post(
            "/api/users/login",
            None,
            login("known@example.com", "wrong password 123"),
        )
        .await;
    let wrong_case = app
        .post(
            "/api/users/login",
            None,
            login("KNOWN@example.com", "wrong password 123"),
        )
        .await;
    for reply in [&unknown, &wrong, &wrong_case] {
        assert_unauthorized(reply, "failed login");
    }
    assert_eq!(unknown.body, wrong.body);
    let names = |reply: &Reply| {
        let mut names: Vec<(String, String)> = reply
            .headers
            .iter()
            // `RateLimit` counts the caller's own attempts down, whatever the account.
            .filter(|(name, _)| !matches!(name.as_str(), "x-request-id" | "date" | "ratelimit"))
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("?").to_owned()))
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names(&unknown),
        names(&wrong),
        "headers differ between unknown and known email"
    );
}

async fn huge_password_at_login_is_refused_quickly(app: TestApp) {
    app.register("target").await;
    // 1 MB: over the body limit, refused before any parsing.
    let started = Instant::now();
    let body =
        json!({"user": {"email": "target@example.com", "password": "p".repeat(1024 * 1024)}});
    let reply = app
        .raw_post("/api/users/login", body.to_string().into_bytes(), false)
        .await;
    reply.assert_status(StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        reply.body["errors"]["body"][0].is_string(),
        "{}",
        reply.body
    );
    // 60 KB: under the body limit but far over any real password; refused before hashing.
    let reply = app
        .login("target@example.com", &"p".repeat(60 * 1024))
        .await;
    assert_unauthorized(&reply, "60 KB password");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // Registration refuses it with a field error, not a hash of 60 KB.
    let reply = app
        .post("/api/users", None, json!({"user": {"username": "longpw", "email": "longpw@example.com", "password": "p".repeat(60 * 1024)}}))
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.error_on("password").is_some(), "{}", reply.body);
}

async fn default_credentials_are_refused(app: TestApp) {
    app.register("someone").await;
    for (email, password) in [
        ("admin@example.com", "admin"),
        ("administrator@example.com", "changeme"),
    ] {
        let reply = app.login(email, password).await;
        assert_unauthorized(&reply, email);
    }
    // Not addresses at all: refused on the field's shape (issue 22.2), before any lookup.
    for (email, password) in [
        ("admin", "admin"),
        ("admin", "password"),
        ("admin@localhost", "admin"),
        ("root", "root"),
    ] {
        let reply = app.login(email, password).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{email}");
        assert_eq!(reply.error_on("email"), Some("is invalid"), "{email}");
    }
}

async fn unicode_lookalike_usernames_are_refused(app: TestApp) {
    app.register("bob").await;
    for name in [
        "ЬоЬ",
        "ｂｏｂ",
        "bоb",
        "bob\u{200b}",
        "\u{202e}bob",
        "bob\u{301}",
        "BOB",
        "Bob",
    ] {
        let reply = app
            .post("/api/users", None, json!({"user": {"username": name, "email": format!("{}@example.com", b64(name.as_bytes())), "password": PASSWORD}}))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name:?}: {}",
            reply.body
        );
        assert!(
            reply.error_on("username").is_some(),
            "{name:?}: {}",
            reply.body
        );
    }
    // The email is unique ignoring case, too.
    let reply = app
        .post(
            "/api/users",
            None,
            json!({"user": {"username": "bob2", "email": "BOB@Example.COM", "password": PASSWORD}}),
        )
        .await;
    reply.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.error_on("email").is_some(), "{}", reply.body);
    // The profile is still the one bob.
    assert_eq!(
        app.get("/api/profiles/BOB", None).await.body["profile"]["username"],
        "bob"
    );
}

engine_tests!(
    login_does_not_reveal_whether_an_email_is_registered,
    huge_password_at_login_is_refused_quickly,
    default_credentials_are_refused,
    unicode_lookalike_usernames_are_refused,
);
