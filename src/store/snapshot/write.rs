//! Writing a copy into an empty database: one transaction that inserts every row, checks
//! what triggers rebuilt, and commits only when the caller says the copy was whole (a copy
//! that turns out damaged half-way is rolled back, leaving the database as it was).

use std::collections::BTreeMap;

use super::catalogue::{self, Kind, Table};
use super::empty::{Emptiness, emptiness_of};
use super::read::{postgres_cell, sqlite_cell};
use super::{Cell, DERIVED, ENGINE_LOCAL, RestoreError, SEEDED, TableInfo, quoted_list};
use crate::store::{Pool, Store, budget};

enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Runs `$body` with `$tx` bound to the transaction's connection, whichever engine.
macro_rules! on_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            Tx::Sqlite(tx) => {
                let $conn = &mut **tx;
                $body
            }
            Tx::Postgres(tx) => {
                let $conn = &mut **tx;
                $body
            }
        }
    };
}

/// Binds `cell` as the column's kind demands (a NULL too is typed: PostgreSQL refuses a
/// bigint NULL for a text column).
macro_rules! bind {
    ($query:expr, $cell:expr, $column:expr, $kind:expr) => {
        match ($kind, $cell) {
            (Kind::Int, Cell::Null) => $query.bind(None::<i64>),
            (Kind::Real, Cell::Null) => $query.bind(None::<f64>),
            (Kind::Text, Cell::Null) => $query.bind(None::<String>),
            (Kind::Blob, Cell::Null) => $query.bind(None::<Vec<u8>>),
            (Kind::Int, Cell::Int(value)) => $query.bind(*value),
            (Kind::Real, Cell::Int(value)) => $query.bind(*value as f64),
            (Kind::Real, Cell::Real(value)) => $query.bind(*value),
            (Kind::Text, Cell::Text(value)) => $query.bind(value.as_str()),
            (Kind::Blob, Cell::Blob(value)) => $query.bind(value.as_slice()),
            (kind, cell) => {
                return Err(RestoreError::Mismatch(
                    $column.clone(),
                    cell_kind(cell),
                    format!("{kind:?}"),
                ));
            }
        }
    };
}

/// What happens to the rows of the table being written.
enum Current {
    Insert {
        sql: String,
        kinds: Vec<(String, Kind)>,
    },
    /// Rebuilt by triggers: kept to compare at the end.
    Derived(String, usize),
    /// A table only the backup's engine has.
    Skip(usize),
}

/// A restore under way; nothing is visible to others until [`Restore::commit`].
pub struct Restore {
    tx: Tx,
    tables: Vec<Table>,
    current: Option<Current>,
    derived: BTreeMap<String, (TableInfo, Vec<String>)>,
}

impl Store {
    /// Begins the restore's transaction (on SQLite holding the write lock from the start),
    /// outside the statement budget, and checks again that the database is empty.
    pub async fn begin_restore(&self) -> Result<Restore, RestoreError> {
        let (mut tx, tables) = match &self.pool {
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                budget::lift_sqlite(&mut tx).await?;
                let tables = catalogue::sqlite_tables(&mut tx).await??;
                (Tx::Sqlite(tx), tables)
            }
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("SET LOCAL statement_timeout = 0")
                    .execute(&mut *tx)
                    .await?;
                let tables = catalogue::postgres_tables(&mut tx).await??;
                (Tx::Postgres(tx), tables)
            }
        };
        let emptiness = on_tx!(&mut tx, |conn| emptiness_of!(conn, tables.clone()))?;
        match emptiness {
            Emptiness::Empty => Ok(Restore {
                tx,
                tables,
                current: None,
                derived: BTreeMap::new(),
            }),
            Emptiness::Holds(table) => Err(RestoreError::NotEmpty(table)),
            Emptiness::Unmigrated => Err(RestoreError::MissingTable("audit_log".into())),
        }
    }
}

impl Restore {
    /// The rows that follow belong to `info`.
    pub async fn start_table(&mut self, info: &TableInfo) -> Result<(), RestoreError> {
        let width = info.columns.len();
        let Some(target) = self.tables.iter().find(|t| t.name == info.name) else {
            if ENGINE_LOCAL.contains(&info.name.as_str()) {
                self.current = Some(Current::Skip(width));
                return Ok(());
            }
            return Err(RestoreError::MissingTable(info.name.clone()));
        };
        let mut kinds = Vec::with_capacity(width);
        for column in &info.columns {
            let found = target.columns.iter().find(|c| c.name == *column);
            let Some(found) = found else {
                return Err(RestoreError::MissingColumn(format!(
                    "{}.{column}",
                    info.name
                )));
            };
            kinds.push((format!("{}.{column}", info.name), found.kind.clone()));
        }
        if DERIVED.contains(&info.name.as_str()) {
            self.derived
                .insert(info.name.clone(), (info.clone(), Vec::new()));
            self.current = Some(Current::Derived(info.name.clone(), width));
            return Ok(());
        }
        if SEEDED.contains(&info.name.as_str()) {
            let sql = format!("DELETE FROM \"{}\"", info.name);
            on_tx!(&mut self.tx, |conn| sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(conn)
                .await
                .map(drop))?;
        }
        let placeholders: Vec<String> = (1..=width).map(|n| format!("${n}")).collect();
        let overriding = match self.tx {
            // Ids are copied, not drawn: `GENERATED ALWAYS` columns must be told so.
            Tx::Postgres(_) => " OVERRIDING SYSTEM VALUE",
            Tx::Sqlite(_) => "",
        };
        let sql = format!(
            "INSERT INTO \"{}\" ({}){overriding} VALUES ({})",
            info.name,
            quoted_list(&info.columns),
            placeholders.join(", ")
        );
        self.current = Some(Current::Insert { sql, kinds });
        Ok(())
    }

