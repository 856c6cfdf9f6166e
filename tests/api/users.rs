//! Registration, login and the current user, on both engines.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{self, PASSWORD, Reply, TestApp, engine_tests, token_of};

async fn register_returns_201_with_a_user_and_token(app: TestApp) {
    let reply = app
        .post(
            "/api/users",
            None,
            json!({"user": {"username": "Jacob", "email": "jake@jake.jake", "password": PASSWORD}}),
        )
        .await;
    reply.assert_status(StatusCode::CREATED);
    let user = &reply.body["user"];
    assert_eq!(user["username"], "Jacob");
    assert_eq!(user["email"], "jake@jake.jake");
    assert_eq!(user["bio"], serde_json::Value::Null);
    assert_eq!(user["image"], serde_json::Value::Null);
    assert_eq!(user["role"], "user");
    assert!(
        user["token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3)
    );
    assert!(reply.headers.contains_key("x-request-id"));
}

async fn login_then_current_user(app: TestApp) {
    app.register("alice").await;
    let reply = app.login("ALICE@example.com", PASSWORD).await;
    reply.assert_status(StatusCode::OK);
    let token = token_of(&reply.body["user"]);
    let me = app.get("/api/user", Some(&token)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["user"]["username"], "alice");
    assert_eq!(me.body["user"]["token"], token.as_str());
}

/// The fields a User object may carry: the contract's, plus Aerie's `refreshToken`, `role`
/// and `emailVerified`.
const USER_KEYS: &[&str] = &[
    "email",
    "token",
    "username",
    "bio",
    "image",
    "refreshToken",
    "role",
    "emailVerified",
];

/// Asserts the User shape: every contract field present, nothing beyond Aerie's additions.
#[track_caller]
fn assert_user_shape(body: &serde_json::Value) {
    common::assert_keys(body, &["user"]);
    let user = body["user"].as_object().expect("user object");
    for key in ["email", "token", "username", "bio", "image"] {
        assert!(user.contains_key(key), "{key} missing from {body}");
    }
    for key in user.keys() {
        assert!(
            USER_KEYS.contains(&key.as_str()),
            "unexpected {key} in {body}"
        );
    }
}

/// A 422 saying that the value of `field` belongs to another account.
#[track_caller]
fn assert_taken(reply: &Reply, field: &str) {
    reply.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        reply.body,
        json!({"errors": {field: ["has already been taken"]}})
    );
}

async fn update_user_changes_email_username_bio_and_image(app: TestApp) {
    let token = app.register("alice").await;
    let reply = app
        .put(
            "/api/user",
            Some(&token),
            json!({"user": {
                "email": "alice.new@example.org",
                "username": "alice2",
                "bio": "I like to skateboard",
                "image": "https://i.stack.imgur.com/xHWG8.jpg",
            }}),
        )
        .await;
    reply.assert_status(StatusCode::OK);
    assert_user_shape(&reply.body);
    let user = &reply.body["user"];
    // A new address takes effect once the link mailed to it is followed (development writes
    // the mail as an `.eml` file); until then the account keeps the old one.
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["username"], "alice2");
    assert_eq!(user["bio"], "I like to skateboard");
    assert_eq!(user["image"], "https://i.stack.imgur.com/xHWG8.jpg");
    assert_eq!(user["token"], token.as_str());

    let link = app
        .outbox_mail("alice.new@example.org", "Confirm")
        .await
        .token()
        .expect("a confirmation link");
    app.post("/api/auth/email/confirm", None, json!({ "token": link }))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let me = app.get("/api/user", Some(&token)).await;
    me.assert_status(StatusCode::OK);
    assert_eq!(me.body["user"]["email"], "alice.new@example.org");
    assert_eq!(me.body["user"]["username"], "alice2");
    assert_eq!(me.body["user"]["bio"], "I like to skateboard");
    assert_eq!(
        me.body["user"]["image"],
        "https://i.stack.imgur.com/xHWG8.jpg"
    );

    let profile = app.get("/api/profiles/alice2", None).await;
    profile.assert_status(StatusCode::OK);
    assert_eq!(profile.body["profile"]["bio"], "I like to skateboard");
    assert_eq!(
        app.get("/api/profiles/alice", None).await.status,
        StatusCode::NOT_FOUND
    );

    assert_eq!(
        app.login("alice.new@example.org", PASSWORD).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.login("alice@example.com", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn update_user_leaves_omitted_fields_unchanged(app: TestApp) {
    let token = app.register("alice").await;
    let reply = app
        .put(
            "/api/user",
            Some(&token),
            json!({"user": {"bio": "first", "image": "https://cdn.example.com/a.png"}}),
        )
        .await;
    reply.assert_status(StatusCode::OK);
    let reply = app
        .put(
            "/api/user",
            Some(&token),
            json!({"user": {"bio": "second"}}),
        )
        .await;
    reply.assert_status(StatusCode::OK);
    let user = &reply.body["user"];
    assert_eq!(user["bio"], "second");
    assert_eq!(user["image"], "https://cdn.example.com/a.png");
    assert_eq!(user["username"], "alice");
    assert_eq!(user["email"], "alice@example.com");
    let reply = app
        .put("/api/user", Some(&token), json!({"user": {}}))
        .await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.body["user"]["bio"], "second");
}

async fn bio_and_image_null_clear_them(app: TestApp) {
    let token = app.register("alice").await;
    app.put(
        "/api/user",
        Some(&token),
        json!({"user": {"bio": "temporary", "image": "https://cdn.example.com/a.png"}}),
    )
    .await;
    let reply = app
        .put(
            "/api/user",
            Some(&token),
            json!({"user": {"bio": null, "image": null}}),
        )
        .await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.body["user"]["bio"], serde_json::Value::Null);
    assert_eq!(reply.body["user"]["image"], serde_json::Value::Null);
    let me = app.get("/api/user", Some(&token)).await;
    assert_eq!(me.body["user"]["bio"], serde_json::Value::Null);
    assert_eq!(me.body["user"]["image"], serde_json::Value::Null);
}

