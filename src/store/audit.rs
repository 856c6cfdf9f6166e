//! The audit trail's table and its chain head. The store knows nothing of MACs: the caller
//! seals each row from the head it is handed, inside the transaction that holds the head.

use sqlx::FromRow;

use super::{Store, on_pool};
use crate::clock::UnixMillis;

/// One audit row exactly as stored; the MAC covers every other field.
#[derive(Debug, Clone, PartialEq, FromRow, serde::Serialize)]
pub struct AuditRow {
    pub seq: i64,
    pub at: UnixMillis,
    pub event_type: String,
    pub severity: String,
    pub actor_id: Option<i64>,
    pub subject_id: Option<i64>,
    pub session_id: Option<String>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub detail: String,
    pub prev_mac: String,
    pub mac: String,
}

/// The last sealed row: sequence number and MAC (`0` and `""` before the first).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ChainHead {
    pub seq: i64,
    pub mac: String,
}

const AUDIT_COLUMNS: &str = "seq, at, event_type, severity, actor_id, subject_id, session_id, \
     client_ip, user_agent, request_id, detail, prev_mac, mac";

impl Store {
    /// Appends one row sealed by `seal` from the current head, in one transaction. The first
    /// statement writes the head row, which takes its lock on both engines (a row lock on
    /// PostgreSQL, the write lock on SQLite) before the head is read, so concurrent appenders,
    /// even in other processes, queue instead of forking the chain.
    pub async fn append_audit(
        &self,
        seal: impl FnOnce(&ChainHead) -> AuditRow,
    ) -> Result<AuditRow, sqlx::Error> {
        let lock = "UPDATE audit_chain_head SET seq = seq WHERE id = 1";
        let read = "SELECT seq, mac FROM audit_chain_head WHERE id = 1";
        let insert = "INSERT INTO audit_log (seq, at, event_type, severity, actor_id, subject_id, \
             session_id, client_ip, user_agent, request_id, detail, prev_mac, mac) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
        let advance = "UPDATE audit_chain_head SET seq = $1, mac = $2 WHERE id = 1";
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(lock).execute(&mut *tx).await?;
            let head: ChainHead = sqlx::query_as(read).fetch_one(&mut *tx).await?;
            let row = seal(&head);
            sqlx::query(insert)
                .bind(row.seq).bind(row.at).bind(&row.event_type).bind(&row.severity)
                .bind(row.actor_id).bind(row.subject_id).bind(&row.session_id)
                .bind(&row.client_ip).bind(&row.user_agent).bind(&row.request_id)
                .bind(&row.detail).bind(&row.prev_mac).bind(&row.mac)
                .execute(&mut *tx).await?;
            sqlx::query(advance).bind(row.seq).bind(&row.mac).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(row)
        })
    }

    pub async fn audit_chain_head(&self) -> Result<ChainHead, sqlx::Error> {
        let sql = "SELECT seq, mac FROM audit_chain_head WHERE id = 1";
        on_pool!(self, pool => sqlx::query_as(sql).fetch_one(pool).await)
    }

    /// Up to `limit` rows after sequence number `after`, in order (for paging through the
    /// whole chain with bounded memory).
    pub async fn audit_rows_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AuditRow>, sqlx::Error> {
        let sql =
            format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2");
        on_pool!(self, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(after).bind(limit).fetch_all(pool).await)
    }

    /// Up to `limit` rows at or after time `since` and after sequence number `after`.
    pub async fn audit_rows_since(
        &self,
        since: UnixMillis,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AuditRow>, sqlx::Error> {
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE at >= $1 AND seq > $2 ORDER BY seq LIMIT $3"
        );
        on_pool!(self, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(since).bind(after).bind(limit).fetch_all(pool).await)
    }
}
