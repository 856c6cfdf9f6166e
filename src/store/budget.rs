//! The per-request database budget: no single use of a connection may hold it for long.
//!
//! - PostgreSQL: `statement_timeout`, set as a connection option, so the server cancels any
//!   statement (lock waits included) that runs longer (SQLSTATE 57014).
//! - SQLite: a progress handler interrupts a statement running past the connection's deadline
//!   (SQLITE_INTERRUPT). The deadline is set one budget away each time the connection leaves
//!   the pool, so it bounds the whole time a connection is held and a transaction shares one
//!   budget. Waiting for another writer's lock runs no instructions, so the busy timeout bounds
//!   that instead (set to the budget, at most 5 s); running out of it is also answered as over
//!   budget.
//!
//! How the deadline is reset without the connection's lock: sqlx runs each SQLite connection on
//! a worker thread of its own, and its pool hooks see a connection but nothing that tells one
//! from another. Taking the lock (`lock_handle`) on every hand-out wakes that thread twice, a
//! third of the cost of the cheapest read (BENCHMARKS.md, bare-server section). So each
//! connection gets, once when it opens, a [`Deadline`] shared by its progress handler and by
//! two collations registered on that connection alone: comparing under
//! [`RESTART_COLLATION`] sets the deadline one budget from now, under [`LIFT_COLLATION`] lifts
//! it. A hand-out runs one tiny cached statement that compares under the first: one round
//! trip, no lock.
//!
//! [`is_budget_exceeded`] tells the HTTP layer, which answers 503 and counts it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::sqlite::SqlitePoolOptions;

/// How many SQLite virtual-machine instructions run between two looks at the clock: a
/// look costs tens of nanoseconds, a thousand instructions a few microseconds.
const INSTRUCTIONS_PER_CHECK: i32 = 1000;

/// The collation whose comparison restarts the connection's budget.
const RESTART_COLLATION: &str = "aerie_budget_restart";
/// The collation whose comparison lifts it until the next restart.
const LIFT_COLLATION: &str = "aerie_budget_lift";

/// Statements that compare once under each collation and return no row (a row would be one
/// more message from the worker thread). SQLite evaluates a constant comparison once per
/// run of the statement, not when preparing it, which `the_budget_restarts_with_each_use`
/// relies on and checks.
const RESTART: &str = "SELECT 1 WHERE ('' = '' COLLATE aerie_budget_restart) IS NULL";
const LIFT: &str = "SELECT 1 WHERE ('' = '' COLLATE aerie_budget_lift) IS NULL";

/// The `statement_timeout` connection option (whole milliseconds, at least 1: 0 would turn
/// the bound off).
pub(super) fn postgres_statement_timeout(budget: Duration) -> (&'static str, String) {
    let millis = budget.as_millis().max(1);
    ("statement_timeout", format!("{millis}"))
}

/// One SQLite connection's deadline: nanoseconds after `opened`, read by its progress handler
/// and moved by its two collations, all three run on the connection's worker thread.
struct Deadline {
    opened: Instant,
    budget: Duration,
    nanos: AtomicU64,
}

impl Deadline {
    const LIFTED: u64 = u64::MAX;

    fn now(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_nanos()).unwrap_or(Self::LIFTED)
    }

    fn restart(&self) {
        let budget = u64::try_from(self.budget.as_nanos()).unwrap_or(Self::LIFTED);
        self.nanos
            .store(self.now().saturating_add(budget), Ordering::Relaxed);
    }

    fn lift(&self) {
        self.nanos.store(Self::LIFTED, Ordering::Relaxed);
    }

    /// Whether the statement running may go on.
    fn allows(&self) -> bool {
        self.now() < self.nanos.load(Ordering::Relaxed)
    }
}

/// Bounds every connection the pool opens and restarts the bound each time it hands one out.
///
/// It also turns off sqlx's ping on the way out of the pool: the restart is a round trip to
/// the connection's worker thread already, and fails (closing the connection) if the worker
/// has gone, which is all the ping would find. The two stay together here so that neither
/// outlives the other.
pub(super) fn bound_sqlite(options: SqlitePoolOptions, budget: Duration) -> SqlitePoolOptions {
    options
        .test_before_acquire(false)
        .after_connect(move |connection, _| {
            Box::pin(async move {
                install(connection, budget).await?;
                Ok(())
            })
        })
        .before_acquire(move |connection, _| {
            Box::pin(async move {
                sqlx::query(RESTART).execute(connection).await?;
                Ok(true)
            })
        })
}

