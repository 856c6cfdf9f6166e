//! A lock the test takes on its own connection, so that a request's wait for it is certain.

use sqlx::Connection;

use super::{Engine, TestApp};

/// A transaction on the test's own connection holding the lock a request will wait for: on
/// SQLite the database's write lock (readers never wait there, WAL), on PostgreSQL an
/// exclusive lock on one table.
pub enum Locker {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Locker {
    /// Takes the lock; `table` names what PostgreSQL locks (SQLite locks every write).
    pub async fn take(app: &TestApp, table: &str) -> Self {
        match app.engine {
            Engine::Sqlite => {
                let mut connection = sqlx::SqliteConnection::connect(&app.database_url)
                    .await
                    .expect("connect");
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut connection)
                    .await
                    .expect("write lock");
                Self::Sqlite(connection)
            }
            Engine::Postgres => {
                let mut connection = sqlx::PgConnection::connect(&app.database_url)
                    .await
                    .expect("connect");
                let lock = format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE");
                for sql in ["BEGIN".to_owned(), lock] {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&mut connection)
                        .await
                        .expect("lock");
                }
                Self::Postgres(connection)
            }
        }
    }

    pub async fn release(self) {
        let released = match self {
            Self::Sqlite(mut connection) => sqlx::query("ROLLBACK")
                .execute(&mut connection)
                .await
                .map(drop),
            Self::Postgres(mut connection) => sqlx::query("ROLLBACK")
                .execute(&mut connection)
                .await
                .map(drop),
        };
        released.expect("release");
    }
}
