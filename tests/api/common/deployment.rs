//! Several instances of one deployment: the same database, keys and Redis. In-process pairs
//! ([`two_instances`]) for what a test reads through the server's own clock; processes of
//! the real binary ([`Deployment`]) for what only a whole process shows: `kill -9`, SIGTERM,
//! a rolling restart.

use std::process::Output;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{
    Engine, PASSWORD, Reply, ServerProcess, TestApp, fresh_postgres_database, postgres_configured,
    run_to_exit, start_server,
};

/// Instance A and its sibling B on a fresh PostgreSQL database; `None` (test skipped, said
/// loudly) without `AERIE_TEST_POSTGRES_URL`.
pub async fn two_instances(test: &str) -> Option<(TestApp, TestApp)> {
    let Some(a) = TestApp::spawn_postgres().await else {
        eprintln!("SKIPPED: {test} needs AERIE_TEST_POSTGRES_URL");
        return None;
    };
    let b = a.spawn_sibling().await;
    Some((a, b))
}

/// A live Redis for one test: its URL and a key prefix no other test or run uses; `None`
/// (said loudly) without `AERIE_TEST_REDIS_URL`.
pub fn test_redis(test: &str) -> Option<(String, String)> {
    let Ok(url) = std::env::var("AERIE_TEST_REDIS_URL") else {
        eprintln!("SKIPPED: {test} needs AERIE_TEST_REDIS_URL");
        return None;
    };
    let base = std::env::var("AERIE_TEST_REDIS_PREFIX").unwrap_or_else(|_| "aerie-test:".into());
    Some((url, format!("{base}{}:", uuid::Uuid::new_v4().simple())))
}

/// One deployment of the real binary: a database (a fresh PostgreSQL database, or an SQLite
/// file in the data folder), one data folder holding the keys every instance shares, and
/// the settings every instance starts with. Instances are started one at a time (the first
/// generates the keys).
pub struct Deployment {
    /// The keys, and the SQLite file: every instance's `AERIE_DATA_DIR`.
    pub data: tempfile::TempDir,
    settings: Vec<(String, String)>,
}

impl Deployment {
    /// A deployment on `engine` with JSON logs, limits loose enough for a load, and
    /// `settings`; `None` (said loudly) for PostgreSQL without `AERIE_TEST_POSTGRES_URL`.
    pub async fn new(engine: Engine, test: &str, settings: &[(&str, &str)]) -> Option<Self> {
        let data = tempfile::tempdir().expect("temporary folder");
        let database_url = match engine {
            Engine::Sqlite => format!(
                "sqlite://{}?mode=rwc",
                data.path().join("aerie.db").display()
            ),
            Engine::Postgres => {
                if !postgres_configured() {
                    eprintln!("SKIPPED: {test} on PostgreSQL");
                    return None;
                }
                fresh_postgres_database().await
            }
        };
        let mut all: Vec<(String, String)> = vec![
            ("AERIE_LISTEN".into(), "127.0.0.1:0".into()),
            ("AERIE_DATA_DIR".into(), data.path().display().to_string()),
            ("AERIE_DATABASE_URL".into(), database_url),
            ("AERIE_LOG_FORMAT".into(), "json".into()),
        ];
        for policy in aerie::defense::rate_limit::RateLimits::all_policies() {
            all.push((policy.setting().into(), "100000/60".into()));
        }
        all.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Some(Self {
            data,
            settings: all,
        })
    }

    /// On PostgreSQL and Redis (a prefix of its own), as several instances are deployed;
    /// `None` (said loudly) when either is not configured.
    pub async fn on_postgres_and_redis(test: &str, settings: &[(&str, &str)]) -> Option<Self> {
        let (url, prefix) = test_redis(test)?;
        let mut all = vec![
            ("AERIE_REDIS_URL", url.as_str()),
            ("AERIE_REDIS_PREFIX", prefix.as_str()),
        ];
        all.extend_from_slice(settings);
        Self::new(Engine::Postgres, test, &all).await
    }

    /// The settings every instance starts with.
    pub fn settings(&self) -> Vec<(&str, &str)> {
        self.settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    /// Starts one more instance (its own port and working folder).
    pub async fn start(&self) -> ServerProcess {
        self.start_with(&[]).await
    }

    /// [`Self::start`] with `extra` settings, which win over the deployment's.
    pub async fn start_with(&self, extra: &[(&str, &str)]) -> ServerProcess {
        let mut settings = self.settings();
        settings.extend_from_slice(extra);
        start_server(tempfile::tempdir().expect("temporary folder"), &settings).await
    }

    /// Runs `aerie args…` on this deployment, as an operator would, to its end.
    pub async fn aerie(&self, args: &[&str]) -> Output {
        run_to_exit(self.data.path(), args, &self.settings()).await
    }

    /// Asserts that `aerie audit verify` finds the chain intact.
    pub async fn assert_audit_chain_intact(&self) {
        let verified = self.aerie(&["audit", "verify"]).await;
        let printed = String::from_utf8_lossy(&verified.stdout);
        assert!(
            verified.status.success() && printed.contains("audit chain intact"),
            "aerie audit verify: {printed}{}",
            String::from_utf8_lossy(&verified.stderr)
        );
    }
}

/// A client of one instance by its address, for tests that drive processes: every call
/// answers the reply, or the transport error (refused, reset, timed out) for the test to
/// judge.
#[derive(Clone)]
pub struct Caller {
    pub client: reqwest::Client,
}

impl Caller {
    /// One connection per request (no keep-alive): a transport error is then about this
    /// request alone, never a pooled connection closed between two requests.
    pub fn new(timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(0)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Self { client }
    }

    /// `method address+path` with an optional token and JSON body.
    pub async fn call(
        &self,
        address: &str,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<Reply, reqwest::Error> {
        let mut request = self
            .client
            .request(method, format!("http://{address}{path}"));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Token {token}"));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let path = response.url().path().to_owned();
        let bytes = response.bytes().await?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Reply {
            status,
            headers,
            body,
            path,
        })
    }

    /// Registers `name` on `address` and returns the User object (token, refresh token).
    pub async fn register(&self, address: &str, name: &str) -> Value {
        let body = json!({"user": {"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}});
        let reply = self
            .call(address, Method::POST, "/api/users", None, Some(body))
            .await
            .expect("registration answered");
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "register {name}: {}",
            reply.body
        );
        reply.body["user"].clone()
    }
}

/// Deletes every key under `prefix` in the Redis at `url` (a test's own keys).
pub async fn delete_redis_keys(url: &str, prefix: &str) {
    let mut connection = redis::Client::open(url)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis answers");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut connection)
        .await
        .expect("KEYS");
    for key in keys {
        let _: Result<i64, _> = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut connection)
            .await;
    }
}
