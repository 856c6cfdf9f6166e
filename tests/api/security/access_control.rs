//! Access control: the route × actor matrix generated from one table, the admin API, path
//! tricks against admin routes, and the first administrator coming only from the CLI.

use aerie::domain::Role;
use aerie::http::access::{Access, ROUTES};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{PASSWORD, TestApp, engine_tests, token_of};

/// The actors of the matrix, in column order.
const ACTORS: [&str; 5] = ["anonymous", "owner", "other", "editor", "admin"];

/// Expected status per actor for every route. Adding a route means adding its row here:
/// the matrix test fails on a route without one.
const MATRIX: &[(&str, &str, [u16; 5])] = &[
    ("POST", "/api/users", [201, 201, 201, 201, 201]),
    ("POST", "/api/users/login", [200, 200, 200, 200, 200]),
    ("GET", "/api/user", [401, 200, 200, 200, 200]),
    ("PUT", "/api/user", [401, 200, 200, 200, 200]),
    ("GET", "/api/user/export", [401, 200, 200, 200, 200]),
    ("GET", "/api/profiles/{username}", [200, 200, 200, 200, 200]),
    (
        "POST",
        "/api/profiles/{username}/follow",
        [401, 200, 200, 200, 200],
    ),
    (
        "DELETE",
        "/api/profiles/{username}/follow",
        [401, 200, 200, 200, 200],
    ),
    ("GET", "/api/articles", [200, 200, 200, 200, 200]),
    ("POST", "/api/articles", [401, 201, 201, 201, 201]),
    ("GET", "/api/articles/feed", [401, 200, 200, 200, 200]),
    ("GET", "/api/articles/{slug}", [200, 200, 200, 200, 200]),
    ("PUT", "/api/articles/{slug}", [401, 200, 403, 200, 200]),
    ("DELETE", "/api/articles/{slug}", [401, 204, 403, 204, 204]),
    (
        "GET",
        "/api/articles/{slug}/comments",
        [200, 200, 200, 200, 200],
    ),
    (
        "POST",
        "/api/articles/{slug}/comments",
        [401, 200, 200, 200, 200],
    ),
    (
        "DELETE",
        "/api/articles/{slug}/comments/{id}",
        [401, 204, 403, 204, 204],
    ),
    (
        "POST",
        "/api/articles/{slug}/favorite",
        [401, 200, 200, 200, 200],
    ),
    (
        "DELETE",
        "/api/articles/{slug}/favorite",
        [401, 200, 200, 200, 200],
    ),
    ("GET", "/api/tags", [200, 200, 200, 200, 200]),
    ("GET", "/api/admin/users", [401, 403, 403, 403, 200]),
    ("GET", "/api/admin/audit", [401, 403, 403, 403, 200]),
    (
        "PUT",
        "/api/admin/users/{username}/role",
        [401, 403, 403, 403, 200],
    ),
    (
        "POST",
        "/api/admin/users/{username}/disable",
        [401, 403, 403, 403, 200],
    ),
    (
        "POST",
        "/api/admin/users/{username}/enable",
        [401, 403, 403, 403, 200],
    ),
    (
        "DELETE",
        "/api/admin/users/{username}/sessions",
        [401, 403, 403, 403, 204],
    ),
    ("PUT", "/api/user/password", [401, 422, 422, 422, 422]),
    ("POST", "/api/auth/step-up", [401, 200, 200, 200, 200]),
    // A wrong password; no enrolment to confirm; MFA not on: each a 422 that changes nothing.
    ("POST", "/api/auth/mfa/totp", [401, 422, 422, 422, 422]),
    (
        "POST",
        "/api/auth/mfa/totp/confirm",
        [401, 422, 422, 422, 422],
    ),
    ("DELETE", "/api/auth/mfa/totp", [401, 422, 422, 422, 422]),
    // The challenge is the credential: an unknown one is 401 for everyone.
    ("POST", "/api/users/login/mfa", [401, 401, 401, 401, 401]),
    ("POST", "/api/auth/refresh", [401, 401, 401, 401, 401]),
    ("GET", "/api/auth/sessions", [401, 200, 200, 200, 200]),
    (
        "DELETE",
        "/api/auth/sessions/{id}",
        [401, 404, 404, 404, 404],
    ),
    // The mailed token is the credential: an unknown one is 422 for everyone; a reset
    // request is 202 for any address; resending needs a signed-in caller.
    ("POST", "/api/auth/email/verify", [422, 422, 422, 422, 422]),
    (
        "POST",
        "/api/auth/email/verify/resend",
        [401, 202, 202, 202, 202],
    ),
    ("POST", "/api/auth/email/confirm", [422, 422, 422, 422, 422]),
    (
        "POST",
        "/api/auth/password-reset",
        [202, 202, 202, 202, 202],
    ),
    (
        "POST",
        "/api/auth/password-reset/confirm",
        [422, 422, 422, 422, 422],
    ),
    // After every row that acts on the target account, before logging out ends the tokens.
    (
        "DELETE",
        "/api/admin/users/{username}",
        [401, 403, 403, 403, 204],
    ),
    ("POST", "/api/auth/logout", [401, 204, 204, 204, 204]),
    ("POST", "/api/auth/logout-all", [401, 204, 204, 204, 204]),
    ("GET", "/.well-known/jwks.json", [200, 200, 200, 200, 200]),
    ("GET", "/healthz", [200, 200, 200, 200, 200]),
    ("GET", "/readyz", [200, 200, 200, 200, 200]),
    // No metrics token configured: the route does not exist, whoever asks.
    ("GET", "/metrics", [404, 404, 404, 404, 404]),
    ("GET", "/openapi.json", [200, 200, 200, 200, 200]),
    ("GET", "/docs", [200, 200, 200, 200, 200]),
    // Last: it deletes each actor's account.
    ("DELETE", "/api/user", [401, 204, 204, 204, 204]),
];

