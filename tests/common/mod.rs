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

/// Declares one test per database engine: `name::sqlite` always runs; `name::postgres` runs
/// when `AERIE_TEST_POSTGRES_URL` is set and says loudly that it was skipped otherwise.
#[macro_export]
macro_rules! engine_test {
    ($(#[$meta:meta])* async fn $name:ident($app:ident: TestApp) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($app: $crate::common::TestApp) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run($crate::common::TestApp::spawn($crate::common::Engine::Sqlite).await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = $crate::common::TestApp::spawn_postgres().await {
                    run(app).await;
                }
            }
        }
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub address: String,
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
        if std::env::var("AERIE_TEST_POSTGRES_URL").is_err() {
            eprintln!("SKIPPED: AERIE_TEST_POSTGRES_URL is not set; PostgreSQL variant not run");
            return None;
        }
        Some(Self::spawn(Engine::Postgres).await)
    }

    /// Boots a server with extra `AERIE_*` settings.
    pub async fn spawn_with(engine: Engine, settings: &[(&str, &str)]) -> Self {
        let data_dir = tempfile::tempdir().expect("temporary folder");
        let database_url = match engine {
            Engine::Sqlite => format!(
                "sqlite://{}?mode=rwc",
                data_dir.path().join("aerie.db").display()
            ),
            Engine::Postgres => fresh_postgres_database().await,
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
        vars.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = Config::from_vars(vars).expect("test configuration is valid");
        let clock = Arc::new(ManualClock::starting_now());
        let server = Server::build(config, clock.clone())
            .await
            .expect("server boots");
        let address = format!("http://{}", server.local_addr().expect("bound"));
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
            client,
            clock,
            engine,
            database_url,
            data_dir,
            shutdown: Some(tx),
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

    /// Registers `name` (email `name@example.com`) and returns the access token.
    pub async fn register(&self, name: &str) -> String {
        let reply = self
            .post("/api/users", None, json!({"user": {"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}}))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "register {name}: {}",
            reply.body
        );
        reply.body["user"]["token"]
            .as_str()
            .expect("token")
            .to_owned()
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
