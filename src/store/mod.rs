//! Persistence. Every query is written once, as parameterized SQL that both engines accept
//! (`$1`-style placeholders, BIGINT millisecond timestamps, integer flags), and run on
//! whichever pool the configuration chose. No query is ever assembled from input: the few
//! queries built with `format!` only splice fixed fragments and placeholder numbers.

mod acme;
mod admin;
mod article_lists;
mod audit;
mod audit_archive;
mod budget;
mod content;
mod devices;
mod export;
mod liveness;
mod mail;
mod mfa;
mod quotas;
mod roles;
mod sealed;
mod sessions;
mod snapshot;
mod users;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::clock::{Clock, SystemClock};
use crate::field_keys::{FieldKeySettings, FieldKeys, KeyFileError};
use crate::keyfile;

pub use acme::{AcmeItem, AcmeLock};
pub use admin::AccountRow;
pub use article_lists::{ArticleFilter, ArticleList, ArticlePage, ListPosition, PageStart};
pub use audit::{AuditFilter, AuditListRow, AuditRow, ChainHead};
pub use audit_archive::{ArchiveCheckpoint, PruneMismatch};
pub use budget::is_budget_exceeded;
pub use content::{ArticleChanges, ArticleRow, CommentRow, NewArticle};
pub use devices::DeviceSeen;
pub use export::ExportRows;
pub use mail::{EmailChangeByToken, MailBudget, NewMailToken, OutgoingMail, PendingMail};
pub use mfa::{ChallengeRow, NewChallenge, TotpRow};
pub use quotas::RecentWrites;
pub use roles::{RolePlan, RolesError, Statement};
pub use sealed::{KeyUse, Resealed, SEALED_FIELDS, SHORT_LIVED_SEALED_FIELDS};
pub use sessions::{
    LiveCap, NewSession, OpenedSession, Pruned, REVOCATION_CHANNEL, RefreshRow, SessionCutoffs,
    SessionRow,
};
pub use snapshot::{
    Cell, Emptiness, Restore, RestoreError, Snapshot, SnapshotError, TableInfo, dependency_order,
};
pub use users::{NewUser, ProfileRow, UserChanges, UserRow};

/// Runs the same code against whichever engine backs the store:
/// `on_pool!(self, |pool| sqlx::query(sql).fetch_one(pool).await)`. The body is compiled once
/// per driver, so types are checked per engine; the text is written once. It reads as a
/// closure so that rustfmt formats the query inside it (it cannot be one: each arm's `pool`
/// has a different type).
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite($pool) => $body,
            $crate::store::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Runs a statement whose result is only success or failure (INSERT, UPDATE, DELETE):
/// `execute!(self, sql, user_id, article_id)` binds the arguments in order.
macro_rules! execute {
    ($store:expr, $sql:expr $(, $arg:expr)* $(,)?) => {
        $crate::store::on_pool!($store, |pool| {
            sqlx::query($sql)$(.bind($arg))*.execute(pool).await.map(drop)
        })
    };
}
pub(crate) use execute;

#[derive(Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The database, whichever engine it is.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    queries: std::sync::Arc<content::ArticleQueries>,
    /// Seals emails and TOTP secrets on their way in and opens them on their way out, so
    /// nothing above the store handles a sealed value and no query can forget to seal.
    keys: FieldKeys,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("AERIE_DATABASE_URL: cannot connect: {0}")]
    Connect(sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("AERIE_DATA_DIR: cannot create the database folder: {0}")]
    Folder(std::io::Error),
    #[error(transparent)]
    Keys(#[from] KeyFileError),
}

/// Which database to open, and how many connections to keep.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// `sqlite://...` or `postgres://...`; may carry a database password, hence secret.
    pub url: SecretString,
    pub max_connections: u32,
    /// Apply pending migrations when the server (or a CLI command) starts: the development
    /// default; production runs `aerie migrate`.
    pub auto_migrate: bool,
    /// How long one use of a connection may run (see [`budget`]).
    pub statement_budget: Duration,
    /// The keys that seal personal data and secrets in the database.
    pub field_keys: FieldKeySettings,
}