/// The table in `src/http/access.rs` must agree with the matrix above, which is written
/// independently of it. Handlers guard themselves too (see `app::tests`), so a weakened table
/// row would not show in the statuses alone: this catches it.
#[test]
fn the_access_table_agrees_with_the_matrix() {
    for rule in ROUTES {
        let what = format!("{} {}", rule.method, rule.path);
        let (_, _, [anonymous, owner, other, editor, _]) = MATRIX
            .iter()
            .find(|(m, p, _)| *m == rule.method.as_str() && *p == rule.path)
            .unwrap_or_else(|| panic!("{what} has no row in the access matrix"));
        match rule.access {
            // Anonymous callers are answered like signed-in ones.
            Access::Public => assert_eq!(anonymous, owner, "{what} is public in the table"),
            Access::Authenticated => {
                assert_eq!(*anonymous, 401, "{what}");
                assert_ne!(*owner, 403, "{what}: the table lets any signed-in user in");
            }
            // No user's token opens it: without the metrics token it does not exist.
            Access::MetricsToken => {
                for status in [anonymous, owner, other, editor] {
                    assert_eq!(*status, 404, "{what}");
                }
            }
            Access::Permission(permission) => {
                assert_eq!(*anonymous, 401, "{what}");
                for (role, status) in [
                    (Role::User, owner),
                    (Role::User, other),
                    (Role::Editor, editor),
                ] {
                    assert_eq!(*status == 403, !role.can(permission), "{what} for {role:?}");
                }
            }
        }
    }
}

async fn login(app: &TestApp, name: &str) -> String {
    token_of(&app.login_user(name).await)
}

/// Registers the matrix's users; returns each actor's token (None for anonymous).
async fn actors(app: &TestApp) -> Vec<Option<String>> {
    for name in ["owner", "other", "editor", "admin", "target"] {
        app.register(name).await;
    }
    app.set_role("editor", "editor").await;
    app.set_role("admin", "admin").await;
    let mut tokens = vec![None];
    for name in &ACTORS[1..] {
        tokens.push(Some(login(app, name).await));
    }
    tokens
}

