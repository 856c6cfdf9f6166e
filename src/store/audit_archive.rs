//! Archive checkpoints of the audit trail: rows exported to a file are deleted behind a
//! checkpoint naming the last of them, in one transaction. The store knows nothing of MACs:
//! the caller seals the checkpoint; the migration's trigger lets only rows behind a
//! checkpoint be deleted.

use sqlx::FromRow;

use super::{Store, on_pool};
use crate::clock::UnixMillis;

/// A checkpoint: rows `from_seq + 1 ..= through_seq` (`pruned` of them) were archived and
/// deleted; `from_mac` and `through_mac` are the MACs of the rows at each end, `mac` seals
/// the whole with the audit key.
#[derive(Debug, Clone, PartialEq, Eq, FromRow, serde::Serialize, serde::Deserialize)]
pub struct ArchiveCheckpoint {
    pub through_seq: i64,
    pub through_mac: String,
    pub from_seq: i64,
    pub from_mac: String,
    pub pruned: i64,
    pub at: UnixMillis,
    pub mac: String,
}

/// The rows deleted did not match the checkpoint (the transaction was rolled back).
#[derive(Debug, thiserror::Error)]
#[error("pruning deleted {deleted} audit rows where the checkpoint names {expected}")]
pub struct PruneMismatch {
    pub deleted: u64,
    pub expected: i64,
}

impl Store {
    /// The newest archive checkpoint, if any rows were ever archived.
    pub async fn latest_archive_checkpoint(
        &self,
    ) -> Result<Option<ArchiveCheckpoint>, sqlx::Error> {
        let sql = "SELECT through_seq, through_mac, from_seq, from_mac, pruned, at, mac
                   FROM audit_archive_checkpoints ORDER BY through_seq DESC LIMIT 1";
        on_pool!(self, |pool| sqlx::query_as(sql).fetch_optional(pool).await)
    }

    /// Stores `checkpoint` and deletes the rows it covers, in one transaction; rolls back
    /// unless exactly `checkpoint.pruned` rows went.
    pub async fn prune_audit_behind(
        &self,
        checkpoint: &ArchiveCheckpoint,
    ) -> Result<Result<u64, PruneMismatch>, sqlx::Error> {
        let insert = "INSERT INTO audit_archive_checkpoints
                        (through_seq, through_mac, from_seq, from_mac, pruned, at, mac)
                      VALUES ($1, $2, $3, $4, $5, $6, $7)";
        let delete = "DELETE FROM audit_log WHERE seq > $1 AND seq <= $2";
        let c = checkpoint;
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(insert)
                .bind(c.through_seq)
                .bind(&c.through_mac)
                .bind(c.from_seq)
                .bind(&c.from_mac)
                .bind(c.pruned)
                .bind(c.at)
                .bind(&c.mac)
                .execute(&mut *tx)
                .await?;
            let deleted = sqlx::query(delete)
                .bind(c.from_seq)
                .bind(c.through_seq)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if i64::try_from(deleted).ok() != Some(c.pruned) {
                tx.rollback().await?;
                return Ok(Err(PruneMismatch {
                    deleted,
                    expected: c.pruned,
                }));
            }
            tx.commit().await?;
            Ok(Ok(deleted))
        })
    }
}
