//! The audit trail's table and its chain head. The store knows nothing of MACs: the caller
//! seals each row from the head it is handed, inside the transaction that holds the head.

use sqlx::FromRow;

use super::{Store, on_pool};
use crate::clock::UnixMillis;

/// One audit row exactly as stored; the MAC covers every other field.
#[derive(Debug, Clone, PartialEq, FromRow, serde::Serialize, serde::Deserialize)]
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
    /// Appends `count` rows in one transaction (group commit). The first statement writes
    /// the head row, which takes its lock on both engines (a row lock on PostgreSQL, the write
    /// lock on SQLite) before the head is read, so concurrent appenders, even in other
    /// processes, queue instead of forking the chain.
    ///
    /// One row per item, in order: `seal` seals each on the head the previous one left, so
    /// the rows chain in the items' order, and the head advances once, at the end. One
    /// commit, so one disk flush, for the whole batch. `seal` also gets the id of the key
    /// the chain is sealed with now (`""`: the first), and may move it (a key rotation): the
    /// head keeps it for the next append, in whichever process.
    pub async fn append_audit_batch<T, E: From<sqlx::Error>>(
        &self,
        items: &[T],
        seal: impl Fn(&ChainHead, &mut String, &T) -> Result<AuditRow, E>,
    ) -> Result<Vec<AuditRow>, E> {
        let lock = "UPDATE audit_chain_head SET seq = seq WHERE id = 1";
        let read = "SELECT seq, mac, key_id FROM audit_chain_head WHERE id = 1";
        let insert = "INSERT INTO audit_log (seq, at, event_type, severity, actor_id, subject_id, \
             session_id, client_ip, user_agent, request_id, detail, prev_mac, mac) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
        let advance = "UPDATE audit_chain_head SET seq = $1, mac = $2, key_id = $3 WHERE id = 1";
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(lock).execute(&mut *tx).await?;
            let (seq, mac, mut key_id): (i64, String, String) =
                sqlx::query_as(read).fetch_one(&mut *tx).await?;
            let mut head = ChainHead { seq, mac };
            let mut rows = Vec::with_capacity(items.len());
            for item in items {
                let row = seal(&head, &mut key_id, item)?;
                sqlx::query(insert)
                    .bind(row.seq)
                    .bind(row.at)
                    .bind(&row.event_type)
                    .bind(&row.severity)
                    .bind(row.actor_id)
                    .bind(row.subject_id)
                    .bind(&row.session_id)
                    .bind(&row.client_ip)
                    .bind(&row.user_agent)
                    .bind(&row.request_id)
                    .bind(&row.detail)
                    .bind(&row.prev_mac)
                    .bind(&row.mac)
                    .execute(&mut *tx)
                    .await?;
                head = ChainHead {
                    seq: row.seq,
                    mac: row.mac.clone(),
                };
                rows.push(row);
            }
            sqlx::query(advance)
                .bind(head.seq)
                .bind(&head.mac)
                .bind(&key_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(rows)
        })
    }

    /// The id of the key the chain's next row is sealed with (`""`: the first key).
    pub async fn audit_chain_key_id(&self) -> Result<String, sqlx::Error> {
        let sql = "SELECT key_id FROM audit_chain_head WHERE id = 1";
        on_pool!(self, |pool| sqlx::query_scalar(sql).fetch_one(pool).await)
    }

    pub async fn audit_chain_head(&self) -> Result<ChainHead, sqlx::Error> {
        let sql = "SELECT seq, mac FROM audit_chain_head WHERE id = 1";
        on_pool!(self, |pool| sqlx::query_as(sql).fetch_one(pool).await)
    }

    /// The newest `limit` rows whose type is `first` or `second`, newest first (the signing
    /// key sets instances published, read at start; no index on the type, so a scan from the
    /// tail, once per start).
    pub async fn newest_audit_rows_of(
        &self,
        first: &str,
        second: &str,
        limit: i64,
    ) -> Result<Vec<AuditRow>, sqlx::Error> {
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE event_type IN ($1, $2) ORDER BY seq DESC LIMIT $3"
        );
        on_pool!(self, |pool| sqlx::query_as(sqlx::AssertSqlSafe(
            sql.as_str()
        ))
        .bind(first)
        .bind(second)
        .bind(limit)
        .fetch_all(pool)
        .await)
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
        on_pool!(self, |pool| sqlx::query_as(sqlx::AssertSqlSafe(
            sql.as_str()
        ))
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await)
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
        on_pool!(self, |pool| sqlx::query_as(sqlx::AssertSqlSafe(
            sql.as_str()
        ))
        .bind(since)
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await)
    }
}

/// What an administrator asks of the audit trail; every field narrows the result.
#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub actor_id: Option<i64>,
    pub subject_id: Option<i64>,
    pub event_type: Option<String>,
    pub severity: Option<String>,
    /// Inclusive lower bound on the event time.
    pub since: Option<UnixMillis>,
    /// Exclusive upper bound on the event time.
    pub until: Option<UnixMillis>,
}

/// An audit row with the usernames of its actor and subject, for the admin API. A deleted
/// account's events keep their ids; their names are then `None`.
#[derive(Debug, Clone, FromRow)]
pub struct AuditListRow {
    #[sqlx(flatten)]
    pub row: AuditRow,
    pub actor_username: Option<String>,
    pub subject_username: Option<String>,
}

impl Store {
    /// One page of the audit rows matching `filter`, newest first, and how many match in all.
    /// The filter is bound, never spliced: each condition is `$n IS NULL OR column = $n`.
    pub async fn audit_page(
        &self,
        filter: &AuditFilter,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<AuditListRow>, i64), sqlx::Error> {
        let conditions = "($1 IS NULL OR l.actor_id = $1) AND ($2 IS NULL OR l.subject_id = $2) \
             AND ($3 IS NULL OR l.event_type = $3) AND ($4 IS NULL OR l.severity = $4) \
             AND ($5 IS NULL OR l.at >= $5) AND ($6 IS NULL OR l.at < $6)";
        let columns = AUDIT_COLUMNS
            .split(", ")
            .map(|column| format!("l.{}", column.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let list = format!(
            "SELECT {columns}, a.username AS actor_username, s.username AS subject_username \
             FROM audit_log l LEFT JOIN users a ON a.id = l.actor_id \
             LEFT JOIN users s ON s.id = l.subject_id \
             WHERE {conditions} ORDER BY l.seq DESC LIMIT $7 OFFSET $8"
        );
        let count = format!("SELECT COUNT(*) FROM audit_log l WHERE {conditions}");
        macro_rules! bind_filter {
            ($query:expr) => {
                $query
                    .bind(filter.actor_id)
                    .bind(filter.subject_id)
                    .bind(&filter.event_type)
                    .bind(&filter.severity)
                    .bind(filter.since)
                    .bind(filter.until)
            };
        }
        on_pool!(self, |pool| {
            let rows = bind_filter!(sqlx::query_as(sqlx::AssertSqlSafe(list.as_str())))
                .bind(limit)
                .bind(offset)
                .fetch_all(pool)
                .await?;
            let total: i64 = bind_filter!(sqlx::query_scalar(sqlx::AssertSqlSafe(count.as_str())))
                .fetch_one(pool)
                .await?;
            Ok((rows, total))
        })
    }
}
