//! Engine-neutral copies of every table, for `aerie backup`: a consistent read of the whole
//! database ([`Snapshot`]) and the transaction that writes such a copy into an empty one
//! ([`Restore`]). Cells travel as plain values ([`Cell`]), so a copy taken from SQLite can be
//! written into PostgreSQL and back.
//!
//! Table and column names come from the database's own catalogue, never from input, and are
//! refused unless they are plain lowercase identifiers before they are quoted into SQL.

mod catalogue;
mod empty;
mod read;
mod write;

pub use catalogue::dependency_order;
pub use empty::Emptiness;
pub use read::{Snapshot, SnapshotError};
pub use write::Restore;

use serde_json::Value;

use catalogue::StrangeName;

/// Tables the migrations fill, which a restore writes itself: cleared first, then the
/// copy's rows go in (the audit chain's head).
const SEEDED: &[&str] = &["audit_chain_head"];

/// Tables that triggers keep from other tables' rows (tag counts, the article total, each
/// user's articles and favorites): a restore does not write them but checks that the
/// triggers rebuilt exactly the copy's rows.
const DERIVED: &[&str] = &["tag_counts", "article_totals", "user_totals"];

/// Tables only one engine has (SQLite's revocation feed; PostgreSQL uses LISTEN/NOTIFY): left
/// out when the target database does not have them.
const ENGINE_LOCAL: &[&str] = &["session_revocations"];

/// Why a restore stopped (its transaction is then rolled back).
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("writing the database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Name(#[from] StrangeName),
    #[error(
        "the database is not empty (table {0} has rows); restore only into a new, empty database"
    )]
    NotEmpty(String),
    #[error("the database has no table {0}, which the backup holds")]
    MissingTable(String),
    #[error("the database has no column {0}, which the backup holds")]
    MissingColumn(String),
    #[error("column {0}: the backup holds a {1} value where the database stores {2}")]
    Mismatch(String, &'static str, String),
    #[error("a row came before its table's header")]
    NoTable,
    #[error("the backup's row has {0} values for {1} columns")]
    Width(usize, usize),
    #[error("table {0}: the rows the triggers rebuilt differ from the backup's")]
    Derived(String),
}

/// One table: its name and its columns in order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableInfo {
    pub name: String,
    pub columns: Vec<String>,
}

/// One value of one row, whichever engine it came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Cell {
    /// As JSON: `null`, a number, a string, or `{"base64": "…"}` for bytes.
    pub fn to_json(&self) -> Value {
        use base64::Engine as _;
        match self {
            Cell::Null => Value::Null,
            Cell::Int(value) => Value::from(*value),
            Cell::Real(value) => Value::from(*value),
            Cell::Text(value) => Value::from(value.as_str()),
            Cell::Blob(bytes) => serde_json::json!({
                "base64": base64::engine::general_purpose::STANDARD.encode(bytes)
            }),
        }
    }

    /// The inverse of [`Cell::to_json`]; `None` for anything else.
    pub fn from_json(value: &Value) -> Option<Self> {
        use base64::Engine as _;
        Some(match value {
            Value::Null => Cell::Null,
            Value::Number(number) => match number.as_i64() {
                Some(int) => Cell::Int(int),
                None => Cell::Real(number.as_f64()?),
            },
            Value::String(text) => Cell::Text(text.clone()),
            Value::Object(object) if object.len() == 1 => Cell::Blob(
                base64::engine::general_purpose::STANDARD
                    .decode(object.get("base64")?.as_str()?)
                    .ok()?,
            ),
            _ => return None,
        })
    }
}

/// A catalogue name safe to quote into SQL: lowercase letters, digits and underscores.
pub(super) fn plain_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `"a", "b", "c"`, for a column list.
fn quoted_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_survive_json() {
        for cell in [
            Cell::Null,
            Cell::Int(i64::MIN),
            Cell::Int(7),
            Cell::Real(1.5),
            Cell::Text("{\"base64\":\"x\"}".into()),
            Cell::Blob(vec![0, 255, 7]),
        ] {
            assert_eq!(Cell::from_json(&cell.to_json()), Some(cell));
        }
        assert_eq!(Cell::from_json(&serde_json::json!([1])), None);
        assert_eq!(Cell::from_json(&serde_json::json!({"base64": "%%"})), None);
        // Bytes are an object of exactly one key: anything more is not a cell.
        let extra = serde_json::json!({"base64": "AA==", "note": "x"});
        assert_eq!(Cell::from_json(&extra), None);
    }

    #[test]
    fn only_plain_names_are_quoted_into_sql() {
        assert!(plain_identifier("audit_log"));
        for bad in ["", "Users", "a\"b", "a b", "x;drop"] {
            assert!(!plain_identifier(bad), "{bad}");
        }
    }
}
