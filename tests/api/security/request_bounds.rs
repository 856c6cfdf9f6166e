//! What one request body may cost (attacks.md §9 "size and depth"): nesting depth and string
//! length bounded before parsing, and a body limit per route group answered 413 before the
//! body is read.

use aerie::http::access::{Access, ROUTES};
use reqwest::StatusCode;
use serde_json::json;

use crate::common::{self, Engine, Reply, TestApp, engine_tests};

async fn post_text(app: &TestApp, path: &str, token: Option<&str>, body: String) -> Reply {
    let mut request = app
        .client
        .post(app.url(path))
        .header("Content-Type", "application/json")
        .body(body);
    if let Some(token) = token {
        request = request.header("Authorization", format!("Token {token}"));
    }
    common::read(request.send().await.expect("request sent")).await
}

fn registration_with(extra: &str) -> String {
    format!(
        r#"{{"user":{{"username":"deep","email":"deep@example.com","password":"{}","x":{extra}}}}}"#,
        common::PASSWORD
    )
}

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

async fn json_nested_past_32_levels_is_a_400_before_parsing(app: TestApp) {
    // The body itself is two levels deep, so `x` at depth d makes the whole d + 2.
    let within = post_text(&app, "/api/users", None, registration_with(&nested(30))).await;
    within.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    for depth in [31, 10_000] {
        let reply = post_text(&app, "/api/users", None, registration_with(&nested(depth))).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "depth {depth}: {}",
            reply.body
        );
        assert_eq!(
            reply.body,
            json!({"errors": {"body": ["is JSON nested deeper than 32 levels"]}}),
            "depth {depth}"
        );
    }
    let objects = format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
    let reply = post_text(&app, "/api/users/login", None, objects).await;
    reply.assert_status(StatusCode::BAD_REQUEST);
    assert_eq!(
        app.get("/api/tags", None).await.status,
        StatusCode::OK,
        "still serving"
    );
}

async fn a_huge_json_string_is_refused_whatever_field_holds_it(app: TestApp) {
    let token = app.register("writer").await;
    let article = |body: &str| {
        json!({"article": {"title": "t", "description": "d", "body": body}}).to_string()
    };
    // Just over the article body's own bound: the domain names the field.
    let reply = post_text(
        &app,
        "/api/articles",
        Some(&token),
        article(&"a".repeat(60_001)),
    )
    .await;
    reply.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reply.error_on("body").is_some_and(|m| m.contains("60000")),
        "{}",
        reply.body
    );
    // Over the bound for any JSON string, in a known field or as a key.
    let reply = post_text(
        &app,
        "/api/articles",
        Some(&token),
        article(&"a".repeat(70_000)),
    )
    .await;
    reply.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        reply.error_on("body"),
        Some("has a string longer than 65536 characters")
    );
    let key = format!(r#"{{"article":{{"{}":1}}}}"#, "k".repeat(70_000));
    let reply = post_text(&app, "/api/articles", Some(&token), key).await;
    assert_eq!(
        reply.error_on("body"),
        Some("has a string longer than 65536 characters")
    );
}

#[tokio::test]
async fn each_route_group_has_its_own_body_limit() {
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        &[
            ("AERIE_BODY_LIMIT_AUTH_BYTES", "2048"),
            ("AERIE_BODY_LIMIT_ARTICLES_BYTES", "131072"),
        ],
    )
    .await;
    let token = app.register("writer").await;
    // Account routes: a registration padded past 2 KiB is refused, with or without a length.
    let mut padded = json!({"user": {"username": "pad", "email": "pad@example.com", "password": common::PASSWORD}}).to_string();
    padded.push_str(&" ".repeat(3000));
    for chunked in [false, true] {
        let reply = app
            .raw_post("/api/users", padded.clone().into_bytes(), chunked)
            .await;
        assert_eq!(
            reply.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "chunked {chunked}"
        );
        assert!(
            reply.error_on("body").is_some_and(|m| m.contains("large")),
            "{}",
            reply.body
        );
    }
    // Content routes: a 100 KB article (50 000 two-byte characters) is welcome; the same
    // padded to 140 KB is not.
    let article =
        json!({"article": {"title": "long", "description": "d", "body": "é".repeat(50_000)}});
    let reply = app
        .post("/api/articles", Some(&token), article.clone())
        .await;
    reply.assert_status(StatusCode::CREATED);
    let mut big = article.to_string();
    big.push_str(&" ".repeat(40_000));
    let reply = post_text(&app, "/api/articles", Some(&token), big).await;
    reply.assert_status(StatusCode::PAYLOAD_TOO_LARGE);
}

/// The limit is the largest body taken, not the first one refused: at exactly the limit a
/// login is read (and fails as a login), one byte more is a 413, announced or chunked.
#[tokio::test]
async fn a_body_of_exactly_the_limit_is_read_and_one_byte_more_is_refused() {
    const LIMIT: usize = 2048;
    let app = TestApp::spawn_with(Engine::Sqlite, &[("AERIE_BODY_LIMIT_AUTH_BYTES", "2048")]).await;
    let login =
        json!({"user": {"email": "nobody@example.com", "password": common::PASSWORD}}).to_string();
    // Read means answered as a failed login: unknown address (401) or refused (422).
    let read = [StatusCode::UNAUTHORIZED, StatusCode::UNPROCESSABLE_ENTITY];
    for chunked in [false, true] {
        for (size, refused) in [(LIMIT, false), (LIMIT + 1, true)] {
            let mut body = login.clone();
            body.push_str(&" ".repeat(size - login.len()));
            let reply = app
                .raw_post("/api/users/login", body.into_bytes(), chunked)
                .await;
            let expected = if refused {
                reply.status == StatusCode::PAYLOAD_TOO_LARGE
            } else {
                read.contains(&reply.status)
            };
            assert!(
                expected,
                "{size} bytes, chunked {chunked}: {} {}",
                reply.status, reply.body
            );
        }
    }
}

