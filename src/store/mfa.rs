//! TOTP enrolments, recovery codes and login challenges (see `migrations/*/0008_mfa.sql`).
//!
//! Every rule that must hold under concurrency is one conditional statement here: a code's
//! step is accepted only if it is later than the last accepted one (`accept_totp_step`), a
//! recovery code is spent only if unspent (`spend_recovery_code`), and a challenge is taken
//! by deleting it (`take_challenge`), so two racing requests cannot both succeed.

use sqlx::FromRow;

use super::{Store, execute, matchable, on_pool};
use crate::clock::UnixMillis;

/// An account's TOTP enrolment, pending or confirmed.
#[derive(Clone)]
pub struct TotpRow {
    pub user_id: i64,
    /// The secret, opened from `secret_sealed` (see `crate::field_keys`).
    pub secret: Vec<u8>,
    pub confirmed_at: Option<i64>,
    pub last_used_step: Option<i64>,
}

impl std::fmt::Debug for TotpRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpRow")
            .field("user_id", &self.user_id)
            .field("confirmed_at", &self.confirmed_at)
            .finish_non_exhaustive()
    }
}

#[derive(FromRow)]
struct SealedTotpRow {
    user_id: i64,
    secret_sealed: String,
    confirmed_at: Option<i64>,
    last_used_step: Option<i64>,
}

/// A login challenge, as taken (deleted) from the table.
#[derive(Debug, Clone, FromRow)]
pub struct ChallengeRow {
    pub user_id: i64,
    pub client_hash: String,
    pub expires_at: i64,
    pub failures: i64,
}

/// A challenge to store: only digests of the value and of the client.
pub struct NewChallenge<'a> {
    pub challenge_hash: &'a str,
    pub user_id: i64,
    pub client_hash: &'a str,
    pub expires_at: UnixMillis,
    pub failures: i64,
}