    /// Writes one row of the current table.
    pub async fn insert(&mut self, cells: &[Cell]) -> Result<(), RestoreError> {
        let Restore {
            tx,
            current,
            derived,
            ..
        } = self;
        match current.as_ref().ok_or(RestoreError::NoTable)? {
            Current::Skip(width) => check_width(cells, *width),
            Current::Derived(name, width) => {
                check_width(cells, *width)?;
                if let Some((_, rows)) = derived.get_mut(name) {
                    rows.push(row_key(cells));
                }
                Ok(())
            }
            Current::Insert { sql, kinds } => {
                check_width(cells, kinds.len())?;
                let sql = sqlx::AssertSqlSafe(sql.as_str());
                on_tx!(tx, |conn| {
                    let mut query = sqlx::query(sql);
                    for (cell, (column, kind)) in cells.iter().zip(kinds) {
                        query = bind!(query, cell, column, kind);
                    }
                    query.execute(conn).await?;
                });
                Ok(())
            }
        }
    }

    /// Checks the tables triggers rebuilt against the backup's rows, moves PostgreSQL's
    /// identity sequences past the copied ids, and commits.
    pub async fn commit(mut self) -> Result<(), RestoreError> {
        for (name, (info, mut expected)) in std::mem::take(&mut self.derived) {
            let sql = format!("SELECT {} FROM \"{name}\"", quoted_list(&info.columns));
            let sql = sqlx::AssertSqlSafe(sql.as_str());
            let mut found: Vec<String> = Vec::new();
            match &mut self.tx {
                Tx::Sqlite(tx) => {
                    for row in sqlx::query(sql).fetch_all(&mut **tx).await? {
                        found.push(row_key(&cells_of(&row, &info, sqlite_cell)?));
                    }
                }
                Tx::Postgres(tx) => {
                    for row in sqlx::query(sql).fetch_all(&mut **tx).await? {
                        found.push(row_key(&cells_of(&row, &info, postgres_cell)?));
                    }
                }
            }
            expected.sort();
            found.sort();
            if expected != found {
                return Err(RestoreError::Derived(name));
            }
        }
        if let Tx::Postgres(tx) = &mut self.tx {
            for table in &self.tables {
                for column in table.columns.iter().filter(|c| c.identity) {
                    let sql = format!(
                        "SELECT setval(pg_get_serial_sequence('\"{t}\"', '{c}'), \
                         COALESCE(MAX(\"{c}\"), 0) + 1, false) FROM \"{t}\"",
                        t = table.name,
                        c = column.name
                    );
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .execute(&mut **tx)
                        .await?;
                }
            }
        }
        match self.tx {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }

    /// Rolls everything back.
    pub async fn abandon(self) {
        let _ = match self.tx {
            Tx::Sqlite(tx) => tx.rollback().await,
            Tx::Postgres(tx) => tx.rollback().await,
        };
    }
}

fn check_width(cells: &[Cell], width: usize) -> Result<(), RestoreError> {
    if cells.len() == width {
        Ok(())
    } else {
        Err(RestoreError::Width(cells.len(), width))
    }
}

/// A row as comparable text.
fn row_key(cells: &[Cell]) -> String {
    serde_json::Value::Array(cells.iter().map(Cell::to_json).collect()).to_string()
}

fn cells_of<R: sqlx::Row>(
    row: &R,
    info: &TableInfo,
    decode: impl Fn(&R, usize, &TableInfo) -> Result<Cell, super::read::SnapshotError>,
) -> Result<Vec<Cell>, RestoreError> {
    (0..row.len())
        .map(|index| {
            decode(row, index, info).map_err(|error| match error {
                super::read::SnapshotError::Database(error) => RestoreError::Database(error),
                other => RestoreError::Derived(format!("{}: {other}", info.name)),
            })
        })
        .collect()
}

fn cell_kind(cell: &Cell) -> &'static str {
    match cell {
        Cell::Null => "null",
        Cell::Int(_) => "integer",
        Cell::Real(_) => "real",
        Cell::Text(_) => "text",
        Cell::Blob(_) => "bytes",
    }
}