/// Gives a new connection its deadline, its handler and its collations, the budget running.
async fn install(
    connection: &mut sqlx::SqliteConnection,
    budget: Duration,
) -> Result<(), sqlx::Error> {
    let deadline = Arc::new(Deadline {
        opened: Instant::now(),
        budget,
        nanos: AtomicU64::new(0),
    });
    deadline.restart();
    let mut handle = connection.lock_handle().await?;
    let restart = Arc::clone(&deadline);
    handle.create_collation(RESTART_COLLATION, move |_, _| {
        restart.restart();
        std::cmp::Ordering::Equal
    })?;
    let lift = Arc::clone(&deadline);
    handle.create_collation(LIFT_COLLATION, move |_, _| {
        lift.lift();
        std::cmp::Ordering::Equal
    })?;
    handle.set_progress_handler(INSTRUCTIONS_PER_CHECK, move || deadline.allows());
    Ok(())
}

/// Lifts the budget of a connection until it next leaves the pool (migrations).
pub(super) async fn lift_sqlite(
    connection: &mut sqlx::SqliteConnection,
) -> Result<(), sqlx::Error> {
    sqlx::query(LIFT).execute(connection).await.map(drop)
}

/// Lifts the statement timeout of a connection (migrations), or restores it (`RESET` returns
/// to the value the connection was opened with).
pub(super) async fn lift_postgres(
    connection: &mut sqlx::PgConnection,
    lift: bool,
) -> Result<(), sqlx::Error> {
    let sql = if lift {
        "SET statement_timeout = 0"
    } else {
        "RESET statement_timeout"
    };
    sqlx::query(sql).execute(connection).await.map(drop)
}