impl Store {
    pub async fn totp(&self, user_id: i64) -> Result<Option<TotpRow>, sqlx::Error> {
        let sql = "SELECT user_id, secret_sealed, confirmed_at, last_used_step
                   FROM mfa_totp WHERE user_id = $1";
        let row: Option<SealedTotpRow> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(user_id)
            .fetch_optional(pool)
            .await)?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(TotpRow {
            secret: self.open_secret(row.user_id, &row.secret_sealed)?,
            user_id: row.user_id,
            confirmed_at: row.confirmed_at,
            last_used_step: row.last_used_step,
        }))
    }

    /// Whether the account has confirmed TOTP (MFA on).
    pub async fn mfa_enabled(&self, user_id: i64) -> Result<bool, sqlx::Error> {
        let sql = "SELECT COUNT(*) FROM mfa_totp WHERE user_id = $1 AND confirmed_at IS NOT NULL";
        let count: i64 = on_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(user_id)
            .fetch_one(pool)
            .await)?;
        Ok(count > 0)
    }

    /// Starts (or restarts) a pending enrolment with a new secret, stored sealed; false when
    /// MFA is already confirmed for the account, which this never replaces.
    pub async fn begin_totp(
        &self,
        user_id: i64,
        secret: &[u8],
        now: UnixMillis,
    ) -> Result<bool, sqlx::Error> {
        let secret_sealed = self.seal_secret(user_id, secret)?;
        let sql = "INSERT INTO mfa_totp (user_id, secret_sealed, created_at) VALUES ($1, $2, $3)
                   ON CONFLICT (user_id) DO UPDATE
                   SET secret_sealed = excluded.secret_sealed, created_at = excluded.created_at,
                       last_used_step = NULL
                   WHERE mfa_totp.confirmed_at IS NULL";
        let affected = on_pool!(self, |pool| sqlx::query(sql)
            .bind(user_id)
            .bind(&secret_sealed)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(affected == 1)
    }

    /// Turns a pending enrolment on, with its first accepted step and the digests of its
    /// recovery codes (replacing any older ones), in one transaction: either MFA is on with
    /// its codes, or nothing changed. False when no enrolment was pending.
    pub async fn confirm_totp(
        &self,
        user_id: i64,
        step: i64,
        recovery_hashes: &[String],
        now: UnixMillis,
    ) -> Result<bool, sqlx::Error> {
        let confirm = "UPDATE mfa_totp SET confirmed_at = $2, last_used_step = $3
                       WHERE user_id = $1 AND confirmed_at IS NULL";
        let clear = "DELETE FROM mfa_recovery_codes WHERE user_id = $1";
        let insert = "INSERT INTO mfa_recovery_codes (user_id, code_hash) VALUES ($1, $2)";
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let confirmed = sqlx::query(confirm)
                .bind(user_id)
                .bind(now)
                .bind(step)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if confirmed != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
            sqlx::query(clear).bind(user_id).execute(&mut *tx).await?;
            for hash in recovery_hashes {
                sqlx::query(insert)
                    .bind(user_id)
                    .bind(hash)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Accepts a code's step for a confirmed enrolment only if it is later than every step
    /// accepted before: the replay guard. False when it is not (or MFA is off).
    pub async fn accept_totp_step(&self, user_id: i64, step: i64) -> Result<bool, sqlx::Error> {
        let sql = "UPDATE mfa_totp SET last_used_step = $2
                   WHERE user_id = $1 AND confirmed_at IS NOT NULL
                     AND (last_used_step IS NULL OR last_used_step < $2)";
        let affected = on_pool!(self, |pool| sqlx::query(sql)
            .bind(user_id)
            .bind(step)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(affected == 1)
    }

    /// Spends one unspent recovery code, stored by its keyed digest or (codes issued before
    /// the keyring) its plain SHA-256 digest; false when it is unknown or already spent.
    pub async fn spend_recovery_code(
        &self,
        user_id: i64,
        code_hashes: [&str; 2],
        now: UnixMillis,
    ) -> Result<bool, sqlx::Error> {
        let sql = "UPDATE mfa_recovery_codes SET used_at = $4
                   WHERE user_id = $1 AND code_hash IN ($2, $3) AND used_at IS NULL";
        let affected = on_pool!(self, |pool| sqlx::query(sql)
            .bind(user_id)
            .bind(code_hashes[0])
            .bind(code_hashes[1])
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(affected == 1)
    }

    /// How many of the account's recovery codes are still unspent.
    pub async fn recovery_codes_left(&self, user_id: i64) -> Result<i64, sqlx::Error> {
        let sql = "SELECT COUNT(*) FROM mfa_recovery_codes WHERE user_id = $1 AND used_at IS NULL";
        on_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(user_id)
            .fetch_one(pool)
            .await)
    }

    /// Turns MFA off: the enrolment, its recovery codes and pending challenges go, in one
    /// transaction. False when there was nothing to remove.
    pub async fn delete_mfa(&self, user_id: i64) -> Result<bool, sqlx::Error> {
        let statements = [
            "DELETE FROM mfa_challenges WHERE user_id = $1",
            "DELETE FROM mfa_recovery_codes WHERE user_id = $1",
            "DELETE FROM mfa_totp WHERE user_id = $1",
        ];
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let mut removed = 0;
            for sql in statements {
                removed = sqlx::query(sql)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
            Ok(removed == 1)
        })
    }

    /// Stores a challenge, and deletes every expired one (an index range on the expiry), so
    /// the table holds only challenges that can still be answered.
    pub async fn insert_challenge(
        &self,
        challenge: NewChallenge<'_>,
        now: UnixMillis,
    ) -> Result<(), sqlx::Error> {
        execute!(
            self,
            "DELETE FROM mfa_challenges WHERE expires_at <= $1",
            now
        )?;
        let sql = "INSERT INTO mfa_challenges (challenge_hash, user_id, client_hash, expires_at, failures)
                   VALUES ($1, $2, $3, $4, $5)";
        execute!(
            self,
            sql,
            challenge.challenge_hash,
            challenge.user_id,
            challenge.client_hash,
            challenge.expires_at,
            challenge.failures
        )
    }

    /// Takes a challenge by deleting it: whoever gets the row is the only one who will.
    pub async fn take_challenge(
        &self,
        challenge_hash: &str,
    ) -> Result<Option<ChallengeRow>, sqlx::Error> {
        if !matchable(challenge_hash) {
            return Ok(None);
        }
        let sql = "DELETE FROM mfa_challenges WHERE challenge_hash = $1
                   RETURNING user_id, client_hash, expires_at, failures";
        on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(challenge_hash)
            .fetch_optional(pool)
            .await)
    }
}
