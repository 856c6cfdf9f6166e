//! Whether a database may receive a restore: migrated or not, and nothing in it but what
//! the migrations put there.

use super::catalogue::{self, Table};
use super::{DERIVED, RestoreError, SEEDED};
use crate::store::{Pool, Store};

/// Whether a database may receive a restore.
#[derive(Debug, PartialEq, Eq)]
pub enum Emptiness {
    /// No tables at all: migrate it first.
    Unmigrated,
    /// Migrated, and nothing in it but what the migrations put there.
    Empty,
    /// This table has rows (or the audit chain has begun).
    Holds(String),
}

/// The emptiness check on one connection: every table but the seeded and derived ones
/// must be empty, and the audit chain must not have begun.
macro_rules! emptiness_of {
    ($conn:expr, $tables:expr) => {{
        let tables: Vec<Table> = $tables;
        let mut answer = if tables.is_empty() {
            Emptiness::Unmigrated
        } else {
            Emptiness::Empty
        };
        for table in &tables {
            let name = table.name.as_str();
            let sql = if SEEDED.contains(&name) {
                format!("SELECT COUNT(*) FROM \"{name}\" WHERE seq <> 0")
            } else if DERIVED.contains(&name) {
                continue;
            } else {
                format!("SELECT COUNT(*) FROM (SELECT 1 FROM \"{name}\" LIMIT 1) AS any_row")
            };
            let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(&mut *$conn)
                .await?;
            if rows > 0 {
                answer = Emptiness::Holds(table.name.clone());
                break;
            }
        }
        Ok::<Emptiness, RestoreError>(answer)
    }};
}
pub(super) use emptiness_of;

impl Store {
    /// Whether this database may receive a restore (read only).
    pub async fn emptiness(&self) -> Result<Emptiness, RestoreError> {
        match &self.pool {
            Pool::Sqlite(pool) => {
                let mut conn = pool.acquire().await?;
                let tables = catalogue::sqlite_tables(&mut conn).await??;
                emptiness_of!(&mut *conn, tables)
            }
            Pool::Postgres(pool) => {
                let mut conn = pool.acquire().await?;
                let tables = catalogue::postgres_tables(&mut conn).await??;
                emptiness_of!(&mut *conn, tables)
            }
        }
    }
}
