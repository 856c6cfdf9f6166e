//! What tables a database has, read from its own catalogue: their columns, the kind of value
//! each column takes, and which tables their foreign keys point at.

use std::collections::BTreeMap;

use sqlx::{PgConnection, SqliteConnection};

use super::plain_identifier;

/// The kind of value a column stores, as a restore must bind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    Int,
    Real,
    Text,
    Blob,
    /// A type backups do not carry (the schema has none today).
    Other(String),
}

#[derive(Debug, Clone)]
pub(super) struct Column {
    pub name: String,
    pub kind: Kind,
    /// PostgreSQL `GENERATED … AS IDENTITY`: its sequence is moved past the restored rows.
    pub identity: bool,
}

#[derive(Debug, Clone)]
pub(super) struct Table {
    pub name: String,
    pub columns: Vec<Column>,
    /// Tables this one's foreign keys reference (itself left out).
    pub parents: Vec<String>,
}

/// A table or column name that is not a plain lowercase identifier (never quoted into SQL).
#[derive(Debug, thiserror::Error)]
#[error("the database has a table or column named {0:?}, which backups do not handle")]
pub struct StrangeName(pub String);

fn checked(name: String) -> Result<String, StrangeName> {
    if plain_identifier(&name) {
        Ok(name)
    } else {
        Err(StrangeName(name))
    }
}

/// SQLite's column affinity from its declared type (the rules of sqlite.org/datatype3.html).
fn sqlite_kind(declared: &str) -> Kind {
    let declared = declared.to_ascii_uppercase();
    if declared.contains("INT") {
        Kind::Int
    } else if ["CHAR", "CLOB", "TEXT"]
        .iter()
        .any(|t| declared.contains(t))
    {
        Kind::Text
    } else if declared.is_empty() || declared.contains("BLOB") {
        Kind::Blob
    } else if ["REAL", "FLOA", "DOUB"]
        .iter()
        .any(|t| declared.contains(t))
    {
        Kind::Real
    } else {
        Kind::Other(declared)
    }
}

fn postgres_kind(data_type: &str) -> Kind {
    match data_type {
        "bigint" | "integer" | "smallint" => Kind::Int,
        "text" | "character varying" | "character" => Kind::Text,
        "bytea" => Kind::Blob,
        "double precision" | "real" => Kind::Real,
        other => Kind::Other(other.to_owned()),
    }
}

/// Every table but sqlx's bookkeeping and SQLite's own, with columns in order.
pub(super) async fn sqlite_tables(
    connection: &mut SqliteConnection,
) -> Result<Result<Vec<Table>, StrangeName>, sqlx::Error> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&mut *connection)
    .await?;
    let mut tables = Vec::with_capacity(names.len());
    for name in names {
        let columns: Vec<(String, String)> =
            sqlx::query_as("SELECT name, type FROM pragma_table_info($1) ORDER BY cid")
                .bind(&name)
                .fetch_all(&mut *connection)
                .await?;
        let parents: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT \"table\" FROM pragma_foreign_key_list($1)")
                .bind(&name)
                .fetch_all(&mut *connection)
                .await?;
        let columns = columns
            .into_iter()
            .map(|(column, declared)| Column {
                name: column,
                kind: sqlite_kind(&declared),
                identity: false,
            })
            .collect();
        tables.push((name, columns, parents));
    }
    Ok(finish(tables))
}