/// Whether `error` is a statement stopped by the budget (or an SQLite lock wait that outlasted
/// it), rather than a fault.
pub fn is_budget_exceeded(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = error else {
        return false;
    };
    // PostgreSQL: query_canceled. SQLite: SQLITE_INTERRUPT (9), SQLITE_BUSY (5) and its
    // extended codes (the low byte names the primary code).
    match db.code().as_deref() {
        Some("57014") => true,
        Some(code) => code.parse::<i32>().is_ok_and(|code| {
            matches!(code & 0xff, 5 | 9)
                && db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
        }),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::store::{DatabaseSettings, Pool, Store, on_pool};

    /// Counts to a hundred million: tens of seconds on either engine, unless stopped.
    const HEAVY: &str =
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000)
                         SELECT CAST(COUNT(*) AS BIGINT) FROM n";

    /// Counts to a million: far longer than [`SHORT`] on either engine, and done in seconds.
    const LONG: &str =
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000)
                         SELECT CAST(COUNT(*) AS BIGINT) FROM n";

    const SHORT: Duration = Duration::from_millis(50);

    /// A store on `url` whose connections have a [`SHORT`] budget (the folder holds its keys).
    async fn store_with_short_budget(url: String) -> (Store, tempfile::TempDir) {
        let keys = tempfile::tempdir().expect("tempdir");
        let settings = DatabaseSettings {
            url: SecretString::from(url),
            max_connections: 2,
            auto_migrate: false,
            statement_budget: SHORT,
            field_keys: crate::field_keys::FieldKeySettings {
                file: keys.path().join("data-keys"),
                generate: true,
                legacy_mfa_key: None,
            },
        };
        let store = Store::connect(&settings).await.expect("database opens");
        (store, keys)
    }

    fn sqlite_url(folder: &tempfile::TempDir) -> String {
        format!("sqlite://{}?mode=rwc", folder.path().join("b.db").display())
    }

    /// The test PostgreSQL, or `None` (said loudly) when there is none.
    fn postgres_url() -> Option<String> {
        let url = std::env::var("AERIE_TEST_POSTGRES_URL").ok();
        if url.is_none() {
            eprintln!("SKIPPED: AERIE_TEST_POSTGRES_URL is not set; PostgreSQL budget not checked");
        }
        url
    }

    async fn heavy_query_is_stopped(url: String) {
        let (store, _keys) = store_with_short_budget(url).await;
        let result: Result<i64, sqlx::Error> = on_pool!(store, |pool| sqlx::query_scalar(HEAVY)
            .fetch_one(pool)
            .await);
        let error = result.expect_err("the budget stops the query");
        assert!(is_budget_exceeded(&error), "{error}");
        // The connection is usable again, with a fresh budget.
        let one: i64 = on_pool!(store, |pool| sqlx::query_scalar("SELECT CAST(1 AS BIGINT)")
            .fetch_one(pool)
            .await)
        .expect("next query runs");
        assert_eq!(one, 1);
        store.close().await;
    }

    #[tokio::test]
    async fn sqlite_statement_past_the_budget_is_interrupted() {
        let folder = tempfile::tempdir().expect("temporary folder");
        heavy_query_is_stopped(sqlite_url(&folder)).await;
    }

    /// Migrations, snapshots and re-sealing lift the budget: on a lifted connection a
    /// statement past it runs to its end, and the connection's next use is bounded again.
    #[tokio::test]
    async fn sqlite_a_lifted_connection_runs_past_the_budget() {
        let folder = tempfile::tempdir().expect("temporary folder");
        let (store, _keys) = store_with_short_budget(sqlite_url(&folder)).await;
        let Pool::Sqlite(pool) = &store.pool else {
            panic!("an SQLite store");
        };
        let mut connection = pool.acquire().await.expect("a connection");
        lift_sqlite(&mut connection).await.expect("lifted");
        let counted: i64 = sqlx::query_scalar(LONG)
            .fetch_one(&mut *connection)
            .await
            .expect("runs to its end");
        assert_eq!(counted, 1_000_000);
        drop(connection);
        // The pool takes a dropped connection back on a task of its own: wait (bounded) for
        // it, so that the next query gets this same connection rather than a new one.
        for _ in 0..100 {
            if pool.num_idle() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let error = sqlx::query_scalar::<_, i64>(HEAVY)
            .fetch_one(pool)
            .await
            .expect_err("bounded again");
        assert!(is_budget_exceeded(&error), "{error}");
        assert_eq!(
            pool.size(),
            1,
            "the lifted connection itself was bounded again"
        );
        store.close().await;
    }

    /// The budget runs from each hand-out, not from the connection's opening: a connection
    /// left idle in the pool for longer than the budget still runs a statement of some
    /// thousands of instructions (enough for the progress handler to look at the clock).
    #[tokio::test]
    async fn sqlite_the_budget_restarts_with_each_use() {
        const SMALL: &str =
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
                             SELECT CAST(COUNT(*) AS BIGINT) FROM n";
        let folder = tempfile::tempdir().expect("temporary folder");
        let (store, _keys) = store_with_short_budget(sqlite_url(&folder)).await;
        let Pool::Sqlite(pool) = &store.pool else {
            panic!("an SQLite store");
        };
        for _ in 0..2 {
            let counted: i64 = sqlx::query_scalar(SMALL)
                .fetch_one(pool)
                .await
                .expect("within a fresh budget");
            assert_eq!(counted, 5000);
            // Real time: the budget is the connection's wall clock, which no test clock moves.
            tokio::time::sleep(SHORT * 2).await;
        }
        assert_eq!(pool.size(), 1, "the same connection, used twice");
        store.close().await;
    }

    #[test]
    fn the_statements_compare_under_their_own_collations() {
        assert!(RESTART.contains(RESTART_COLLATION));
        assert!(LIFT.contains(LIFT_COLLATION));
    }

    /// Only the budget's own codes are over budget: another SQLite error (here a missing
    /// table) is a fault to report, not a 503 to retry.
    #[tokio::test]
    async fn other_sqlite_errors_are_not_over_budget() {
        let folder = tempfile::tempdir().expect("temporary folder");
        let (store, _keys) = store_with_short_budget(sqlite_url(&folder)).await;
        let Pool::Sqlite(pool) = &store.pool else {
            panic!("an SQLite store");
        };
        let error = sqlx::query("SELECT * FROM no_such_table")
            .execute(pool)
            .await
            .expect_err("no such table");
        assert!(!is_budget_exceeded(&error), "{error}");
        store.close().await;
    }

    #[tokio::test]
    async fn postgres_statement_past_the_budget_is_cancelled() {
        let Some(url) = postgres_url() else {
            return;
        };
        heavy_query_is_stopped(url).await;
    }

    #[tokio::test]
    async fn postgres_a_lifted_connection_runs_past_the_budget() {
        let Some(url) = postgres_url() else {
            return;
        };
        let (store, _keys) = store_with_short_budget(url).await;
        let Pool::Postgres(pool) = &store.pool else {
            panic!("a PostgreSQL store");
        };
        let mut connection = pool.acquire().await.expect("a connection");
        lift_postgres(&mut connection, true).await.expect("lifted");
        sqlx::query("SELECT pg_sleep(0.3)")
            .execute(&mut *connection)
            .await
            .expect("runs to its end");
        lift_postgres(&mut connection, false)
            .await
            .expect("restored");
        let error = sqlx::query("SELECT pg_sleep(0.3)")
            .execute(&mut *connection)
            .await
            .expect_err("bounded again");
        assert!(is_budget_exceeded(&error), "{error}");
        drop(connection);
        store.close().await;
    }
}
