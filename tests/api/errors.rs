//! Negative paths: every refusal has the RealWorld error shape, the right status and no
//! internal detail, on both engines (API.md "Conventions"; attacks.md §4 Z8–Z9, §5, §9).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{self, PASSWORD, Reply, TestApp, engine_tests};

/// The configured default body limit (64 KiB).
const BODY_LIMIT: usize = 64 * 1024;

/// Words that betray internals: SQL, crate names, source paths, panic text.
const LEAKS: &[&str] = &[
    "sqlx",
    "panicked",
    "stack backtrace",
    "select ",
    "insert into",
    " from ",
    "postgres",
    "sqlite",
    "/src/",
    ".rs:",
    "/home/",
    "/root/",
    "/tmp/",
];

/// Asserts `status` and the RealWorld 4xx shape `{"errors":{"<field>":["<message>",...]}}`
/// with nothing else in the body and nothing internal in the messages.
#[track_caller]
fn assert_refused(reply: &Reply, status: StatusCode) {
    assert_eq!(reply.status, status, "body: {}", reply.body);
    assert_error_shape(reply);
}

#[track_caller]
fn assert_error_shape(reply: &Reply) {
    let top = reply.body.as_object().unwrap_or_else(|| {
        panic!(
            "{}: error body is not a JSON object: {}",
            reply.status, reply.body
        )
    });
    assert_eq!(top.len(), 1, "only `errors` in a 4xx body: {}", reply.body);
    let errors = reply.body["errors"]
        .as_object()
        .unwrap_or_else(|| panic!("`errors` is not an object: {}", reply.body));
    assert!(!errors.is_empty(), "no error named: {}", reply.body);
    for (field, messages) in errors {
        let messages = messages
            .as_array()
            .unwrap_or_else(|| panic!("errors.{field} is not an array: {}", reply.body));
        assert!(!messages.is_empty(), "errors.{field} is empty");
        assert!(
            messages
                .iter()
                .all(|m| m.as_str().is_some_and(|m| !m.is_empty())),
            "errors.{field} holds a non-string or empty message: {}",
            reply.body
        );
    }
    assert_no_leak(reply);
    assert_eq!(
        reply
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "error bodies are JSON"
    );
}

#[track_caller]
fn assert_no_leak(reply: &Reply) {
    let text = reply.body.to_string().to_lowercase();
    for leak in LEAKS {
        assert!(!text.contains(leak), "error body leaks {leak:?}: {text}");
    }
}

/// A 422 whose errors name `field`.
#[track_caller]
fn assert_invalid(reply: &Reply, field: &str) {
    assert_refused(reply, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reply.error_on(field).is_some(),
        "expected an error on `{field}`: {}",
        reply.body
    );
}

