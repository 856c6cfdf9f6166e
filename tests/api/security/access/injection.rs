//! SQL injection (attacks.md §5): every payload in list filters, path parameters and JSON
//! fields is data, matched or stored literally, and answered quickly with no database error.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use super::{comment, comment_ids, segment};
use crate::common::{self, PASSWORD, Reply, TestApp, engine_tests};

/// The SQL injection payloads of attacks.md §5 (quote breakers, boolean pairs, UNION,
/// stacked queries, time- and error-based, encodings, NUL).
const PAYLOADS: &[&str] = &[
    "'",
    "\"",
    "`",
    "')",
    "\"))",
    "\\'",
    "%27",
    "%2527",
    "'--",
    "'#",
    "'/*",
    "x' AND '1'='1",
    "x' AND '1'='2",
    "x' OR '1'='1",
    "1 OR 1=1",
    "1) OR (1=1",
    "' UNION SELECT NULL--",
    "' UNION SELECT NULL,NULL,NULL--",
    "' UNION SELECT username,password_hash,NULL FROM users--",
    "'; DROP TABLE users;--",
    "1; SELECT pg_sleep(0)--",
    "/**/OR/**/1=1",
    "'; SELECT pg_sleep(15)--",
    "' OR pg_sleep(15) IS NULL--",
    "1 AND 1=(SELECT 1 FROM pg_sleep(15))",
    "' AND 1=CAST((SELECT version()) AS int)--",
    "'||(SELECT 1/0)||'",
    "＇ OR ＇1＇=＇1",
    "ʼ OR 1=1--",
    "nul\u{0}byte",
    "\u{0}",
    "%",
    "_",
    "\\",
    "%%",
    "a%",
];

fn query(name: &str, value: &str) -> String {
    serde_urlencoded::to_string([(name, value)]).expect("encodes")
}

/// Not a 5xx, and answered well before any `pg_sleep(15)` could finish. The margin is wide
/// on purpose: on a machine busy with other builds three logins (an argon2 hash each) have
/// taken 5 s together, and an injected sleep takes 15 s, so neither passes for the other.
#[track_caller]
fn assert_handled(reply: &Reply, started: Instant, case: &str) {
    assert!(
        !reply.status.is_server_error(),
        "{case}: {} {}",
        reply.status,
        reply.body
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{case}: took {:?}",
        started.elapsed()
    );
    if reply.status.is_client_error() {
        assert!(
            reply.body["errors"].is_object(),
            "{case}: unshaped error {}",
            reply.body
        );
    }
}

async fn timed_get(app: &TestApp, path: &str, token: Option<&str>) -> (Reply, Instant) {
    let started = Instant::now();
    (app.get(path, token).await, started)
}

async fn sql_injection_in_list_filters_matches_nothing(app: TestApp) {
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let slug = app.create_article(&alice, "Real one", &["rust"]).await;
    app.post(
        &format!("/api/articles/{slug}/favorite"),
        Some(&bob),
        json!({}),
    )
    .await;
    for name in ["tag", "author", "favorited"] {
        for payload in PAYLOADS {
            let (reply, started) = timed_get(
                &app,
                &format!("/api/articles?{}", query(name, payload)),
                Some(&bob),
            )
            .await;
            let case = format!("{name}={payload:?}");
            assert_handled(&reply, started, &case);
            assert_eq!(reply.status, StatusCode::OK, "{case}: {}", reply.body);
            assert_eq!(
                reply.body["articlesCount"], 0,
                "{case} widened the result: {}",
                reply.body
            );
            assert_eq!(reply.body["articles"], json!([]), "{case}");
        }
        // The boolean pair with a real value: both halves are just strings that match nothing.
        let real = match name {
            "tag" => "rust",
            "author" => "alice",
            _ => "bob",
        };
        let exact = app
            .get(&format!("/api/articles?{}", query(name, real)), None)
            .await;
        assert_eq!(
            exact.body["articlesCount"], 1,
            "{name}={real}: {}",
            exact.body
        );
        for suffix in ["' AND '1'='1", "' AND '1'='2", "' OR '1'='1' --"] {
            let value = format!("{real}{suffix}");
            let reply = app
                .get(&format!("/api/articles?{}", query(name, &value)), None)
                .await;
            assert_eq!(
                reply.body["articlesCount"], 0,
                "{name}={value:?}: {}",
                reply.body
            );
        }
    }
    // Numeric parameters accept numbers only.
    for payload in [
        "1;",
        "1 OR 1=1",
        "1) OR (1=1",
        "1; SELECT pg_sleep(15)--",
        "0x10",
        "1e3",
        "'",
    ] {
        for name in ["limit", "offset"] {
            let (reply, started) = timed_get(
                &app,
                &format!("/api/articles?{}", query(name, payload)),
                None,
            )
            .await;
            assert_handled(&reply, started, &format!("{name}={payload:?}"));
            assert_eq!(
                reply.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{name}={payload:?}"
            );
        }
    }
    // Everything is still there.
    let all = app.get("/api/articles", None).await;
    assert_eq!(all.body["articlesCount"], 1);
    assert_eq!(
        app.get("/api/tags", None).await.body["tags"],
        json!(["rust"])
    );
}

