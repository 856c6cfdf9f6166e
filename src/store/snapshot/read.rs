//! A consistent read of every table: one transaction that sees the database as it was when
//! it began (SQLite: a read transaction on the WAL; PostgreSQL: REPEATABLE READ, READ ONLY),
//! so rows written meanwhile by a running server are all in or all out.

use futures_util::TryStreamExt as _;
use sqlx::{Column as _, Row as _, TypeInfo as _, ValueRef as _};

use super::catalogue::{self, StrangeName, Table};
use super::{Cell, TableInfo, quoted_list};
use crate::store::{Pool, Store, budget};

enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// The database frozen at one instant; dropped or [`Snapshot::close`]d, it ends.
pub struct Snapshot {
    tx: Tx,
    tables: Vec<Table>,
    schema_version: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("reading the database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Name(#[from] StrangeName),
    #[error("column {0} holds a {1} value, which backups do not carry")]
    Type(String, String),
    /// The caller's sink failed (writing the backup file).
    #[error("{0}")]
    Sink(std::io::Error),
}

const VERSION: &str = "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success";

impl Store {
    /// Begins the snapshot, outside the statement budget (a large table takes longer to
    /// read than any request may).
    pub async fn snapshot(&self) -> Result<Snapshot, SnapshotError> {
        let (tx, tables, schema_version) = match &self.pool {
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                budget::lift_sqlite(&mut tx).await?;
                let tables = catalogue::sqlite_tables(&mut tx).await??;
                let version = sqlx::query_scalar(VERSION).fetch_one(&mut *tx).await?;
                (Tx::Sqlite(tx), tables, version)
            }
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("SET LOCAL statement_timeout = 0")
                    .execute(&mut *tx)
                    .await?;
                let tables = catalogue::postgres_tables(&mut tx).await??;
                let version = sqlx::query_scalar(VERSION).fetch_one(&mut *tx).await?;
                (Tx::Postgres(tx), tables, version)
            }
        };
        Ok(Snapshot {
            tx,
            tables,
            schema_version,
        })
    }
}

impl Snapshot {
    pub fn engine(&self) -> &'static str {
        match self.tx {
            Tx::Sqlite(_) => "sqlite",
            Tx::Postgres(_) => "postgres",
        }
    }

    /// The newest migration applied.
    pub fn schema_version(&self) -> i64 {
        self.schema_version
    }

    /// Every table, parents before the tables whose foreign keys point at them.
    pub fn tables(&self) -> Vec<TableInfo> {
        self.tables
            .iter()
            .map(|t| TableInfo {
                name: t.name.clone(),
                columns: t.columns.iter().map(|c| c.name.clone()).collect(),
            })
            .collect()
    }

    /// Hands every row of `table` to `sink`, in the columns' order; answers how many.
    pub async fn each_row(
        &mut self,
        table: &TableInfo,
        mut sink: impl FnMut(&[Cell]) -> std::io::Result<()>,
    ) -> Result<u64, SnapshotError> {
        let sql = format!(
            "SELECT {} FROM \"{}\"",
            quoted_list(&table.columns),
            table.name
        );
        let sql = sqlx::AssertSqlSafe(sql.as_str());
        let mut count = 0;
        let mut cells = Vec::with_capacity(table.columns.len());
        macro_rules! each {
            ($tx:expr, $decode:ident) => {{
                let mut rows = sqlx::query(sql).fetch(&mut **$tx);
                while let Some(row) = rows.try_next().await? {
                    cells.clear();
                    for index in 0..row.len() {
                        cells.push($decode(&row, index, table)?);
                    }
                    sink(cells.as_slice()).map_err(SnapshotError::Sink)?;
                    count += 1;
                }
            }};
        }
        match &mut self.tx {
            Tx::Sqlite(tx) => each!(tx, sqlite_cell),
            Tx::Postgres(tx) => each!(tx, postgres_cell),
        }
        Ok(count)
    }

    /// Ends the read transaction.
    pub async fn close(self) {
        let _ = match self.tx {
            Tx::Sqlite(tx) => tx.rollback().await,
            Tx::Postgres(tx) => tx.rollback().await,
        };
    }
}

fn column_name(table: &TableInfo, index: usize) -> String {
    let column = table.columns.get(index).map_or("?", String::as_str);
    format!("{}.{column}", table.name)
}

/// A cell by the type SQLite stored it as (its columns are typed per value).
pub(super) fn sqlite_cell(
    row: &sqlx::sqlite::SqliteRow,
    index: usize,
    table: &TableInfo,
) -> Result<Cell, SnapshotError> {
    let raw = row.try_get_raw(index)?;
    if raw.is_null() {
        return Ok(Cell::Null);
    }
    let stored = raw.type_info().name().to_owned();
    Ok(match stored.as_str() {
        "INTEGER" => Cell::Int(row.try_get_unchecked(index)?),
        "REAL" => Cell::Real(row.try_get_unchecked(index)?),
        "TEXT" => Cell::Text(row.try_get_unchecked(index)?),
        "BLOB" => Cell::Blob(row.try_get_unchecked(index)?),
        _ => return Err(SnapshotError::Type(column_name(table, index), stored)),
    })
}

/// A cell by its column's PostgreSQL type.
pub(super) fn postgres_cell(
    row: &sqlx::postgres::PgRow,
    index: usize,
    table: &TableInfo,
) -> Result<Cell, SnapshotError> {
    let kind = row
        .columns()
        .get(index)
        .map(|c| c.type_info().name().to_owned())
        .unwrap_or_default();
    let cell = match kind.as_str() {
        "INT8" => row.try_get::<Option<i64>, _>(index)?.map(Cell::Int),
        "INT4" => row
            .try_get::<Option<i32>, _>(index)?
            .map(|v| Cell::Int(v.into())),
        "INT2" => row
            .try_get::<Option<i16>, _>(index)?
            .map(|v| Cell::Int(v.into())),
        // sqlx names `character(n)` (bpchar) "CHAR".
        "TEXT" | "VARCHAR" | "CHAR" => row.try_get::<Option<String>, _>(index)?.map(Cell::Text),
        "BYTEA" => row.try_get::<Option<Vec<u8>>, _>(index)?.map(Cell::Blob),
        "FLOAT8" => row.try_get::<Option<f64>, _>(index)?.map(Cell::Real),
        _ => return Err(SnapshotError::Type(column_name(table, index), kind)),
    };
    Ok(cell.unwrap_or(Cell::Null))
}