impl DatabaseSettings {
    pub fn uses_postgres(&self) -> bool {
        self.url.expose_secret().starts_with("postgres")
    }
}

impl Store {
    /// Opens the pool the settings name. SQLite gets WAL, foreign keys and a busy
    /// timeout; both engines get bounded pools with acquire timeouts, so an exhausted pool
    /// answers 503 instead of hanging a request.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, ConnectError> {
        Self::connect_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// [`Self::connect`], with `clock` timing the field keyring's rechecks of its file: the
    /// server's own clock, so tests move it instead of sleeping.
    pub async fn connect_with_clock(
        settings: &DatabaseSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ConnectError> {
        let keys = FieldKeys::load(&settings.field_keys, clock)?;
        let url = settings.url.expose_secret();
        let pool = if settings.uses_postgres() {
            let options = PgConnectOptions::from_str(url)
                .map_err(ConnectError::Connect)?
                .options([budget::postgres_statement_timeout(
                    settings.statement_budget,
                )]);
            let pool = PgPoolOptions::new()
                .test_before_acquire(false)
                .before_acquire(|connection, meta| {
                    Box::pin(liveness::check_if_idle(connection, meta.idle_for))
                })
                .max_connections(settings.max_connections)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await
                .map_err(ConnectError::Connect)?;
            Pool::Postgres(pool)
        } else {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(ConnectError::Connect)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                // Deleted and overwritten content is zeroed, not left in free pages for a
                // copy of the file to reveal (an account's data after its deletion).
                .pragma("secure_delete", "on")
                .busy_timeout(settings.statement_budget.min(Duration::from_secs(5)));
            if let Some(folder) = options
                .get_filename()
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
            {
                std::fs::create_dir_all(folder).map_err(ConnectError::Folder)?;
            }
            // It holds password hashes: readable by its owner only, and SQLite gives its
            // `-wal` and `-shm` files the same mode.
            let file = options.get_filename();
            if !(file.as_os_str().is_empty() || file.as_os_str() == ":memory:") {
                keyfile::create_empty(file).map_err(ConnectError::Folder)?;
            }
            let pool = budget::bound_sqlite(SqlitePoolOptions::new(), settings.statement_budget)
                .after_release(|connection, _| Box::pin(leaves_no_transaction_open(connection)))
                .max_connections(settings.max_connections)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await
                .map_err(ConnectError::Connect)?;
            Pool::Sqlite(pool)
        };
        let queries = std::sync::Arc::new(content::ArticleQueries::new(&pool));
        Ok(Self {
            pool,
            queries,
            keys,
        })
    }

    /// The field-encryption keyring this store seals with (the MFA service digests recovery
    /// codes with its index key).
    pub fn field_keys(&self) -> &FieldKeys {
        &self.keys
    }

    /// This build's migrations for this engine.
    fn migrator(&self) -> sqlx::migrate::Migrator {
        match &self.pool {
            Pool::Sqlite(_) => sqlx::migrate!("./migrations/sqlite"),
            Pool::Postgres(_) => sqlx::migrate!("./migrations/postgres"),
        }
    }

    /// Applies pending migrations for this engine, outside the statement budget: a
    /// migration rewriting a large table may rightly take longer than any request.
    pub async fn migrate(&self) -> Result<(), ConnectError> {
        let migrator = self.migrator();
        match &self.pool {
            Pool::Sqlite(pool) => {
                let mut connection = pool.acquire().await.map_err(ConnectError::Connect)?;
                budget::lift_sqlite(&mut connection)
                    .await
                    .map_err(ConnectError::Connect)?;
                migrator.run(&mut *connection).await?;
            }
            Pool::Postgres(pool) => {
                let mut connection = pool.acquire().await.map_err(ConnectError::Connect)?;
                budget::lift_postgres(&mut connection, true)
                    .await
                    .map_err(ConnectError::Connect)?;
                let applied = migrator.run(&mut *connection).await;
                budget::lift_postgres(&mut connection, false)
                    .await
                    .map_err(ConnectError::Connect)?;
                applied?;
            }
        }
        Ok(())
    }

    /// How many of this build's migrations the database has not applied, read without
    /// writing anything (sqlx's own check would create its bookkeeping table). A database
    /// that was never migrated has every migration pending.
    pub async fn pending_migrations(&self) -> Result<usize, sqlx::Error> {
        let applied: Vec<i64> = match on_pool!(self, |pool| sqlx::query_scalar(
            "SELECT version FROM _sqlx_migrations WHERE success"
        )
        .fetch_all(pool)
        .await)
        {
            Ok(versions) => versions,
            // No bookkeeping table: nothing was ever applied.
            Err(sqlx::Error::Database(_)) => Vec::new(),
            Err(error) => return Err(error),
        };
        Ok(self
            .migrator()
            .iter()
            .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
            .count())
    }

    /// The newest migration this build ships for this engine: a backup's schema version
    /// must match it to be restored here.
    pub fn latest_migration(&self) -> i64 {
        self.migrator()
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .map(|m| m.version)
            .max()
            .unwrap_or(0)
    }

    /// `sqlite` or `postgres`.
    pub fn engine(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Whether the database answers (for readiness checks).
    pub async fn ping(&self) -> bool {
        on_pool!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .is_ok())
    }

    /// Open connections and how many of them are idle, for the pool gauges.
    pub fn pool_usage(&self) -> PoolUsage {
        let (open, idle) = on_pool!(self, |pool| (pool.size(), pool.num_idle()));
        let max = on_pool!(self, |pool| pool.options().get_max_connections());
        PoolUsage {
            open,
            idle: u32::try_from(idle).unwrap_or(u32::MAX),
            max,
        }
    }

    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }
}

