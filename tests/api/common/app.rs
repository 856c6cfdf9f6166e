//! Boots a server per test: a fresh database on the chosen engine, a temporary data folder,
//! a manual clock, and limits loose enough for the longest suites.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aerie::clock::ManualClock;
use aerie::config::Config;
use aerie::server::Server;
use tokio::sync::oneshot;

use super::{Engine, postgres_configured};

/// One running server with its own database, data folder and clock, and a client for it.
/// Dropping it shuts the server down.
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

    /// Boots another instance of this deployment: the same database, signing key and audit
    /// key, its own listener, memory and clock (as a second server behind a load balancer
    /// would).
    pub async fn spawn_sibling(&self) -> Self {
        self.spawn_sibling_with(&[]).await
    }

    /// [`Self::spawn_sibling`] with extra `AERIE_*` settings: this deployment restarted with
    /// other settings.
    pub async fn spawn_sibling_with(&self, settings: &[(&str, &str)]) -> Self {
        self.spawn_sibling_on(self.engine, self.database_url.clone(), settings)
            .await
    }

    /// This deployment (its signing, audit and MFA keys) on another database, perhaps of
    /// the other engine: the deployment after a restore, say.
    pub async fn spawn_sibling_on(
        &self,
        engine: Engine,
        database_url: String,
        settings: &[(&str, &str)],
    ) -> Self {
        let shared = self.sibling_settings(settings);
        Self::spawn_on(engine, Some(database_url), &shared).await
    }

    /// This deployment's key files (signing, audit, data), then `settings`: what another
    /// instance of it starts with.
    fn sibling_settings(&self, settings: &[(&str, &str)]) -> Vec<(String, String)> {
        let path = |file: &str| self.data_dir.path().join(file).display().to_string();
        let mut shared = vec![
            ("AERIE_SIGNING_KEY_FILE".to_owned(), path("signing-key.pem")),
            ("AERIE_AUDIT_KEY_FILE".to_owned(), path("audit-key")),
            ("AERIE_DATA_KEYS_FILE".to_owned(), path("data-keys")),
        ];
        shared.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        shared
    }

    /// A server on an existing database (a role's URL, say), with extra settings.
    pub async fn spawn_at(engine: Engine, database_url: String, settings: &[(&str, &str)]) -> Self {
        Self::spawn_on(engine, Some(database_url), settings).await
    }

    async fn spawn_on(
        engine: Engine,
        database_url: Option<String>,
        settings: &[(impl AsRef<str>, impl AsRef<str>)],
    ) -> Self {
        Self::spawn_on_then(engine, database_url, settings, |_, _| async {})
            .await
            .0
    }

    /// Boots a server with extra settings, and runs `before_run` with its bound addresses
    /// (main, redirect) before it starts serving: for a service that must know the ports
    /// first (the ACME test CA validates challenges on them).
    pub async fn spawn_then<T, Fut: Future<Output = T>>(
        engine: Engine,
        settings: &[(&str, &str)],
        before_run: impl FnOnce(std::net::SocketAddr, Option<std::net::SocketAddr>) -> Fut,
    ) -> (Self, T) {
        Self::spawn_on_then(engine, None, settings, before_run).await
    }

    /// [`Self::spawn_then`] for another instance of this deployment ([`Self::spawn_sibling`]).
    pub async fn spawn_sibling_then<T, Fut: Future<Output = T>>(
        &self,
        settings: &[(&str, &str)],
        before_run: impl FnOnce(std::net::SocketAddr, Option<std::net::SocketAddr>) -> Fut,
    ) -> (Self, T) {
        let shared = self.sibling_settings(settings);
        Self::spawn_on_then(
            self.engine,
            Some(self.database_url.clone()),
            &shared,
            before_run,
        )
        .await
    }

    async fn spawn_on_then<T, Fut: Future<Output = T>>(
        engine: Engine,
        database_url: Option<String>,
        settings: &[(impl AsRef<str>, impl AsRef<str>)],
        before_run: impl FnOnce(std::net::SocketAddr, Option<std::net::SocketAddr>) -> Fut,
    ) -> (Self, T) {
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
        vars.extend(
            settings
                .iter()
                .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned())),
        );
        let config = Config::from_vars(vars).expect("test configuration is valid");
        let clock = Arc::new(ManualClock::starting_now());
        let server = Server::build(config, clock.clone())
            .await
            .expect("server boots");
        let address = format!("http://{}", server.local_addr().expect("bound"));
        let redirect_address = server.redirect_addr().map(|a| format!("http://{a}"));
        let metrics_address = server.metrics_addr().map(|a| format!("http://{a}"));
        let before = before_run(server.local_addr().expect("bound"), server.redirect_addr()).await;
        let (tx, rx) = oneshot::channel();
        tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let app = Self {
            address,
            redirect_address,
            metrics_address,
            client,
            clock,
            engine,
            database_url,
            data_dir,
            shutdown: Some(tx),
        };
        (app, before)
    }

    /// Starts a graceful shutdown, as SIGTERM does.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Creates a new, empty database on the test PostgreSQL server and returns its URL.
pub async fn fresh_postgres_database() -> String {
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
    LEFTOVERS_SWEPT
        .get_or_init(|| drop_leftover_databases(&mut connection))
        .await;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut connection)
        .await
        .expect("create test database");
    let (prefix, _) = base.rsplit_once('/').expect("database URL has a path");
    format!("{prefix}/{name}")
}

/// Set once per test process, after the databases of earlier runs have been dropped.
static LEFTOVERS_SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// Drops the databases that earlier test processes created and could not drop themselves
/// (a test's server still holds its pool when the test ends, so each run leaves its databases
/// behind). Only databases whose creating process is gone are touched: a suite running beside
/// this one in another checkout keeps its own. Failures are ignored; the next run retries.
async fn drop_leftover_databases(connection: &mut sqlx::PgConnection) {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'aerie_t_%'")
            .fetch_all(&mut *connection)
            .await
            .unwrap_or_default();
    for name in names {
        let creator = name
            .split('_')
            .nth(2)
            .and_then(|pid| pid.parse::<u32>().ok());
        let creator_alive =
            creator.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if creator.is_some() && !creator_alive {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name}"
            )))
            .execute(&mut *connection)
            .await;
        }
    }
}