/// A request for `route` with its path parameters filled with fresh objects of `owner`.
async fn instantiate(
    app: &TestApp,
    owner: &str,
    method: &str,
    path: &str,
    n: usize,
) -> (Method, String, Option<Value>) {
    if path == "/api/auth/sessions/{id}" {
        return (
            Method::DELETE,
            "/api/auth/sessions/no-such-session".into(),
            None,
        );
    }
    let mut path = path.replace("{username}", "target");
    if path.contains("{slug}") {
        let slug = app
            .create_article(owner, &format!("Matrix article {n}"), &["m"])
            .await;
        path = path.replace("{slug}", &slug);
        if path.contains("{id}") {
            let reply = app
                .post(
                    &format!("/api/articles/{slug}/comments"),
                    Some(owner),
                    json!({"comment": {"body": "c"}}),
                )
                .await;
            let id = reply.body["comment"]["id"].as_i64().expect("comment id");
            path = path.replace("{id}", &id.to_string());
        }
    }
    let body = match (method, path.as_str()) {
        ("POST", "/api/users") => Some(
            json!({"user": {"username": format!("new{n}"), "email": format!("new{n}@example.com"), "password": PASSWORD}}),
        ),
        ("POST", "/api/users/login") => {
            Some(json!({"user": {"email": "target@example.com", "password": PASSWORD}}))
        }
        ("PUT", "/api/user") => Some(json!({"user": {"bio": format!("bio {n}")}})),
        ("POST", "/api/articles") => {
            Some(json!({"article": {"title": format!("New {n}"), "description": "d", "body": "b"}}))
        }
        ("PUT", p) if p.starts_with("/api/articles/") => {
            Some(json!({"article": {"body": "edited"}}))
        }
        ("POST", p) if p.ends_with("/comments") => Some(json!({"comment": {"body": "hi"}})),
        ("PUT", p) if p.ends_with("/role") => Some(json!({"role": "editor"})),
        ("PUT", "/api/user/password") => Some(
            json!({"currentPassword": "wrong password here", "newPassword": "another strong passphrase 9"}),
        ),
        ("POST", "/api/auth/refresh") => Some(json!({"refreshToken": "A".repeat(43)})),
        ("POST", "/api/auth/step-up") => Some(json!({"password": PASSWORD})),
        ("POST", "/api/auth/mfa/totp") => Some(json!({"password": "wrong password here"})),
        ("POST", "/api/auth/mfa/totp/confirm") => Some(json!({"code": "123456"})),
        ("DELETE", "/api/auth/mfa/totp") => Some(json!({"password": PASSWORD})),
        ("POST", "/api/auth/email/verify" | "/api/auth/email/confirm") => {
            Some(json!({"token": "A".repeat(43)}))
        }
        ("POST", "/api/auth/password-reset") => Some(json!({"email": "target@example.com"})),
        ("POST", "/api/auth/password-reset/confirm") => {
            Some(json!({"token": "A".repeat(43), "newPassword": "another strong passphrase 9"}))
        }
        ("POST", "/api/users/login/mfa") => {
            Some(json!({"challenge": "A".repeat(43), "code": "123456"}))
        }
        _ => None,
    };
    (method.parse().expect("method"), path, body)
}

async fn every_route_answers_each_actor_as_the_matrix_says(app: TestApp) {
    for rule in ROUTES {
        assert!(
            MATRIX
                .iter()
                .any(|(m, p, _)| *m == rule.method.as_str() && *p == rule.path),
            "route {} {} has no row in the access matrix",
            rule.method,
            rule.path
        );
    }
    let tokens = actors(&app).await;
    let owner = tokens[1].clone().expect("owner token");
    let mut n = 0;
    for (method, template, expected) in MATRIX {
        for (actor, token) in tokens.iter().enumerate() {
            n += 1;
            let (method, path, body) = instantiate(&app, &owner, method, template, n).await;
            // Logging out ends the session: use a fresh one so the actor's token lives on.
            // Deleting the account needs a recent login, which earlier rows' tokens may lack.
            let fresh = template.starts_with("/api/auth/logout")
                || (method.as_str() == "DELETE" && *template == "/api/user");
            let token = match token {
                Some(_) if fresh => Some(login(&app, ACTORS[actor]).await),
                other => other.clone(),
            };
            let reply = app
                .request(method.clone(), &path, token.as_deref(), body)
                .await;
            assert_eq!(
                reply.status.as_u16(),
                expected[actor],
                "{method} {template} as {}: {}",
                ACTORS[actor],
                reply.body
            );
        }
    }
}

async fn role_and_disable_changes_take_effect_and_are_admin_only(app: TestApp) {
    let tokens = actors(&app).await;
    let admin = tokens[4].clone().expect("admin");
    let target = login(&app, "target").await;
    let disabled = app
        .post("/api/admin/users/target/disable", Some(&admin), json!({}))
        .await;
    disabled.assert_status(StatusCode::OK);
    assert_eq!(disabled.body["user"]["disabled"], true);
    assert!(disabled.body["user"].get("passwordHash").is_none());
    assert_eq!(
        app.get("/api/user", Some(&target)).await.status,
        StatusCode::UNAUTHORIZED,
        "disabled user's token still works"
    );
    let refused = app.login("target@example.com", PASSWORD).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    app.post("/api/admin/users/target/enable", Some(&admin), json!({}))
        .await;
    let editor = app
        .put(
            "/api/admin/users/target/role",
            Some(&admin),
            json!({"role": "editor"}),
        )
        .await;
    assert_eq!(editor.body["user"]["role"], "editor");
    let new_token = login(&app, "target").await;
    assert_eq!(
        app.get("/api/user", Some(&new_token)).await.body["user"]["role"],
        "editor"
    );
    let listed = app
        .get("/api/admin/users?query=TARG&limit=5", Some(&admin))
        .await;
    assert_eq!(listed.body["usersCount"], 1, "{}", listed.body);
    assert_eq!(listed.body["users"][0]["username"], "target");
    let wildcard = app.get("/api/admin/users?query=%25", Some(&admin)).await;
    assert_eq!(wildcard.body["usersCount"], 0, "% must match only itself");
}