/// Sends raw bytes with the given content type (or none).
async fn post_raw(app: &TestApp, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Reply {
    let mut request = app.client.post(app.url(path)).body(body);
    if let Some(content_type) = content_type {
        request = request.header("Content-Type", content_type);
    }
    common::read(request.send().await.expect("request sent")).await
}

async fn post_json_text(app: &TestApp, path: &str, token: Option<&str>, body: &str) -> Reply {
    let mut request = app
        .client
        .post(app.url(path))
        .header("Content-Type", "application/json")
        .body(body.to_owned());
    if let Some(token) = token {
        request = request.header("Authorization", format!("Token {token}"));
    }
    common::read(request.send().await.expect("request sent")).await
}

fn registration(name: &str) -> Value {
    json!({"user": {"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}})
}

async fn login_status(app: &TestApp, name: &str) -> StatusCode {
    app.login(&format!("{name}@example.com"), PASSWORD)
        .await
        .status
}

// ---------------------------------------------------------------------------------------
// 404 and 405

async fn unknown_routes_are_a_shaped_404(app: TestApp) {
    for path in [
        "/api/nothing-here",
        "/nothing",
        "/api/users/me/secret",
        "/.env",
        "/api/admin/../../etc/passwd",
    ] {
        let reply = app.get(path, None).await;
        assert_refused(&reply, StatusCode::NOT_FOUND);
    }
    let reply = app.post("/api/nothing-here", None, json!({})).await;
    assert_refused(&reply, StatusCode::NOT_FOUND);
}

async fn unknown_article_profile_and_comment_are_a_shaped_404(app: TestApp) {
    let token = app.register("owner").await;
    let slug = app.create_article(&token, "Real article", &[]).await;
    for path in [
        "/api/articles/no-such-article",
        "/api/profiles/nobody",
        "/api/articles/no-such-article/comments",
    ] {
        let reply = app.get(path, Some(&token)).await;
        assert_refused(&reply, StatusCode::NOT_FOUND);
    }
    for reply in [
        app.delete(
            &format!("/api/articles/{slug}/comments/987654"),
            Some(&token),
        )
        .await,
        app.delete("/api/articles/no-such-article/comments/1", Some(&token))
            .await,
        app.delete("/api/articles/no-such-article", Some(&token))
            .await,
        app.post(
            "/api/articles/no-such-article/comments",
            Some(&token),
            json!({"comment": {"body": "hi"}}),
        )
        .await,
        app.post("/api/profiles/nobody/follow", Some(&token), json!({}))
            .await,
    ] {
        assert_refused(&reply, StatusCode::NOT_FOUND);
    }
}

async fn wrong_method_is_a_shaped_405(app: TestApp) {
    for (method, path) in [
        (Method::PATCH, "/api/user"),
        (Method::DELETE, "/api/tags"),
        (Method::GET, "/api/users"),
        (Method::PUT, "/api/users/login"),
        // A state change through GET (attacks.md C5) is not routed at all.
        (Method::GET, "/api/articles/some-slug/favorite"),
        (Method::GET, "/api/profiles/someone/follow"),
    ] {
        let reply = app.request(method.clone(), path, None, None).await;
        assert_refused(&reply, StatusCode::METHOD_NOT_ALLOWED);
        assert!(
            reply.headers.contains_key("x-request-id"),
            "{method} {path}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 415, 400, 413: content type, syntax and size

async fn non_json_content_types_are_refused_with_415(app: TestApp) {
    let json_looking = registration("simple").to_string().into_bytes();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/json-patch+json"),
        Some("application/json; charset=latin1"),
        None,
    ] {
        let reply = post_raw(&app, "/api/users", content_type, json_looking.clone()).await;
        assert_refused(&reply, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let form = b"user[username]=simple&user[email]=simple@example.com".to_vec();
    let reply = post_raw(
        &app,
        "/api/users",
        Some("application/x-www-form-urlencoded"),
        form,
    )
    .await;
    assert_refused(&reply, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Nothing was created by any of them.
    assert_eq!(login_status(&app, "simple").await, StatusCode::UNAUTHORIZED);
    // The same body as JSON is fine, so the 415s were about the content type alone.
    let reply = post_raw(
        &app,
        "/api/users",
        Some("application/json; charset=utf-8"),
        json_looking,
    )
    .await;
    reply.assert_status(StatusCode::CREATED);
}

async fn malformed_json_is_a_400(app: TestApp) {
    let mut bodies: Vec<Vec<u8>> = [
        "",
        "{",
        "{\"user\":",
        "not json",
        "{\"user\":{}}trailing",
        "{'user':{}}",
        "{\"user\":{\"username\":\"a\",}}",
        "{\"user\":{\"username\":NaN}}",
        "{\"user\":{\"username\":Infinity}}",
        "{\"user\":{\"username\":\"\\ud800\"}}",
        "\u{feff}{\"user\":{}}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    // Invalid UTF-8 inside a string, and an overlong encoding of '/'.
    bodies.push(b"{\"user\":{\"username\":\"\xff\xfe\"}}".to_vec());
    bodies.push(b"{\"user\":{\"username\":\"\xc0\xaf\"}}".to_vec());
    for body in bodies {
        let reply = post_raw(&app, "/api/users", Some("application/json"), body.clone()).await;
        assert_refused(&reply, StatusCode::BAD_REQUEST);
        assert!(
            reply.error_on("body").is_some(),
            "{:?}: {}",
            String::from_utf8_lossy(&body),
            reply.body
        );
    }
}

async fn number_edge_cases_are_refused_not_crashed(app: TestApp) {
    for number in [
        "1e999999",
        "-0",
        "1.0000000000000000000000001",
        "123456789012345678901234567890",
        "-1e-999999",
    ] {
        let body = format!(
            "{{\"user\":{{\"username\":{number},\"email\":\"n@example.com\",\"password\":\"{PASSWORD}\"}}}}"
        );
        let reply = post_raw(
            &app,
            "/api/users",
            Some("application/json"),
            body.into_bytes(),
        )
        .await;
        assert!(
            matches!(
                reply.status,
                StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY
            ),
            "{number}: {} {}",
            reply.status,
            reply.body
        );
        assert_error_shape(&reply);
    }
    let reply = app.get("/api/articles?limit=1e999999", None).await;
    assert_invalid(&reply, "limit");
}

async fn body_over_the_limit_is_a_413(app: TestApp) {
    let padding = "a".repeat(BODY_LIMIT);
    let body =
        json!({"user": {"username": "big", "email": "big@example.com", "password": padding}});
    let reply = app
        .raw_post("/api/users", body.to_string().into_bytes(), false)
        .await;
    assert_refused(&reply, StatusCode::PAYLOAD_TOO_LARGE);
    // A body just under the limit (padded with JSON whitespace) is read and handled.
    let mut small = registration("small").to_string();
    small.push_str(&" ".repeat(BODY_LIMIT - small.len() - 16));
    let reply = post_json_text(&app, "/api/users", None, &small).await;
    reply.assert_status(StatusCode::CREATED);
    assert_eq!(login_status(&app, "big").await, StatusCode::UNAUTHORIZED);
}

async fn chunked_body_over_the_limit_without_a_length_is_a_413(app: TestApp) {
    let mut body =
        br#"{"user":{"username":"chunky","email":"chunky@example.com","password":""#.to_vec();
    body.extend(std::iter::repeat_n(b'a', BODY_LIMIT + 1024));
    body.extend_from_slice(br#""}}"#);
    let reply = app.raw_post("/api/users", body, true).await;
    assert_refused(&reply, StatusCode::PAYLOAD_TOO_LARGE);
    // A small chunked body is read normally, so the 413 was about the size alone.
    let reply = app
        .raw_post(
            "/api/users",
            registration("chunky").to_string().into_bytes(),
            true,
        )
        .await;
    reply.assert_status(StatusCode::CREATED);
}

async fn mass_assignment_of_role_at_registration_is_refused(app: TestApp) {
    for extra in [
        json!({"role": "admin"}),
        json!({"id": 1}),
        json!({"createdAt": "2020-01-01T00:00:00.000Z"}),
        json!({"password_hash": "$argon2id$v=19$m=19456,t=2,p=1$x$y"}),
        json!({"token": "x"}),
        json!({"__proto__": {"admin": true}}),
        json!({"profile": {"role": "admin"}}),
    ] {
        let mut body = registration("mallory");
        for (key, value) in extra.as_object().expect("object") {
            body["user"][key] = value.clone();
        }
        let reply = app.post("/api/users", None, body).await;
        assert_invalid(&reply, "body");
    }
    let reply = app
        .post(
            "/api/users",
            None,
            json!({"user": registration("mallory")["user"], "constructor": {"prototype": {}}}),
        )
        .await;
    assert_invalid(&reply, "body");
    // None of them created an account; a clean registration then gets role "user".
    assert_eq!(
        login_status(&app, "mallory").await,
        StatusCode::UNAUTHORIZED
    );
    let reply = app.post("/api/users", None, registration("mallory")).await;
    reply.assert_status(StatusCode::CREATED);
    assert_eq!(reply.body["user"]["role"], "user");
}

async fn mass_assignment_on_update_user_changes_nothing(app: TestApp) {
    let token = app.register("mallory").await;
    for body in [
        json!({"user": {"role": "admin"}}),
        json!({"user": {"bio": "promoted", "role": "admin"}}),
        json!({"user": {"bio": "promoted", "id": 1, "createdAt": "2020-01-01T00:00:00.000Z"}}),
        json!({"user": {"bio": "promoted", "password_hash": "x"}}),
        json!({"user": {"bio": "promoted", "disabledAt": null}}),
        json!({"user": {"__proto__": {"admin": true}}}),
        json!({"user": {"profile": {"role": "admin"}}}),
        json!({"user": {"bio": "promoted"}, "role": "admin"}),
    ] {
        let reply = app.put("/api/user", Some(&token), body.clone()).await;
        assert_invalid(&reply, "body");
    }
    let me = app.get("/api/user", Some(&token)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["user"]["role"], "user");
    assert_eq!(
        me.body["user"]["bio"],
        Value::Null,
        "a refused body persists nothing"
    );
}

async fn mass_assignment_of_article_author_count_and_slug_is_refused(app: TestApp) {
    let alice = app.register("alice").await;
    let mallory = app.register("mallory").await;
    let base = json!({"title": "Forged", "description": "d", "body": "b"});
    for (key, value) in [
        ("author", json!({"username": "alice"})),
        ("favoritesCount", json!(9999)),
        ("slug", json!("fixed")),
        ("createdAt", json!("2000-01-01T00:00:00.000Z")),
        ("favorited", json!(true)),
        ("id", json!(1)),
    ] {
        let mut article = base.clone();
        article[key] = value;
        let reply = app
            .post("/api/articles", Some(&mallory), json!({"article": article}))
            .await;
        assert_invalid(&reply, "body");
    }
    let list = app.get("/api/articles", None).await;
    assert_eq!(
        list.body["articlesCount"], 0,
        "nothing persisted: {}",
        list.body
    );
    // The same holds on update: the author cannot be reassigned, nor the count inflated.
    let slug = app.create_article(&mallory, "Mine", &[]).await;
    for article in [
        json!({"author": {"username": "alice"}}),
        json!({"favoritesCount": 9999}),
        json!({"slug": "fixed"}),
    ] {
        let reply = app
            .put(
                &format!("/api/articles/{slug}"),
                Some(&mallory),
                json!({"article": article}),
            )
            .await;
        assert_invalid(&reply, "body");
    }
    let article = app.get(&format!("/api/articles/{slug}"), None).await;
    assert_eq!(article.body["article"]["author"]["username"], "mallory");
    assert_eq!(article.body["article"]["favoritesCount"], 0);
    assert_eq!(
        app.get("/api/articles/fixed", Some(&alice)).await.status,
        StatusCode::NOT_FOUND
    );
}

async fn duplicate_json_keys_are_refused(app: TestApp) {
    let body = format!(
        r#"{{"user":{{"username":"dupe","email":"a@example.com","email":"b@example.com","password":"{PASSWORD}"}}}}"#
    );
    let reply = post_json_text(&app, "/api/users", None, &body).await;
    assert_invalid(&reply, "body");
    let body = format!(
        r#"{{"user":{{"username":"dupe","email":"dupe@example.com","password":"{PASSWORD}"}},"user":{{"username":"other","email":"other@example.com","password":"{PASSWORD}"}}}}"#
    );
    let reply = post_json_text(&app, "/api/users", None, &body).await;
    assert_invalid(&reply, "body");
    assert_eq!(login_status(&app, "dupe").await, StatusCode::UNAUTHORIZED);
    assert_eq!(login_status(&app, "other").await, StatusCode::UNAUTHORIZED);
    // On login, a second password must not override the first.
    app.register("victim").await;
    let body = format!(
        r#"{{"user":{{"email":"victim@example.com","password":"wrong","password":"{PASSWORD}"}}}}"#
    );
    let reply = post_json_text(&app, "/api/users/login", None, &body).await;
    assert_invalid(&reply, "body");
}

async fn deeply_nested_json_is_refused_without_a_crash(app: TestApp) {
    let depth = 10_000;
    let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let objects = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
    let in_field = format!(r#"{{"user":{{"username":{arrays}}}}}"#);
    let in_unknown = format!(r#"{{"user":{{"username":"x","nested":{objects}}}}}"#);
    let token = app.register("nester").await;
    for body in [&arrays, &objects, &in_field, &in_unknown] {
        for path in ["/api/users", "/api/users/login"] {
            let reply = post_json_text(&app, path, None, body).await;
            assert!(reply.status.is_client_error(), "{path}: {}", reply.status);
            assert_error_shape(&reply);
        }
        let reply = post_json_text(&app, "/api/articles", Some(&token), body).await;
        assert!(reply.status.is_client_error(), "{}", reply.status);
        assert_error_shape(&reply);
    }
    // The server survived.
    assert_eq!(app.get("/api/tags", None).await.status, StatusCode::OK);
}

async fn arrays_are_not_read_as_positional_fields(app: TestApp) {
    // serde fills a struct from an array by position unless told otherwise.
    let reply = app
        .post(
            "/api/users",
            None,
            json!([["bob", "bob@example.com", PASSWORD]]),
        )
        .await;
    assert_invalid(&reply, "body");
    let reply = app
        .post(
            "/api/users",
            None,
            json!({"user": ["bob", "bob@example.com", PASSWORD]}),
        )
        .await;
    assert_invalid(&reply, "body");
    assert_eq!(login_status(&app, "bob").await, StatusCode::UNAUTHORIZED);
    let token = app.register("bob").await;
    for body in [
        json!({"user": ["bob@example.com", PASSWORD]}),
        json!([{"user": {"email": "bob@example.com", "password": PASSWORD}}]),
        json!([["bob@example.com", PASSWORD], ["bob@example.com", "guess"]]),
    ] {
        let reply = app.post("/api/users/login", None, body).await;
        assert_invalid(&reply, "body");
    }
    let reply = app
        .put(
            "/api/user",
            Some(&token),
            json!({"user": [null, null, null, null, "positional bio", null]}),
        )
        .await;
    assert_invalid(&reply, "body");
    let reply = app
        .post(
            "/api/articles",
            Some(&token),
            json!({"article": ["t", "d", "b", []]}),
        )
        .await;
    assert_invalid(&reply, "body");
    let slug = app.create_article(&token, "Positional", &[]).await;
    let reply = app
        .post(
            &format!("/api/articles/{slug}/comments"),
            Some(&token),
            json!({"comment": ["hi"]}),
        )
        .await;
    assert_invalid(&reply, "body");
    assert_eq!(
        app.get("/api/articles", None).await.body["articlesCount"],
        1
    );
}

async fn json_type_confusion_is_a_422(app: TestApp) {
    app.register("typed").await;
    for email in [
        json!({"$ne": null}),
        json!(["typed@example.com", "b"]),
        json!(1),
        json!(true),
        json!({"$gt": ""}),
    ] {
        let reply = app
            .post(
                "/api/users/login",
                None,
                json!({"user": {"email": email, "password": PASSWORD}}),
            )
            .await;
        assert_invalid(&reply, "body");
        let reply = app
            .post(
                "/api/users",
                None,
                json!({"user": {"username": "x", "email": email, "password": PASSWORD}}),
            )
            .await;
        assert_invalid(&reply, "body");
    }
    let reply = app
        .post(
            "/api/users/login",
            None,
            json!({"user": {"email": "typed@example.com", "password": {"$ne": null}}}),
        )
        .await;
    assert_invalid(&reply, "body");
    for body in [
        json!([]),
        json!("user"),
        json!(null),
        json!({"user": []}),
        json!({"user": "typed"}),
    ] {
        let reply = app.post("/api/users/login", None, body).await;
        assert_invalid(&reply, "body");
    }
    let token = app.register("author").await;
    for article in [
        json!({"title": ["a"], "description": "d", "body": "b"}),
        json!({"title": "t", "description": "d", "body": "b", "tagList": "rust"}),
        json!({"title": "t", "description": "d", "body": "b", "tagList": [1, 2]}),
        json!({"title": "t", "description": "d", "body": {"$ne": null}}),
    ] {
        let reply = app
            .post("/api/articles", Some(&token), json!({"article": article}))
            .await;
        assert_invalid(&reply, "body");
    }
}

// ---------------------------------------------------------------------------------------
// 422: every validation rule names its field

async fn registration_rules_name_their_field(app: TestApp) {
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"username": "", "email": "a@example.com", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": "a".repeat(33), "email": "a@example.com", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": "bad name", "email": "a@example.com", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": "<script>", "email": "a@example.com", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": "bell\u{7}", "email": "a@example.com", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": "nul\u{0}", "email": "a@example.com", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": "new\nline", "email": "a@example.com", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"email": "a@example.com", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": "valid", "email": "not-an-email", "password": PASSWORD}),
            "email",
        ),
        (
            json!({"username": "valid", "email": "a@b", "password": PASSWORD}),
            "email",
        ),
        (
            json!({"username": "valid", "email": "", "password": PASSWORD}),
            "email",
        ),
        (json!({"username": "valid", "password": PASSWORD}), "email"),
        (
            json!({"username": "valid", "email": "a@example.com", "password": "short"}),
            "password",
        ),
        (
            json!({"username": "valid", "email": "a@example.com", "password": "password123"}),
            "password",
        ),
        (
            json!({"username": "valid", "email": "a@example.com", "password": "Password1!"}),
            "password",
        ),
        (
            json!({"username": "valid", "email": "a@example.com", "password": "x7#Q".repeat(33)}),
            "password",
        ),
        (
            json!({"username": "valid", "email": "a@example.com"}),
            "password",
        ),
    ];
    for (user, field) in cases {
        let reply = app.post("/api/users", None, json!({"user": user})).await;
        assert_invalid(&reply, field);
    }
    // Every problem is reported at once.
    let reply = app
        .post(
            "/api/users",
            None,
            json!({"user": {"username": "", "email": "x", "password": "x"}}),
        )
        .await;
    for field in ["username", "email", "password"] {
        assert_invalid(&reply, field);
    }
    assert_eq!(login_status(&app, "valid").await, StatusCode::UNAUTHORIZED);
}

async fn article_rules_name_their_field(app: TestApp) {
    let token = app.register("writer").await;
    let many_tags: Vec<String> = (0..21).map(|i| format!("tag{i}")).collect();
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"title": "", "description": "d", "body": "b"}),
            "title",
        ),
        (
            json!({"title": "   ", "description": "d", "body": "b"}),
            "title",
        ),
        (
            json!({"title": "t".repeat(201), "description": "d", "body": "b"}),
            "title",
        ),
        (
            json!({"title": "line\nbreak", "description": "d", "body": "b"}),
            "title",
        ),
        (
            json!({"title": "nul\u{0}byte", "description": "d", "body": "b"}),
            "title",
        ),
        (
            json!({"title": "escape\u{1b}[31m", "description": "d", "body": "b"}),
            "title",
        ),
        (
            json!({"title": "bidi\u{202e}txt", "description": "d", "body": "b"}),
            "title",
        ),
        (json!({"description": "d", "body": "b"}), "title"),
        (
            json!({"title": "t", "description": "", "body": "b"}),
            "description",
        ),
        (
            json!({"title": "t", "description": "d", "body": ""}),
            "body",
        ),
        (
            json!({"title": "t", "description": "d", "body": "  \n "}),
            "body",
        ),
        (json!({"title": "t", "description": "d"}), "body"),
        (
            json!({"title": "t", "description": "d", "body": "b", "tagList": many_tags}),
            "tagList",
        ),
        (
            json!({"title": "t", "description": "d", "body": "b", "tagList": [""]}),
            "tagList",
        ),
        (
            json!({"title": "t", "description": "d", "body": "b", "tagList": ["a\u{0}b"]}),
            "tagList",
        ),
    ];
    for (article, field) in cases {
        let reply = app
            .post("/api/articles", Some(&token), json!({"article": article}))
            .await;
        assert_invalid(&reply, field);
    }
    let slug = app.create_article(&token, "Kept", &[]).await;
    for (article, field) in [
        (json!({"title": "  "}), "title"),
        (json!({"body": ""}), "body"),
        (json!({"title": "ctrl\u{7}"}), "title"),
    ] {
        let reply = app
            .put(
                &format!("/api/articles/{slug}"),
                Some(&token),
                json!({"article": article}),
            )
            .await;
        assert_invalid(&reply, field);
    }
    let reply = app
        .post(
            &format!("/api/articles/{slug}/comments"),
            Some(&token),
            json!({"comment": {"body": " "}}),
        )
        .await;
    assert_invalid(&reply, "body");
    let list = app.get("/api/articles", None).await;
    assert_eq!(
        list.body["articlesCount"], 1,
        "only the valid article exists"
    );
}

async fn user_update_rules_name_their_field(app: TestApp) {
    let token = app.register("settings").await;
    for (user, field) in [
        (json!({"image": "javascript:alert(1)"}), "image"),
        (json!({"image": "ftp://cdn.example.com/a.png"}), "image"),
        (
            json!({"image": "data:text/html,<script>alert(1)</script>"}),
            "image",
        ),
        (json!({"image": "file:///etc/passwd"}), "image"),
        (json!({"image": "https://"}), "image"),
        (json!({"username": "bad name"}), "username"),
        (json!({"username": "ctrl\u{1b}"}), "username"),
        (json!({"email": "nope"}), "email"),
        (json!({"bio": "x".repeat(1001)}), "bio"),
        (
            json!({"password": "password123", "currentPassword": PASSWORD}),
            "password",
        ),
    ] {
        let reply = app
            .put("/api/user", Some(&token), json!({"user": user}))
            .await;
        assert_invalid(&reply, field);
    }
    let me = app.get("/api/user", Some(&token)).await;
    assert_eq!(me.body["user"]["image"], Value::Null);
    assert_eq!(me.body["user"]["username"], "settings");
    // Development mode (the test server) accepts http:// as well as https://.
    for image in [
        "http://localhost:3000/me.png",
        "https://cdn.example.com/me.png",
    ] {
        let reply = app
            .put("/api/user", Some(&token), json!({"user": {"image": image}}))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{image}: {}", reply.body);
        assert_eq!(reply.body["user"]["image"], image);
    }
}

async fn bad_paging_parameters_are_a_422(app: TestApp) {
    let token = app.register("pager").await;
    for query in [
        "limit=-1",
        "limit=0",
        "limit=1000",
        "limit=abc",
        "limit=",
        "limit=1;",
        "limit=1e3",
        "limit=1.5",
        "limit=99999999999999999999",
        "limit=1%20OR%201=1",
        "offset=-5",
        "offset=0x10",
        "offset=abc",
        "limit=1&limit=2",
        "offset=0&offset=0",
    ] {
        for path in ["/api/articles", "/api/articles/feed"] {
            let reply = app.get(&format!("{path}?{query}"), Some(&token)).await;
            assert_refused(&reply, StatusCode::UNPROCESSABLE_ENTITY);
        }
    }
    let reply = app.get("/api/articles?limit=abc", None).await;
    assert_invalid(&reply, "limit");
    let reply = app.get("/api/articles?offset=-5", None).await;
    assert_invalid(&reply, "offset");
    for query in ["limit=100&offset=0", "limit=1", "offset=2147483647"] {
        let reply = app.get(&format!("/api/articles?{query}"), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.body);
    }
}

// ---------------------------------------------------------------------------------------
// X-Request-Id

async fn every_response_carries_a_request_id(app: TestApp) {
    let token = app.register("tracer").await;
    let replies = vec![
        app.get("/api/tags", None).await,
        app.get("/api/user", Some(&token)).await,
        app.post("/api/users", None, registration("tracer2")).await,
        app.get("/api/user", None).await,
        app.get("/api/nothing", None).await,
        app.request(Method::PATCH, "/api/user", None, None).await,
        app.post("/api/users", None, json!({"user": {"username": ""}}))
            .await,
        post_raw(&app, "/api/users", Some("text/plain"), b"x".to_vec()).await,
        post_raw(&app, "/api/users", Some("application/json"), b"{".to_vec()).await,
        app.raw_post("/api/users", vec![b' '; BODY_LIMIT + 1], false)
            .await,
        app.raw_post("/api/users", vec![b' '; BODY_LIMIT + 1], true)
            .await,
    ];
    let mut seen = std::collections::HashSet::new();
    for reply in &replies {
        let id = reply
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{}: no X-Request-Id", reply.status));
        assert!(!id.is_empty());
        assert!(seen.insert(id.to_owned()), "request ids are unique: {id}");
    }
}

async fn request_id_answer(app: &TestApp, sent: &[&str]) -> String {
    let mut request = app.client.get(app.url("/api/articles/missing"));
    for id in sent {
        request = request.header("X-Request-Id", *id);
    }
    let reply = common::read(request.send().await.expect("request sent")).await;
    assert_refused(&reply, StatusCode::NOT_FOUND);
    let ids: Vec<&str> = reply
        .headers
        .get_all("x-request-id")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(ids.len(), 1, "exactly one request id: {ids:?}");
    ids[0].to_owned()
}

async fn well_formed_client_request_id_is_echoed(app: TestApp) {
    for id in [
        "abc-123",
        "trace_01.Z",
        &"x".repeat(64),
        "0b6a1c4e-2f55-4f0b-9a55-9d2b3b9f7c10",
    ] {
        assert_eq!(request_id_answer(&app, &[id]).await, id);
    }
}

async fn malformed_client_request_id_is_replaced(app: TestApp) {
    let long = "a".repeat(200);
    for sent in [
        vec![long.as_str()],
        vec!["<script>alert(1)</script>"],
        vec!["has spaces in it"],
        vec!["quote\"and'semicolon;"],
        vec!["%0d%0aInjected: yes"],
        vec![""],
        vec!["one", "two"],
    ] {
        let answered = request_id_answer(&app, &sent).await;
        assert!(!sent.contains(&answered.as_str()), "{sent:?} was echoed");
        assert!(
            !answered.is_empty()
                && answered.len() <= 64
                && answered
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')),
            "replacement id is well-formed: {answered}"
        );
    }
}

engine_tests!(
    unknown_routes_are_a_shaped_404,
    unknown_article_profile_and_comment_are_a_shaped_404,
    wrong_method_is_a_shaped_405,
    non_json_content_types_are_refused_with_415,
    malformed_json_is_a_400,
    number_edge_cases_are_refused_not_crashed,
    body_over_the_limit_is_a_413,
    chunked_body_over_the_limit_without_a_length_is_a_413,
    mass_assignment_of_role_at_registration_is_refused,
    mass_assignment_on_update_user_changes_nothing,
    mass_assignment_of_article_author_count_and_slug_is_refused,
    duplicate_json_keys_are_refused,
    deeply_nested_json_is_refused_without_a_crash,
    arrays_are_not_read_as_positional_fields,
    json_type_confusion_is_a_422,
    registration_rules_name_their_field,
    article_rules_name_their_field,
    user_update_rules_name_their_field,
    bad_paging_parameters_are_a_422,
    every_response_carries_a_request_id,
    well_formed_client_request_id_is_echoed,
    malformed_client_request_id_is_replaced,
);
