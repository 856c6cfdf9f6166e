//! The black-box test harness: boots the real server on `127.0.0.1:0` against a fresh
//! database (an SQLite file in a temporary folder, or a new PostgreSQL database when
//! `AERIE_TEST_POSTGRES_URL` is set) and talks to it over HTTP.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aerie::clock::ManualClock;
use aerie::config::Config;
use aerie::server::Server;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// A password that passes the strength policy.
pub const PASSWORD: &str = "correct horse battery staple 42";

/// Lists engine tests: for each `async fn name(app: TestApp)` (or `(engine: Engine)`, for a
/// test that boots its own servers) in the calling module, generates `name::sqlite`, which
/// always runs, and `name::postgres`, which runs when `AERIE_TEST_POSTGRES_URL` is set and
/// says loudly that it was skipped otherwise. Attributes written before a name (`#[ignore =
/// "why"]`) are put on both variants, so none is dropped silently.
macro_rules! engine_tests {
    ($($(#[$attribute:meta])* $name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                $(#[$attribute])*
                async fn sqlite() {
                    $crate::common::run_on($crate::common::Engine::Sqlite, super::$name).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                $(#[$attribute])*
                async fn postgres() {
                    $crate::common::run_on($crate::common::Engine::Postgres, super::$name).await;
                }
            }
        )+
    };
}
pub(crate) use engine_tests;

/// Runs one engine test on `engine`: boots what the test takes (a server, or nothing for a
/// test that boots its own), or skips the PostgreSQL variant, saying so, when no PostgreSQL
/// server is configured.
pub async fn run_on<T: Subject, F: Future<Output = ()>>(engine: Engine, test: impl FnOnce(T) -> F) {
    if engine == Engine::Postgres && !postgres_configured() {
        return;
    }
    test(T::boot(engine).await).await;
}

/// Whether the PostgreSQL variants can run; prints why not when they cannot.
pub fn postgres_configured() -> bool {
    let configured = std::env::var("AERIE_TEST_POSTGRES_URL").is_ok();
    if !configured {
        eprintln!("SKIPPED: AERIE_TEST_POSTGRES_URL is not set; PostgreSQL variant not run");
    }
    configured
}

/// What an engine test takes as its argument, made ready for one engine.
pub trait Subject {
    fn boot(engine: Engine) -> impl Future<Output = Self>;
}

/// A test that drives one fresh server.
impl Subject for TestApp {
    fn boot(engine: Engine) -> impl Future<Output = Self> {
        TestApp::spawn(engine)
    }
}

/// A test that boots its own servers, with its own settings.
impl Subject for Engine {
    async fn boot(engine: Engine) -> Self {
        engine
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub address: String,
    /// `http://` address of the HTTP→HTTPS redirect listener, when configured.
    pub redirect_address: Option<String>,
    /// `http://` address of the metrics-only listener, when configured.
    pub metrics_address: Option<String>,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub engine: Engine,
    pub database_url: String,
    /// Keeps the SQLite file and keys alive for the test's duration.
    pub data_dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
}

/// A response, read once: status, headers and the JSON body (Null when not JSON).
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The first message for `field` in a RealWorld error body.
    pub fn error_on(&self, field: &str) -> Option<&str> {
        self.body["errors"][field][0].as_str()
    }
}

static DATABASE_COUNTER: AtomicUsize = AtomicUsize::new(0);

impl TestApp {
    pub async fn spawn(engine: Engine) -> Self {
        Self::spawn_with(engine, &[]).await
    }

    pub async fn spawn_postgres() -> Option<Self> {
        if !postgres_configured() {
            return None;
        }
        Some(Self::spawn(Engine::Postgres).await)
    }

    /// Boots a server with extra `AERIE_*` settings.
    pub async fn spawn_with(engine: Engine, settings: &[(&str, &str)]) -> Self {
        Self::spawn_on(engine, None, settings).await
    }

    /// Boots another instance of this deployment: the same database and signing key, its
    /// own listener, memory and clock (as a second server behind a load balancer would).
    pub async fn spawn_sibling(&self) -> Self {
        let key = self.data_dir.path().join("signing-key.pem");
        let key = key.display().to_string();
        Self::spawn_on(
            self.engine,
            Some(self.database_url.clone()),
            &[("AERIE_SIGNING_KEY_FILE", key.as_str())],
        )
        .await
    }

    async fn spawn_on(
        engine: Engine,
        database_url: Option<String>,
        settings: &[(&str, &str)],
    ) -> Self {
        let data_dir = tempfile::tempdir().expect("temporary folder");
        let database_url = match (database_url, engine) {
            (Some(url), _) => url,
            (None, Engine::Sqlite) => format!(
                "sqlite://{}?mode=rwc",
                data_dir.path().join("aerie.db").display()
            ),
            (None, Engine::Postgres) => fresh_postgres_database().await,
        };
        let mut vars: Vec<(String, String)> = vec![
            ("AERIE_LISTEN".into(), "127.0.0.1:0".into()),
            (
                "AERIE_DATA_DIR".into(),
                data_dir.path().display().to_string(),
            ),
            ("AERIE_DATABASE_URL".into(), database_url.clone()),
            ("AERIE_DATABASE_MAX_CONNECTIONS".into(), "5".into()),
        ];
        // Every test's requests come from 127.0.0.1 while the clock stands still: room for
        // the longest suites. Rate-limit tests set their own, tight policies.
        for policy in aerie::defense::rate_limit::RateLimits::all_policies() {
            vars.push((policy.setting().into(), "100000/60".into()));
        }
        vars.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = Config::from_vars(vars).expect("test configuration is valid");
        let clock = Arc::new(ManualClock::starting_now());
        let server = Server::build(config, clock.clone())
            .await
            .expect("server boots");
        let address = format!("http://{}", server.local_addr().expect("bound"));
        let redirect_address = server.redirect_addr().map(|a| format!("http://{a}"));
        let metrics_address = server.metrics_addr().map(|a| format!("http://{a}"));
        let (tx, rx) = oneshot::channel();
        tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Self {
            address,
            redirect_address,
            metrics_address,
            client,
            clock,
            engine,
            database_url,
            data_dir,
            shutdown: Some(tx),
        }
    }

    /// Starts a graceful shutdown, as SIGTERM does.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Sends a request with an optional token (`Token` scheme) and JSON body.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Token {token}"));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        read(request.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.request(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.request(Method::POST, path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.request(Method::PUT, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        self.request(Method::DELETE, path, token, None).await
    }

    /// Sends `Content-Type: application/json` with no body at all, as RealWorld clients do
    /// for follow, favorite and delete.
    pub async fn send_without_body(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
    ) -> Reply {
        let mut request = self
            .client
            .request(method, self.url(path))
            .header("Content-Type", "application/json");
        if let Some(token) = token {
            request = request.header("Authorization", format!("Token {token}"));
        }
        read(request.send().await.expect("request sent")).await
    }

    /// The server clock's current time in the API's timestamp format.
    pub fn now_timestamp(&self) -> String {
        use aerie::clock::Clock;
        aerie::clock::rfc3339(self.clock.now())
    }

    /// Registers `name` (email `name@example.com`) and returns the access token.
    pub async fn register(&self, name: &str) -> String {
        let user = self.register_user(name).await;
        user["token"].as_str().expect("token").to_owned()
    }

    /// Registers `name` and returns the whole User object (with `token` and `refreshToken`).
    pub async fn register_user(&self, name: &str) -> Value {
        let reply = self
            .post("/api/users", None, json!({"user": {"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}}))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "register {name}: {}",
            reply.body
        );
        reply.body["user"].clone()
    }

    /// Logs `name` in again (a new session) and returns the User object.
    pub async fn login_user(&self, name: &str) -> Value {
        let reply = self
            .post(
                "/api/users/login",
                None,
                json!({"user": {"email": format!("{name}@example.com"), "password": PASSWORD}}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "login {name}: {}", reply.body);
        reply.body["user"].clone()
    }

    /// Runs one SQL statement directly on the test database (to set up what no route does,
    /// such as disabling an account).
    pub async fn execute_sql(&self, sql: &str) {
        use sqlx::Connection;
        match self.engine {
            Engine::Sqlite => {
                let mut connection = sqlx::SqliteConnection::connect(&self.database_url)
                    .await
                    .expect("connect to the test database");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut connection)
                    .await
                    .expect("statement runs");
            }
            Engine::Postgres => {
                let mut connection = sqlx::PgConnection::connect(&self.database_url)
                    .await
                    .expect("connect to the test database");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut connection)
                    .await
                    .expect("statement runs");
            }
        }
    }

    /// Sets an account's role directly in the database, as `aerie user set-role` does (a
    /// fresh database has no admin, and no route may create the first one).
    pub async fn set_role(&self, username: &str, role: &str) {
        assert!(
            [username, role]
                .iter()
                .all(|s| s.chars().all(|c| c.is_ascii_alphanumeric())),
            "test names only"
        );
        self.execute_sql(&format!(
            "UPDATE users SET role = '{role}' WHERE username_key = '{}'",
            username.to_lowercase()
        ))
        .await;
    }

    /// Creates an article and returns its slug.
    pub async fn create_article(&self, token: &str, title: &str, tags: &[&str]) -> String {
        let reply = self
            .post("/api/articles", Some(token), json!({"article": {"title": title, "description": "about it", "body": "# Body\n\ntext", "tagList": tags}}))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "create article: {}",
            reply.body
        );
        reply.body["article"]["slug"]
            .as_str()
            .expect("slug")
            .to_owned()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn read(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
    }
}

/// Creates a new, empty database on the test PostgreSQL server and returns its URL.
async fn fresh_postgres_database() -> String {
    use sqlx::Connection;
    let base = std::env::var("AERIE_TEST_POSTGRES_URL").expect("checked by caller");
    let name = format!(
        "aerie_t_{}_{}_{}",
        std::process::id(),
        DATABASE_COUNTER.fetch_add(1, Ordering::SeqCst),
        rand::random::<u32>()
    );
    let mut connection = sqlx::PgConnection::connect(&base)
        .await
        .expect("connect to the test PostgreSQL server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut connection)
        .await
        .expect("create test database");
    let (prefix, _) = base.rsplit_once('/').expect("database URL has a path");
    format!("{prefix}/{name}")
}

/// The fields of a Profile object, in articles, comments and `/api/profiles`.
pub const PROFILE_KEYS: &[&str] = &["username", "bio", "image", "following"];

/// The fields of a full Article (create, get, update, favorite): the contract's, plus the
/// rendered `bodyHtml`.
pub const ARTICLE_KEYS: &[&str] = &[
    "slug",
    "title",
    "description",
    "body",
    "bodyHtml",
    "tagList",
    "createdAt",
    "updatedAt",
    "favorited",
    "favoritesCount",
    "author",
];

/// The fields of an Article in a list (`/api/articles`, the feed): everything but the body.
pub const LISTED_ARTICLE_KEYS: &[&str] = &[
    "slug",
    "title",
    "description",
    "tagList",
    "createdAt",
    "updatedAt",
    "favorited",
    "favoritesCount",
    "author",
];

/// Asserts that `value` is a JSON object with exactly the keys `expected`.
#[track_caller]
pub fn assert_keys(value: &Value, expected: &[&str]) {
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"));
    let mut actual: Vec<&str> = object.keys().map(String::as_str).collect();
    actual.sort_unstable();
    let mut expected = expected.to_vec();
    expected.sort_unstable();
    assert_eq!(actual, expected, "keys of {value}");
}

/// Asserts an RFC 3339 UTC timestamp with milliseconds, like `2026-11-28T10:00:00.000Z`.
#[track_caller]
pub fn assert_timestamp(value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("timestamp is not a string: {value}"));
    let parsed = chrono::DateTime::parse_from_rfc3339(text);
    let fraction = text.get(19..20) == Some(".")
        && text
            .get(20..23)
            .is_some_and(|d| d.chars().all(|c| c.is_ascii_digit()));
    assert!(
        parsed.is_ok() && text.len() == 24 && fraction && text.ends_with('Z'),
        "not RFC 3339 UTC with milliseconds: {text}"
    );
}

/// The slugs of an article list response (`{articles: [...], articlesCount}`), in order.
#[track_caller]
pub fn slugs(list: &Value) -> Vec<String> {
    list["articles"]
        .as_array()
        .unwrap_or_else(|| panic!("not an article list: {list}"))
        .iter()
        .map(|article| article["slug"].as_str().expect("slug").to_owned())
        .collect()
}

impl TestApp {
    /// POSTs a JSON body over a raw socket, framed by `Content-Length` or, when `chunked`,
    /// by `Transfer-Encoding: chunked` with no length, and reads the response. The answer is read while the body is still being written, so a server that
    /// refuses early (a 413 before the whole body arrived) is seen answering, where an HTTP
    /// client would report a reset connection.
    pub async fn raw_post(&self, path: &str, body: Vec<u8>, chunked: bool) -> Reply {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let address = self.address.trim_start_matches("http://").to_owned();
        let stream = tokio::net::TcpStream::connect(&address)
            .await
            .expect("connect");
        let (mut reader, mut writer) = stream.into_split();
        let framing = if chunked {
            "Transfer-Encoding: chunked".to_owned()
        } else {
            format!("Content-Length: {}", body.len())
        };
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n{framing}\r\nConnection: close\r\n\r\n"
        );
        let writing = tokio::spawn(async move {
            writer.write_all(head.as_bytes()).await?;
            for chunk in body.chunks(4096) {
                if chunked {
                    writer
                        .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                        .await?;
                }
                writer.write_all(chunk).await?;
                if chunked {
                    writer.write_all(b"\r\n").await?;
                }
            }
            if chunked {
                writer.write_all(b"0\r\n\r\n").await?;
            }
            writer.flush().await?;
            // Returned, not dropped: dropping it half-closes the socket, which the server
            // takes as the client leaving before its answer.
            Ok::<_, std::io::Error>(writer)
        });
        let mut response = Vec::new();
        let mut buffer = [0u8; 8192];
        let read = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match reader.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => response.extend_from_slice(&buffer[..n]),
                }
            }
        })
        .await;
        assert!(read.is_ok(), "the server never finished answering");
        let _ = writing.await; // the server may close before the whole body is sent
        parse_raw_response(&response)
    }
}

/// Status, headers and JSON body (Null when not JSON) of a raw HTTP/1.1 response.
fn parse_raw_response(raw: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head: {text:?}"));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| StatusCode::from_bytes(code.as_bytes()).ok())
        .unwrap_or_else(|| panic!("no status line: {head:?}"));
    let mut headers = reqwest::header::HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').expect("header line");
        headers.append(
            reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()).expect("header name"),
            reqwest::header::HeaderValue::from_str(value.trim()).expect("header value"),
        );
    }
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Reply {
        status,
        headers,
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

/// A value shaped like a refresh token (256 random bits, base64url) that the server never
/// issued.
pub fn random_refresh_token() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}