async fn sql_injection_in_path_parameters_is_not_found(app: TestApp) {
    let alice = app.register("alice").await;
    let slug = app.create_article(&alice, "Target", &[]).await;
    let id = comment(&app, &alice, &slug, "target comment").await;
    for payload in PAYLOADS {
        let p = segment(payload);
        for path in [
            format!("/api/articles/{p}"),
            format!("/api/articles/{p}/comments"),
            format!("/api/profiles/{p}"),
        ] {
            let path = &path;
            let (reply, started) = timed_get(&app, path, None).await;
            assert_handled(&reply, started, path);
            assert_eq!(
                reply.status,
                StatusCode::NOT_FOUND,
                "{path}: {}",
                reply.body
            );
            let (reply, started) = timed_get(&app, path, Some(&alice)).await;
            assert_handled(&reply, started, path);
            assert_eq!(
                reply.status,
                StatusCode::NOT_FOUND,
                "{path}: {}",
                reply.body
            );
        }
        for (method, path) in [
            (reqwest::Method::POST, format!("/api/profiles/{p}/follow")),
            (reqwest::Method::DELETE, format!("/api/profiles/{p}/follow")),
            (reqwest::Method::POST, format!("/api/articles/{p}/favorite")),
            (
                reqwest::Method::DELETE,
                format!("/api/articles/{p}/favorite"),
            ),
            (reqwest::Method::DELETE, format!("/api/articles/{p}")),
            (
                reqwest::Method::DELETE,
                format!("/api/articles/{p}/comments/{id}"),
            ),
            (
                reqwest::Method::DELETE,
                format!("/api/articles/{slug}/comments/{p}"),
            ),
        ] {
            let started = Instant::now();
            let reply = app.request(method.clone(), &path, Some(&alice), None).await;
            assert_handled(&reply, started, &format!("{method} {path}"));
            assert_eq!(
                reply.status,
                StatusCode::NOT_FOUND,
                "{method} {path}: {}",
                reply.body
            );
        }
        let started = Instant::now();
        let reply = app
            .put(
                &format!("/api/articles/{p}"),
                Some(&alice),
                json!({"article": {"body": "x"}}),
            )
            .await;
        assert_handled(&reply, started, "PUT article");
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "PUT {payload:?}: {}",
            reply.body
        );
    }
    // Overlong UTF-8 and other undecodable segments are refused, not crashed on.
    for raw in ["%c0%a7", "%ff", "%c0%ae%c0%ae"] {
        for path in [
            format!("/api/articles/{raw}"),
            format!("/api/profiles/{raw}"),
        ] {
            let (reply, started) = timed_get(&app, &path, None).await;
            assert_handled(&reply, started, &path);
            assert!(reply.status.is_client_error(), "{path}: {}", reply.status);
        }
    }
    assert_eq!(app.article(&slug, None).await["body"], "# Body\n\ntext");
    assert_eq!(comment_ids(&app, &slug).await, vec![id]);
}