/// Every route of the access table sits in a route group behind that group's body limit
/// (`src/app.rs`, `guarded`): a body announced past the limit is a 413 before anything reads
/// it, whichever route it is sent to and whether or not the route reads a body. A route
/// merged outside the groups would answer something else here. The metrics route is the one
/// route outside them, and reads no body.
#[tokio::test]
async fn every_route_is_behind_its_groups_body_limit() {
    const LIMIT: &str = "1024";
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        &[
            ("AERIE_BODY_LIMIT_BYTES", LIMIT),
            ("AERIE_BODY_LIMIT_AUTH_BYTES", LIMIT),
            ("AERIE_BODY_LIMIT_ARTICLES_BYTES", LIMIT),
        ],
    )
    .await;
    // An admin, so that no access rule answers before the body limit is asked.
    app.register("bounded").await;
    app.set_role("bounded", "admin").await;
    let token = common::token_of(&app.login_user("bounded").await);
    let oversized = json!({"padding": "x".repeat(2048)});
    for rule in ROUTES {
        if rule.access == Access::MetricsToken {
            continue;
        }
        let path = rule
            .path
            .replace("{username}", "someone")
            .replace("{slug}", "some-slug")
            .replace("{id}", "1");
        let reply = app
            .request(
                rule.method.clone(),
                &path,
                Some(&token),
                Some(oversized.clone()),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{} {}: {}",
            rule.method,
            rule.path,
            reply.body
        );
    }
}

#[tokio::test]
async fn an_announced_oversized_body_on_an_account_route_is_refused_before_it_is_sent() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(Engine::Sqlite, &[("AERIE_BODY_LIMIT_AUTH_BYTES", "2048")]).await;
    let address = app.host_port();
    let mut stream = app.connect_raw().await;
    // 4 KiB announced (over the account limit, well under the others), none of it sent.
    let head = format!(
        "POST /api/users/login HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("head sent");
    let mut buffer = [0u8; 1024];
    let read =
        tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buffer)).await;
    let n = read
        .expect("answered without waiting for the body")
        .expect("read");
    let text = String::from_utf8_lossy(&buffer[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
}

/// A client still sending its body when the server answers (many read only once the body
/// is out) must still get the 413: the server answers after the headers, and closing with the
/// body unread would reset the connection, failing the client's next write and destroying
/// the answer. The close lingers instead: the rest of the body is read and thrown away.
#[tokio::test]
async fn an_oversized_body_still_being_sent_gets_its_413_not_a_reset() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const CHUNK: usize = 16 * 1024;
    const CHUNKS: usize = 32; // 512 KiB: 8 times the account routes' limit
    let app = TestApp::spawn(Engine::Sqlite).await;
    let address = app.host_port();
    let mut stream = app.connect_raw().await;
    let head = format!(
        "POST /api/users HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        CHUNK * CHUNKS
    );
    stream.write_all(head.as_bytes()).await.expect("head sent");
    // The body goes out in pieces, as from a client reading a file: the 413 and the close
    // come while most of it is still to be written.
    for chunk in 0..CHUNKS {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let written = stream.write_all(&[b' '; CHUNK]).await;
        assert!(written.is_ok(), "chunk {chunk}: {written:?}");
    }
    let mut response = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut response),
    )
    .await
    .expect("the server closed the connection");
    assert!(read.is_ok(), "the connection was reset: {read:?}");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 413"), "{text:.200}");
    assert!(text.contains(r#"{"errors":{"body":["#), "{text}");
}

/// `Expect: 100-continue` with a declared length over the limit: the 413 comes instead of
/// the `100 Continue`, so a client that waits for it never sends the body at all.
#[tokio::test]
async fn expect_100_continue_over_the_limit_gets_the_413_instead_of_continue() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn(Engine::Sqlite).await;
    let address = app.host_port();
    let mut stream = app.connect_raw().await;
    let head = format!(
        "POST /api/users HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: 4194304\r\nExpect: 100-continue\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("head sent");
    let mut response = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut response),
    )
    .await
    .expect("answered and closed without the body")
    .expect("read");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 413"), "{text:.200}");
    assert!(!text.contains("100 Continue"), "{text:.200}");
    // Within the limit, the client is told to go on.
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let head = format!(
        "POST /api/users HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("head sent");
    let mut buffer = [0u8; 64];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut buffer))
        .await
        .expect("answered")
        .expect("read");
    let text = String::from_utf8_lossy(&buffer[..n]);
    assert!(text.starts_with("HTTP/1.1 100 Continue"), "{text}");
}

engine_tests!(
    json_nested_past_32_levels_is_a_400_before_parsing,
    a_huge_json_string_is_refused_whatever_field_holds_it,
);