async fn bio_and_image_empty_strings_clear_them(app: TestApp) {
    let token = app.register("alice").await;
    app.put(
        "/api/user",
        Some(&token),
        json!({"user": {"bio": "temporary", "image": "https://cdn.example.com/a.png"}}),
    )
    .await;
    let reply = app
        .put(
            "/api/user",
            Some(&token),
            json!({"user": {"bio": "", "image": ""}}),
        )
        .await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.body["user"]["bio"], serde_json::Value::Null);
    assert_eq!(reply.body["user"]["image"], serde_json::Value::Null);
    let profile = app.get("/api/profiles/alice", None).await;
    assert_eq!(profile.body["profile"]["bio"], serde_json::Value::Null);
    assert_eq!(profile.body["profile"]["image"], serde_json::Value::Null);
}

async fn login_by_email_ignores_case(app: TestApp) {
    let reply = app
        .post("/api/users", None, json!({"user": {"username": "mixed", "email": "Mixed.Case@Example.com", "password": PASSWORD}}))
        .await;
    reply.assert_status(StatusCode::CREATED);
    for email in [
        "Mixed.Case@Example.com",
        "mixed.case@example.com",
        "MIXED.CASE@EXAMPLE.COM",
    ] {
        let reply = app.login(email, PASSWORD).await;
        assert_eq!(reply.status, StatusCode::OK, "{email}: {}", reply.body);
        assert_user_shape(&reply.body);
        // The address is shown as it was registered.
        assert_eq!(reply.body["user"]["email"], "Mixed.Case@Example.com");
        assert_eq!(reply.body["user"]["username"], "mixed");
    }
}

async fn login_returns_the_user_shape(app: TestApp) {
    app.register("alice").await;
    let reply = app.login("alice@example.com", PASSWORD).await;
    reply.assert_status(StatusCode::OK);
    assert_user_shape(&reply.body);
    let user = &reply.body["user"];
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["username"], "alice");
    assert_eq!(user["bio"], serde_json::Value::Null);
    assert_eq!(user["image"], serde_json::Value::Null);
    let token = user["token"].as_str().expect("token");
    let me = app.get("/api/user", Some(token)).await;
    me.assert_status(StatusCode::OK);
    assert_user_shape(&me.body);
    assert_eq!(me.body["user"]["email"], "alice@example.com");
}

async fn usernames_are_unique_ignoring_case_at_registration(app: TestApp) {
    app.register("alice").await;
    let reply = app
        .post("/api/users", None, json!({"user": {"username": "ALICE", "email": "other@example.com", "password": PASSWORD}}))
        .await;
    assert_taken(&reply, "username");
}

async fn emails_are_unique_ignoring_case_at_registration(app: TestApp) {
    app.register("alice").await;
    let reply = app
        .post("/api/users", None, json!({"user": {"username": "other", "email": "Alice@EXAMPLE.com", "password": PASSWORD}}))
        .await;
    assert_taken(&reply, "email");
}

async fn update_to_a_taken_username_or_email_is_422_on_that_field(app: TestApp) {
    app.register("alice").await;
    let bob = app.register("bob").await;
    let reply = app
        .put(
            "/api/user",
            Some(&bob),
            json!({"user": {"username": "Alice"}}),
        )
        .await;
    assert_taken(&reply, "username");
    let reply = app
        .put(
            "/api/user",
            Some(&bob),
            json!({"user": {"email": "ALICE@example.com"}}),
        )
        .await;
    assert_taken(&reply, "email");
    let me = app.get("/api/user", Some(&bob)).await;
    assert_eq!(me.body["user"]["username"], "bob");
    assert_eq!(me.body["user"]["email"], "bob@example.com");
}