/// A snapshot of the connection pool.
#[derive(Debug, Clone, Copy)]
pub struct PoolUsage {
    pub open: u32,
    pub idle: u32,
    pub max: u32,
}

/// Whether `error` says the database cannot be reached or cannot write right now, rather
/// than that the request or the code is wrong: a request meeting it may succeed later, so it
/// answers 503 and nothing more. Covers a pool that cannot hand out a connection in time
/// (the database is down or black-holed), a connection lost mid-statement, PostgreSQL
/// shutting down, refusing connections or out of resources (disk, memory, connection
/// slots), and SQLite out of disk space or failing to write. A statement past its budget is
/// [`is_budget_exceeded`], counted apart.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let Some(code) = db.code() else {
                return false;
            };
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // SQLITE_IOERR (10) and SQLITE_FULL (13), with their extended codes (the low
                // byte names the primary code).
                return code
                    .parse::<i32>()
                    .is_ok_and(|code| matches!(code & 0xff, 10 | 13));
            }
            // PostgreSQL: connection exceptions (class 08), insufficient resources (class
            // 53: disk full, out of memory, too many connections), operator intervention
            // (57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now).
            code.starts_with("08")
                || code.starts_with("53")
                || matches!(&*code, "57P01" | "57P02" | "57P03")
        }
        _ => false,
    }
}

