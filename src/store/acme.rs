//! The ACME state several instances share on PostgreSQL (`migrations/*/0017_acme_state.sql`):
//! the account and the certificate with its key, each sealed with the data keyring, and the
//! advisory lock that lets one instance at a time order.
//!
//! Guards against: private keys in the database in clear (sealed under `Field::AcmeState`,
//! bound to their row); two instances ordering at once, doubling the load on the CA's rate
//! limits (a transaction-scoped advisory lock: it ends with the transaction, so an instance
//! that dies mid-order cannot leave it held).

use sqlx::{Postgres, Transaction};

use super::{Pool, Store, on_pool};
use crate::clock::UnixMillis;
use crate::field_keys::Field;

/// Which shared value: fixed row ids (part of each seal's associated data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeItem {
    Account = 1,
    Certificate = 2,
    /// The challenge answers of the order in progress (no secret, sealed all the same).
    Challenges = 3,
}

/// The advisory lock key for ordering ("acme" in ASCII).
const ORDER_LOCK: i64 = 0x6163_6d65;

/// Held while one instance orders; released by [`AcmeLock::release`] or when dropped
/// (the transaction ends either way). `None` inside on SQLite: one instance, nothing to share.
pub struct AcmeLock(Option<Transaction<'static, Postgres>>);

impl AcmeLock {
    pub async fn release(self) {
        if let Some(transaction) = self.0 {
            let _ = transaction.commit().await;
        }
    }
}

fn sealing_error(error: crate::field_keys::FieldKeyError) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(error))
}

impl Store {
    /// Whether instances share ACME state through this database (PostgreSQL).
    pub fn shares_acme_state(&self) -> bool {
        matches!(self.pool, Pool::Postgres(_))
    }

    /// The shared value, opened; `None` when no instance stored one yet.
    pub async fn acme_state(&self, item: AcmeItem) -> Result<Option<Vec<u8>>, sqlx::Error> {
        let id = item as i64;
        let sealed: Option<String> = on_pool!(self, |pool| sqlx::query_scalar(
            "SELECT sealed FROM acme_state WHERE id = $1"
        )
        .bind(id)
        .fetch_optional(pool)
        .await)?;
        sealed
            .map(|sealed| {
                self.keys
                    .open(Field::AcmeState, id, &sealed)
                    .map_err(sealing_error)
            })
            .transpose()
    }

    /// Stores the value sealed, replacing the previous one.
    pub async fn set_acme_state(
        &self,
        item: AcmeItem,
        plain: &[u8],
        now: UnixMillis,
    ) -> Result<(), sqlx::Error> {
        let id = item as i64;
        let sealed = self
            .keys
            .seal(Field::AcmeState, id, plain)
            .map_err(sealing_error)?;
        let sql = "INSERT INTO acme_state (id, sealed, updated_at) VALUES ($1, $2, $3)
                   ON CONFLICT (id) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at";
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(id)
            .bind(&sealed)
            .bind(now)
            .execute(pool)
            .await
            .map(drop))
    }

    /// The ordering lock, if no other instance holds it.
    pub async fn try_acme_lock(&self) -> Result<Option<AcmeLock>, sqlx::Error> {
        let Pool::Postgres(pool) = &self.pool else {
            return Ok(Some(AcmeLock(None)));
        };
        let mut transaction = pool.begin().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(ORDER_LOCK)
            .fetch_one(&mut *transaction)
            .await?;
        Ok(locked.then_some(AcmeLock(Some(transaction))))
    }
}