async fn changing_the_case_of_ones_own_username_is_allowed(app: TestApp) {
    let token = app.register("alice").await;
    let reply = app
        .put(
            "/api/user",
            Some(&token),
            json!({"user": {"username": "Alice", "email": "ALICE@example.com"}}),
        )
        .await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.body["user"]["username"], "Alice");
    assert_eq!(reply.body["user"]["email"], "ALICE@example.com");
    let profile = app.get("/api/profiles/Alice", None).await;
    assert_eq!(profile.body["profile"]["username"], "Alice");
}

/// A username of dots alone is a path segment: `/api/profiles/..` would climb the URL, and a
/// proxy, cache or log reader that normalises paths would see another route.
async fn path_traversal_usernames_dot_and_dotdot_are_refused(app: TestApp) {
    for name in [".", "..", "..."] {
        let reply = app
            .post("/api/users", None, json!({"user": {"username": name, "email": "dots@example.com", "password": PASSWORD}}))
            .await;
        reply.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            reply.body["errors"]["username"].is_array(),
            "{name}: {}",
            reply.body
        );
    }
    let token = app.register("alice").await;
    let reply = app
        .put(
            "/api/user",
            Some(&token),
            json!({"user": {"username": ".."}}),
        )
        .await;
    reply.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reply.body["errors"]["username"].is_array(),
        "{}",
        reply.body
    );
    let me = app.get("/api/user", Some(&token)).await;
    assert_eq!(me.body["user"]["username"], "alice");
}

async fn password_change_requires_the_current_password(app: TestApp) {
    const NEW_PASSWORD: &str = "purple elephants juggle 77 moons";
    let token = app.register("alice").await;

    let without = app
        .put(
            "/api/user",
            Some(&token),
            json!({"user": {"password": NEW_PASSWORD}}),
        )
        .await;
    without.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        without.error_on("currentPassword").is_some(),
        "{}",
        without.body
    );

    let wrong = app
        .put("/api/user", Some(&token), json!({"user": {"password": NEW_PASSWORD, "currentPassword": "not the password at all"}}))
        .await;
    wrong.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        wrong.error_on("currentPassword").is_some(),
        "{}",
        wrong.body
    );
    // Neither attempt changed anything.
    assert_eq!(
        app.login("alice@example.com", PASSWORD).await.status,
        StatusCode::OK
    );

    let right = app
        .put(
            "/api/user",
            Some(&token),
            json!({"user": {"password": NEW_PASSWORD, "currentPassword": PASSWORD}}),
        )
        .await;
    right.assert_status(StatusCode::OK);
    assert_user_shape(&right.body);
    assert_eq!(right.body["user"]["username"], "alice");

    let old = app.login("alice@example.com", PASSWORD).await;
    old.assert_status(StatusCode::UNAUTHORIZED);
    let new = app.login("alice@example.com", NEW_PASSWORD).await;
    new.assert_status(StatusCode::OK);
    assert_eq!(new.body["user"]["username"], "alice");
}

async fn an_empty_password_field_in_settings_changes_nothing(app: TestApp) {
    // The RealWorld settings page sends `password: ""` when the field is left blank.
    let token = app.register("alice").await;
    let reply = app
        .put("/api/user", Some(&token), json!({"user": {"email": "alice@example.com", "username": "alice", "bio": "hi", "image": "", "password": ""}}))
        .await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.body["user"]["bio"], "hi");
    assert_eq!(
        app.login("alice@example.com", PASSWORD).await.status,
        StatusCode::OK
    );
}

#[cfg(unix)]
#[tokio::test]
async fn the_sqlite_database_holding_password_hashes_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn(common::Engine::Sqlite).await;
    app.register("private").await;
    let mode = std::fs::metadata(app.data_dir.path().join("aerie.db"))
        .expect("database file")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o077,
        0,
        "database file mode {mode:o} lets others read password hashes"
    );
}

engine_tests!(
    register_returns_201_with_a_user_and_token,
    login_then_current_user,
    update_user_changes_email_username_bio_and_image,
    update_user_leaves_omitted_fields_unchanged,
    bio_and_image_null_clear_them,
    bio_and_image_empty_strings_clear_them,
    login_by_email_ignores_case,
    login_returns_the_user_shape,
    usernames_are_unique_ignoring_case_at_registration,
    emails_are_unique_ignoring_case_at_registration,
    update_to_a_taken_username_or_email_is_422_on_that_field,
    changing_the_case_of_ones_own_username_is_allowed,
    path_traversal_usernames_dot_and_dotdot_are_refused,
    password_change_requires_the_current_password,
    an_empty_password_field_in_settings_changes_nothing,
);