async fn granting_admin_needs_a_fresh_login(app: TestApp) {
    let tokens = actors(&app).await;
    let admin = tokens[4].clone().expect("admin");
    app.clock.advance(std::time::Duration::from_secs(11 * 60));
    let stale = app
        .put(
            "/api/admin/users/target/role",
            Some(&admin),
            json!({"role": "admin"}),
        )
        .await;
    stale.assert_status(StatusCode::FORBIDDEN);
    assert_eq!(stale.error_on("auth"), Some("re-authentication required"));
    let still_user = app
        .put(
            "/api/admin/users/target/role",
            Some(&admin),
            json!({"role": "editor"}),
        )
        .await;
    assert_eq!(
        still_user.status,
        StatusCode::OK,
        "lesser roles need no fresh login"
    );
    let fresh = login(&app, "admin").await;
    let granted = app
        .put(
            "/api/admin/users/target/role",
            Some(&fresh),
            json!({"role": "admin"}),
        )
        .await;
    granted.assert_status(StatusCode::OK);
}

async fn admins_cannot_lock_themselves_out_and_bad_roles_are_refused(app: TestApp) {
    let tokens = actors(&app).await;
    let admin = tokens[4].clone().expect("admin");
    let own = app
        .put(
            "/api/admin/users/admin/role",
            Some(&admin),
            json!({"role": "user"}),
        )
        .await;
    assert_eq!(own.status, StatusCode::UNPROCESSABLE_ENTITY);
    let own_disable = app
        .post("/api/admin/users/ADMIN/disable", Some(&admin), json!({}))
        .await;
    assert_eq!(own_disable.status, StatusCode::UNPROCESSABLE_ENTITY);
    for bad in [
        json!({"role": "root"}),
        json!({"role": "admin", "extra": 1}),
        json!({"role": 1}),
    ] {
        let reply = app
            .put("/api/admin/users/target/role", Some(&admin), bad.clone())
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let missing = app
        .put(
            "/api/admin/users/nobody/role",
            Some(&admin),
            json!({"role": "user"}),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

async fn a_fresh_database_has_no_admin_and_no_default_credentials(app: TestApp) {
    let reply = app.login("admin@example.com", "admin").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // Not addresses: refused on the email's shape before any lookup.
    for (email, password) in [("admin", "admin"), ("admin@localhost", "password")] {
        let reply = app.login(email, password).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{email}");
    }
    let token = app.register("first").await;
    assert_eq!(
        app.get("/api/user", Some(&token)).await.body["user"]["role"],
        "user",
        "the first account is not an admin"
    );
    assert_eq!(
        app.get("/api/admin/users", Some(&token)).await.status,
        StatusCode::FORBIDDEN
    );
}

async fn role_in_the_body_is_mass_assignment_and_is_refused(app: TestApp) {
    let token = app.register("mass").await;
    for body in [
        json!({"user": {"role": "admin"}}),
        json!({"user": {"disabled": false}}),
        json!({"user": {"id": 1}}),
    ] {
        let reply = app.put("/api/user", Some(&token), body.clone()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    assert_eq!(
        app.get("/api/user", Some(&token)).await.body["user"]["role"],
        "user"
    );
}

/// Sends a request line exactly as written (no client-side path normalization).
async fn raw_get(app: &TestApp, target: &str, token: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.host_port();
    let mut stream = app.connect_raw().await;
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Token {token}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

async fn path_tricks_never_reach_an_admin_handler_without_the_permission(app: TestApp) {
    let user = app.register("plain").await;
    for target in [
        "/api/admin/users",
        "/api/admin/../admin/users",
        "/api//admin/users",
        "/api/ADMIN/users",
        "/api/admin/users/",
        "/api/admin/%2e%2e/admin/users",
        "/api/admin%2fusers",
        "/api/admin/users;jsessionid=x",
        "/api/./admin/users",
    ] {
        let status = raw_get(&app, target, &user).await;
        assert!(
            matches!(status, 400 | 403 | 404 | 405),
            "{target} answered {status}"
        );
    }
    let override_header = app
        .client
        .get(app.url("/api/admin/users/plain/sessions"))
        .header("Authorization", format!("Token {user}"))
        .header("X-HTTP-Method-Override", "DELETE")
        .send()
        .await
        .expect("sent");
    assert_eq!(
        override_header.status(),
        StatusCode::METHOD_NOT_ALLOWED,
        "method overrides are ignored"
    );
}

engine_tests!(
    every_route_answers_each_actor_as_the_matrix_says,
    role_and_disable_changes_take_effect_and_are_admin_only,
    granting_admin_needs_a_fresh_login,
    admins_cannot_lock_themselves_out_and_bad_roles_are_refused,
    a_fresh_database_has_no_admin_and_no_default_credentials,
    role_in_the_body_is_mass_assignment_and_is_refused,
    path_tricks_never_reach_an_admin_handler_without_the_permission,
);