async fn sql_injection_in_json_fields_is_stored_as_text(app: TestApp) {
    let alice = app.register("alice").await;
    for payload in PAYLOADS {
        // Login: an injected email is just an unknown email, or not an address at all (a
        // 422 on the field, before any lookup).
        for email in [
            payload.to_string(),
            format!("alice@example.com{payload}"),
            format!("{payload}@example.com"),
        ] {
            let started = Instant::now();
            let reply = app.login(&email, PASSWORD).await;
            assert_handled(&reply, started, &format!("login {email:?}"));
            let refused_shape = reply.status == StatusCode::UNPROCESSABLE_ENTITY
                && reply.error_on("email").is_some();
            assert!(
                reply.status == StatusCode::UNAUTHORIZED || refused_shape,
                "login {email:?}: {}",
                reply.body
            );
        }
        let reply = app.login("alice@example.com", payload).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "password {payload:?}"
        );
        // Registration: refused by the field rules or stored verbatim, never an error.
        let started = Instant::now();
        let reply = app
            .post("/api/users", None, json!({"user": {"username": payload, "email": format!("{payload}@example.com"), "password": PASSWORD}}))
            .await;
        assert_handled(&reply, started, &format!("register {payload:?}"));
        if reply.status == StatusCode::CREATED {
            assert_eq!(reply.body["user"]["username"], *payload);
        }
    }
    // Free text fields keep the payload exactly, and it finds only itself.
    let text_payloads: Vec<&str> = PAYLOADS
        .iter()
        .copied()
        .filter(|p| !p.contains('\u{0}'))
        .collect();
    for (i, payload) in text_payloads.iter().enumerate() {
        let title = format!("{payload} #{i}");
        let tag: String = payload.chars().take(40).collect(); // tags are at most 40 characters
        let started = Instant::now();
        let reply = app
            .post("/api/articles", Some(&alice), json!({"article": {"title": title, "description": payload, "body": payload, "tagList": [tag]}}))
            .await;
        assert_handled(&reply, started, &format!("article {payload:?}"));
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{payload:?}: {}",
            reply.body
        );
        let slug = reply.body["article"]["slug"]
            .as_str()
            .expect("slug")
            .to_owned();
        let stored = app.article(&slug, None).await;
        assert_eq!(stored["title"], title);
        assert_eq!(stored["description"], *payload);
        assert_eq!(stored["body"], *payload);
        assert_eq!(stored["tagList"], json!([tag]));
        let tagged = app
            .get(&format!("/api/articles?{}", query("tag", &tag)), None)
            .await;
        assert_eq!(
            common::slugs(&tagged.body),
            vec![slug.clone()],
            "tag {tag:?} matches only its article"
        );
        let reply = app
            .post(
                &format!("/api/articles/{slug}/comments"),
                Some(&alice),
                json!({"comment": {"body": payload}}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{payload:?}: {}", reply.body);
        assert_eq!(reply.body["comment"]["body"], *payload);
        let reply = app
            .put("/api/user", Some(&alice), json!({"user": {"bio": payload}}))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{payload:?}: {}", reply.body);
        assert_eq!(reply.body["user"]["bio"], *payload);
    }
    // The users table survived every DROP TABLE.
    let reply = app.login("alice@example.com", PASSWORD).await;
    reply.assert_status(StatusCode::OK);
    let all = app.get("/api/articles?limit=100", None).await;
    assert_eq!(all.body["articlesCount"], text_payloads.len());
}

async fn like_wildcards_in_filters_match_literally(app: TestApp) {
    let alice = app.register("alice").await;
    let underscore = app.create_article(&alice, "Underscore", &["a_c"]).await;
    app.create_article(&alice, "Letters", &["abc"]).await;
    let percent = app.create_article(&alice, "Percent", &["100%"]).await;
    let backslash = app.create_article(&alice, "Backslash", &["x\\y"]).await;
    let count = |reply: &Reply| reply.body["articlesCount"].as_i64().expect("count");
    for (tag, expected) in [
        ("a_c", vec![underscore.clone()]),
        ("100%", vec![percent.clone()]),
        ("x\\y", vec![backslash.clone()]),
        ("%", vec![]),
        ("_", vec![]),
        ("a%", vec![]),
        ("_bc", vec![]),
        ("a__", vec![]),
        ("100_", vec![]),
        ("x%", vec![]),
        ("\\", vec![]),
        ("x\\\\y", vec![]),
    ] {
        let reply = app
            .get(&format!("/api/articles?{}", query("tag", tag)), None)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{tag:?}: {}", reply.body);
        assert_eq!(common::slugs(&reply.body), expected, "tag {tag:?}");
        assert_eq!(count(&reply), expected.len() as i64, "tag {tag:?}");
    }
    for (name, value) in [
        ("author", "%"),
        ("author", "_lice"),
        ("author", "alic_"),
        ("favorited", "%"),
        ("favorited", "_"),
    ] {
        let reply = app
            .get(&format!("/api/articles?{}", query(name, value)), None)
            .await;
        assert_eq!(count(&reply), 0, "{name}={value:?}: {}", reply.body);
    }
    for value in ["%", "_____", "alic%"] {
        let reply = app
            .get(&format!("/api/profiles/{}", segment(value)), None)
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "profile {value:?}");
    }
}

engine_tests!(
    sql_injection_in_list_filters_matches_nothing,
    sql_injection_in_path_parameters_is_not_found,
    sql_injection_in_json_fields_is_stored_as_text,
    like_wildcards_in_filters_match_literally,
);