/// Every base table of the current schema but sqlx's bookkeeping, with columns in order.
pub(super) async fn postgres_tables(
    connection: &mut PgConnection,
) -> Result<Result<Vec<Table>, StrangeName>, sqlx::Error> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
         AND table_name <> '_sqlx_migrations' ORDER BY table_name",
    )
    .fetch_all(&mut *connection)
    .await?;
    let mut tables = Vec::with_capacity(names.len());
    for name in names {
        let columns: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text, is_identity::text \
             FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(&name)
        .fetch_all(&mut *connection)
        .await?;
        let parents: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT p.relname::text FROM pg_constraint c \
             JOIN pg_class t ON t.oid = c.conrelid JOIN pg_class p ON p.oid = c.confrelid \
             WHERE c.contype = 'f' AND t.relname = $1 \
             AND t.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())",
        )
        .bind(&name)
        .fetch_all(&mut *connection)
        .await?;
        let columns = columns
            .into_iter()
            .map(|(column, data_type, identity)| Column {
                name: column,
                kind: postgres_kind(&data_type),
                identity: identity == "YES",
            })
            .collect();
        tables.push((name, columns, parents));
    }
    Ok(finish(tables))
}

/// Checks every name and puts parents before children.
fn finish(tables: Vec<(String, Vec<Column>, Vec<String>)>) -> Result<Vec<Table>, StrangeName> {
    let mut by_name = BTreeMap::new();
    for (name, columns, parents) in tables {
        let name = checked(name)?;
        let columns = columns
            .into_iter()
            .map(|c| {
                Ok(Column {
                    name: checked(c.name)?,
                    ..c
                })
            })
            .collect::<Result<Vec<_>, StrangeName>>()?;
        let parents = parents.into_iter().filter(|p| *p != name).collect();
        by_name.insert(
            name.clone(),
            Table {
                name,
                columns,
                parents,
            },
        );
    }
    let order = dependency_order(
        by_name
            .values()
            .map(|t| (t.name.clone(), t.parents.clone()))
            .collect(),
    );
    Ok(order
        .into_iter()
        .filter_map(|name| by_name.remove(&name))
        .collect())
}

/// Names ordered so that every table comes after the tables it references (by name among
/// equals, so the order is stable); references to tables not listed are ignored, and a
/// circle (none in the schema) is broken by name order rather than looping.
pub fn dependency_order(mut tables: Vec<(String, Vec<String>)>) -> Vec<String> {
    tables.sort();
    let listed: Vec<String> = tables.iter().map(|(name, _)| name.clone()).collect();
    let mut placed: Vec<String> = Vec::with_capacity(tables.len());
    while placed.len() < listed.len() {
        let ready = tables.iter().position(|(name, parents)| {
            !placed.contains(name)
                && parents
                    .iter()
                    .all(|p| placed.contains(p) || !listed.contains(p) || p == name)
        });
        let next = ready
            .or_else(|| tables.iter().position(|(name, _)| !placed.contains(name)))
            .and_then(|index| tables.get(index))
            .map(|(name, _)| name.clone());
        match next {
            Some(name) => placed.push(name),
            None => break,
        }
    }
    placed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, parents: &[&str]) -> (String, Vec<String>) {
        (
            name.to_owned(),
            parents.iter().map(|p| (*p).to_owned()).collect(),
        )
    }

    #[test]
    fn parents_come_first() {
        let order = dependency_order(vec![
            table("comments", &["articles", "users"]),
            table("articles", &["users"]),
            table("users", &[]),
            table("audit_log", &["gone"]),
        ]);
        assert_eq!(order, ["audit_log", "users", "articles", "comments"]);
    }

    #[test]
    fn a_table_may_reference_itself() {
        // A self-reference (a reply pointing at its comment) waits for nothing.
        let order = dependency_order(vec![table("a", &["a"]), table("b", &[])]);
        assert_eq!(order, ["a", "b"]);
    }

    #[test]
    fn a_circle_still_ends() {
        let order = dependency_order(vec![table("a", &["b"]), table("b", &["a"])]);
        assert_eq!(order, ["a", "b"]);
    }

    #[test]
    fn affinities_follow_sqlite() {
        assert_eq!(sqlite_kind("BIGINT"), Kind::Int);
        assert_eq!(sqlite_kind("text"), Kind::Text);
        assert_eq!(sqlite_kind(""), Kind::Blob);
        assert_eq!(sqlite_kind("DOUBLE"), Kind::Real);
    }
}