/// Whether an SQLite connection coming back to the pool is out of every transaction, in
/// sqlx's count and in SQLite's own state; if not, the pool closes it (SQLite then rolls back
/// whatever is open).
///
/// Guards against acknowledged writes that are never committed. SQLite rolls a whole
/// transaction back by itself when a statement in it fails with `SQLITE_FULL`, `SQLITE_IOERR`
/// or `SQLITE_INTERRUPT` (the statement budget): sqlx's `ROLLBACK` on drop then fails, and
/// the connection returns to the pool believing it is one transaction deep. Its next
/// transaction opens with `SAVEPOINT`; a rollback of that one leaves SQLite inside a
/// transaction nobody will commit, so every later "commit" on the connection only releases
/// a savepoint, and its reads see an old snapshot (seen on a full disk: articles answered
/// 201 that the next request could not find).
///
/// Every such connection still counts a transaction in sqlx when it comes back: its depth only
/// falls when a `COMMIT` or `ROLLBACK` succeeds, and the failed `ROLLBACK` did not. A
/// connection whose count is zero used no transaction, or closed every one it opened (and
/// SQLite with it: it is the successful `COMMIT` or `ROLLBACK` that lowered the count), so it
/// goes back to the pool without a round trip to its worker thread; that round trip is most
/// of the cost of a cheap read. Only a non-zero count, a rollback still queued or one that
/// failed, is looked at:
///
/// Runs after any rollback a dropped transaction queued (one worker per connection, in
/// order): a raw `BEGIN` succeeds only outside a transaction, and is undone at once.
async fn leaves_no_transaction_open(
    connection: &mut sqlx::SqliteConnection,
) -> Result<bool, sqlx::Error> {
    use sqlx::Connection;
    if !connection.is_in_transaction() {
        return Ok(true);
    }
    if sqlx::raw_sql("BEGIN")
        .execute(&mut *connection)
        .await
        .is_err()
    {
        tracing::warn!("closing a database connection left inside a transaction");
        return Ok(false);
    }
    sqlx::raw_sql("ROLLBACK").execute(&mut *connection).await?;
    if connection.is_in_transaction() {
        tracing::warn!("closing a database connection whose transaction SQLite rolled back");
        return Ok(false);
    }
    Ok(true)
}

/// How often [`report_unavailable`] logs while the database stays unavailable.
const UNAVAILABLE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Logs a request's meeting with an unavailable database once per
/// [`UNAVAILABLE_LOG_INTERVAL`], with how many went unlogged since, so an outage under load
/// is one WARN line every ten seconds instead of one per request.
pub fn report_unavailable(error: &sqlx::Error) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    /// Milliseconds since `ORIGIN` of the last line, plus one (0: never logged).
    static LAST_LOGGED: AtomicU64 = AtomicU64::new(0);
    static UNLOGGED: AtomicU64 = AtomicU64::new(0);
    let origin = *ORIGIN.get_or_init(std::time::Instant::now);
    let now = u64::try_from(origin.elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let last = LAST_LOGGED.load(Ordering::Relaxed);
    let interval = u64::try_from(UNAVAILABLE_LOG_INTERVAL.as_millis()).unwrap_or(u64::MAX);
    let due = last == 0 || now.saturating_sub(last) >= interval;
    if !due
        || LAST_LOGGED
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        UNLOGGED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    tracing::warn!(
        %error,
        since_last_log = UNLOGGED.swap(0, Ordering::Relaxed),
        "database unavailable: answering 503"
    );
}

/// Whether a text lookup key can match anything. PostgreSQL `text` cannot hold NUL, so binding
/// one fails the whole query (a 500), where SQLite simply finds nothing. Nothing stored holds
/// a NUL (the domain refuses control characters), so such a key is answered "no match" on
/// both engines without asking the database.
pub(crate) fn matchable(key: &str) -> bool {
    !key.contains('\0')
}

/// True when `error` is a violation of the unique index on `table.column`. PostgreSQL names
/// the index: `table_column` (our naming rule) or `table_column_key` (PostgreSQL's own
/// default, which `articles_slug_key` follows; matching only the first made a duplicate
/// title a 500 on PostgreSQL). SQLite names the column (`table.column`).
pub fn is_unique_violation(error: &sqlx::Error, table: &str, column: &str) -> bool {
    let sqlx::Error::Database(db) = error else {
        return false;
    };
    if !db.is_unique_violation() {
        return false;
    }
    let index = format!("{table}_{column}");
    let named_index = db
        .constraint()
        .is_some_and(|name| name == index || name == format!("{index}_key"));
    named_index || db.message().contains(&format!("{table}.{column}"))
}
