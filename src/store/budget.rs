//! The per-request database budget: no single use of a connection may hold it for long.
//!
//! - PostgreSQL: `statement_timeout`, set as a connection option, so the server cancels any
//!   statement (lock waits included) that runs longer (SQLSTATE 57014).
//! - SQLite: a progress handler, armed each time a connection leaves the pool with a deadline
//!   one budget away, interrupts the statement running past it (SQLITE_INTERRUPT). It bounds
//!   the whole time a connection is held, so a transaction shares one budget. Waiting for
//!   another writer's lock runs no instructions, so the busy timeout bounds that instead
//!   (set to the budget, at most 5 s); running out of it is also answered as over budget.
//!
//! [`is_budget_exceeded`] tells the HTTP layer, which answers 503 and counts it.

use std::time::{Duration, Instant};

use sqlx::sqlite::SqlitePoolOptions;

/// How many SQLite virtual-machine instructions run between two looks at the clock: a
/// look costs tens of nanoseconds, a thousand instructions a few microseconds.
const INSTRUCTIONS_PER_CHECK: i32 = 1000;

/// The `statement_timeout` connection option (whole milliseconds, at least 1: 0 would turn
/// the bound off).
pub(super) fn postgres_statement_timeout(budget: Duration) -> (&'static str, String) {
    let millis = budget.as_millis().max(1);
    ("statement_timeout", format!("{millis}"))
}

/// Arms the progress handler of every connection the pool hands out.
///
/// It also turns off sqlx's ping on the way out of the pool: arming is a round trip to the
/// connection's worker thread already, and fails (closing the connection) if the worker has
/// gone, which is all the ping would find. The two stay together here so that neither
/// outlives the other.
pub(super) fn bound_sqlite(options: SqlitePoolOptions, budget: Duration) -> SqlitePoolOptions {
    options
        .test_before_acquire(false)
        .after_connect(move |connection, _| {
            Box::pin(async move {
                arm(connection, budget).await?;
                Ok(())
            })
        })
        .before_acquire(move |connection, _| {
            Box::pin(async move {
                arm(connection, budget).await?;
                Ok(true)
            })
        })
}

async fn arm(connection: &mut sqlx::SqliteConnection, budget: Duration) -> Result<(), sqlx::Error> {
    let deadline = Instant::now() + budget;
    connection
        .lock_handle()
        .await?
        .set_progress_handler(INSTRUCTIONS_PER_CHECK, move || Instant::now() < deadline);
    Ok(())
}

/// Disarms the budget of a connection until it next leaves the pool (migrations).
pub(super) async fn lift_sqlite(
    connection: &mut sqlx::SqliteConnection,
) -> Result<(), sqlx::Error> {
    connection.lock_handle().await?.remove_progress_handler();
    Ok(())
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
    use crate::store::{DatabaseSettings, Store, on_pool};

    /// Counts to a hundred million: tens of seconds on either engine, unless stopped.
    const HEAVY: &str =
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000)
                         SELECT CAST(COUNT(*) AS BIGINT) FROM n";

    async fn heavy_query_is_stopped(url: String) {
        let keys = tempfile::tempdir().expect("tempdir");
        let settings = DatabaseSettings {
            url: SecretString::from(url),
            max_connections: 2,
            auto_migrate: false,
            statement_budget: Duration::from_millis(50),
            field_keys: crate::field_keys::FieldKeySettings {
                file: keys.path().join("data-keys"),
                generate: true,
                legacy_mfa_key: None,
            },
        };
        let store = Store::connect(&settings).await.expect("database opens");
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
        let url = format!("sqlite://{}?mode=rwc", folder.path().join("b.db").display());
        heavy_query_is_stopped(url).await;
    }

    #[tokio::test]
    async fn postgres_statement_past_the_budget_is_cancelled() {
        let Ok(url) = std::env::var("AERIE_TEST_POSTGRES_URL") else {
            eprintln!("SKIPPED: AERIE_TEST_POSTGRES_URL is not set; PostgreSQL budget not checked");
            return;
        };
        heavy_query_is_stopped(url).await;
    }
}
