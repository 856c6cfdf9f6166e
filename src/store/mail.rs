//! The mail outbox and the mailed single-use tokens.
//!
//! Guards against two things. Lost or doubled effects: a mail is written in the same
//! transaction as the token (or account) that causes it, so either both are there or
//! neither; a sender claims a row before delivering it and deletes it once delivered, so a
//! crash between the two sends it again (at-least-once) and never drops it. A database copy
//! as a credential store: the recipient and the template values (a link's token among them)
//! are sealed under the data keyring with the row id as associated data, tokens are kept
//! only as their SHA-256, and a delivered mail's row is deleted.

use sqlx::FromRow;

use super::sealed::key_error;
use super::sessions::REVOKE_USER_SESSIONS;
use super::{Store, execute, is_unique_violation, on_pool};
use crate::clock::UnixMillis;
use crate::domain::email_key;
use crate::field_keys::Field;

/// A mail to send, in clear: the store seals it on the way in.
#[derive(Debug, Clone)]
pub struct OutgoingMail {
    /// The template's name (`password_reset`, `verify_email`, …).
    pub kind: &'static str,
    pub to: String,
    /// The template's values as JSON (may hold a token: sealed at rest).
    pub payload: String,
}

/// A mailed token to keep: only its hash, purpose, account and expiry.
#[derive(Debug, Clone)]
pub struct NewMailToken {
    pub hash: String,
    pub purpose: &'static str,
    pub user_id: i64,
    /// For an email change: the new address and its normalised form.
    pub new_email: Option<(String, String)>,
    pub expires_at: UnixMillis,
}

/// How many tokens of one purpose an account may be sent in a window.
#[derive(Debug, Clone, Copy)]
pub struct MailBudget {
    /// Tokens made after this count.
    pub since: UnixMillis,
    /// How many may have been made.
    pub most: i64,
    /// Whether a new token ends the account's unspent ones of its purpose.
    pub replaces_earlier: bool,
}

/// A mail the sender may deliver, opened.
#[derive(Debug, Clone)]
pub struct PendingMail {
    pub id: i64,
    pub kind: String,
    pub to: String,
    pub payload: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub failing_since: Option<i64>,
}

#[derive(FromRow)]
struct PendingRow {
    id: i64,
    kind: String,
    recipient_sealed: String,
    payload_sealed: String,
    attempts: i64,
    next_attempt_at: i64,
    failing_since: Option<i64>,
}

/// What [`Store::change_email_by_token`] did; anything but `Changed` left everything as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailChangeByToken {
    Changed {
        user_id: i64,
    },
    /// No live email-change link has this hash (unknown, spent, expired), or its account is gone.
    NoLiveToken,
    /// Another account holds the new address now.
    Taken,
}

pub(super) const INSERT_MAIL: &str =
    "INSERT INTO mail_outbox (kind, recipient_sealed, payload_sealed, next_attempt_at, created_at)
                           VALUES ($1, '', '', 0, $2) RETURNING id";
pub(super) const SEAL_MAIL: &str =
    "UPDATE mail_outbox SET recipient_sealed = $2, payload_sealed = $3 WHERE id = $1";
const TOKENS_SINCE: &str =
    "SELECT COUNT(*) FROM mail_tokens WHERE user_id = $1 AND purpose = $2 AND created_at > $3";
/// Spends a live token (`$1` its hash, `$2` its purpose, `$3` now): only once, only before
/// it expires, only for the purpose it was made for.
const SPEND_TOKEN: &str = "UPDATE mail_tokens SET used_at = $3
    WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3
    RETURNING user_id, new_email_sealed";
const VOID_TOKENS: &str =
    "UPDATE mail_tokens SET used_at = $3 WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL";
pub(super) const INSERT_TOKEN: &str = "INSERT INTO mail_tokens (token_hash, purpose, user_id, new_email_sealed, new_email_index, created_at, expires_at)
                            VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// Spends a live token inside an open transaction `$tx` (either engine's, hence a macro):
/// the account and the sealed new address it carries, or `None` when no live token of
/// `$purpose` has this hash.
macro_rules! spend_token {
    ($tx:expr, $hash:expr, $purpose:expr, $now:expr) => {{
        let spent: Option<(i64, Option<String>)> = sqlx::query_as(SPEND_TOKEN)
            .bind($hash)
            .bind($purpose)
            .bind($now)
            .fetch_optional(&mut *$tx)
            .await?;
        spent
    }};
}

/// Voids the account's live tokens of `$purpose` inside an open transaction `$tx`.
macro_rules! void_tokens {
    ($tx:expr, $user_id:expr, $purpose:expr, $now:expr) => {
        sqlx::query(VOID_TOKENS)
            .bind($user_id)
            .bind($purpose)
            .bind($now)
            .execute(&mut *$tx)
            .await?
    };
}

/// Writes a token and mails inside an open transaction `$tx` (either engine's): the same
/// text for both, so it is a macro rather than a function generic over the driver.
macro_rules! write_mail {
    ($store:expr, $tx:expr, $token:expr, $mails:expr, $now:expr) => {{
        if let Some(token) = $token {
            let (sealed, index) = match &token.new_email {
                Some((email, key)) => (
                    Some($store.seal_field(Field::PendingEmail, token.user_id, email)?),
                    Some($store.keys.email_index(key)),
                ),
                None => (None, None),
            };
            sqlx::query(INSERT_TOKEN)
                .bind(&token.hash)
                .bind(token.purpose)
                .bind(token.user_id)
                .bind(&sealed)
                .bind(&index)
                .bind($now)
                .bind(token.expires_at)
                .execute(&mut *$tx)
                .await?;
        }
        for mail in $mails {
            let id: i64 = sqlx::query_scalar(INSERT_MAIL)
                .bind(mail.kind)
                .bind($now)
                .fetch_one(&mut *$tx)
                .await?;
            let to = $store.seal_field(Field::MailRecipient, id, &mail.to)?;
            let payload = $store.seal_field(Field::MailPayload, id, &mail.payload)?;
            sqlx::query(SEAL_MAIL)
                .bind(id)
                .bind(&to)
                .bind(&payload)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}
pub(super) use write_mail;

impl Store {
    pub(super) fn seal_field(
        &self,
        field: Field,
        row: i64,
        plain: &str,
    ) -> Result<String, sqlx::Error> {
        self.keys
            .seal(field, row, plain.as_bytes())
            .map_err(key_error)
    }

    fn open_field(&self, field: Field, row: i64, sealed: &str) -> Result<String, sqlx::Error> {
        let plain = self.keys.open(field, row, sealed).map_err(key_error)?;
        String::from_utf8(plain).map_err(|e| sqlx::Error::Decode(Box::new(e)))
    }

    /// Keeps `token` (if any) and queues `mails`, in one transaction.
    pub async fn queue_mail(
        &self,
        token: Option<&NewMailToken>,
        mails: &[OutgoingMail],
        now: UnixMillis,
    ) -> Result<(), sqlx::Error> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            write_mail!(self, tx, token, mails, now);
            tx.commit().await?;
            Ok::<_, sqlx::Error>(())
        })
    }

    /// [`Self::queue_mail`] unless the account already has `budget.most` tokens of the
    /// token's purpose made after `budget.since`; answers whether it queued. With
    /// `budget.replaces_earlier`, the account's unspent tokens of that purpose end in the same
    /// step (a refused request leaves them working). The count and the writes are one
    /// transaction that starts by writing the account's row (a no-op update): on PostgreSQL
    /// that locks the row until the end, on SQLite it takes the write lock, so a racing
    /// request waits and then counts this one's token: a burst of requests cannot all see
    /// room for one more.
    pub async fn queue_mail_within_budget(
        &self,
        token: &NewMailToken,
        mails: &[OutgoingMail],
        now: UnixMillis,
        budget: MailBudget,
    ) -> Result<bool, sqlx::Error> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE users SET username = username WHERE id = $1")
                .bind(token.user_id)
                .execute(&mut *tx)
                .await?;
            let made: i64 = sqlx::query_scalar(TOKENS_SINCE)
                .bind(token.user_id)
                .bind(token.purpose)
                .bind(budget.since)
                .fetch_one(&mut *tx)
                .await?;
            if made >= budget.most {
                tx.rollback().await?;
                return Ok(false);
            }
            if budget.replaces_earlier {
                void_tokens!(tx, token.user_id, token.purpose, now);
            }
            write_mail!(self, tx, Some(token), mails, now);
            tx.commit().await?;
            Ok::<_, sqlx::Error>(true)
        })
    }

    /// Mails whose next attempt is due at wall-clock `now`, oldest first.
    pub async fn due_mail(
        &self,
        now: UnixMillis,
        limit: i64,
    ) -> Result<Vec<PendingMail>, sqlx::Error> {
        let sql = "SELECT id, kind, recipient_sealed, payload_sealed, attempts, next_attempt_at, failing_since
                   FROM mail_outbox WHERE next_attempt_at <= $1 ORDER BY id LIMIT $2";
        let rows: Vec<PendingRow> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await)?;
        rows.into_iter()
            .map(|row| {
                Ok(PendingMail {
                    id: row.id,
                    to: self.open_field(Field::MailRecipient, row.id, &row.recipient_sealed)?,
                    payload: self.open_field(Field::MailPayload, row.id, &row.payload_sealed)?,
                    kind: row.kind,
                    attempts: row.attempts,
                    next_attempt_at: row.next_attempt_at,
                    failing_since: row.failing_since,
                })
            })
            .collect()
    }

    /// Takes a due mail for one delivery attempt: moves its next attempt to `lease_until`
    /// unless another sender (another instance) took it first. A sender that dies while
    /// delivering leaves the lease to run out, and the mail is tried again.
    pub async fn claim_mail(
        &self,
        id: i64,
        seen_next_attempt: i64,
        lease_until: UnixMillis,
    ) -> Result<bool, sqlx::Error> {
        let sql =
            "UPDATE mail_outbox SET next_attempt_at = $3 WHERE id = $1 AND next_attempt_at = $2";
        let affected = on_pool!(self, |pool| sqlx::query(sql)
            .bind(id)
            .bind(seen_next_attempt)
            .bind(lease_until)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(affected == 1)
    }

    /// A delivered mail goes: nothing of it (address, token) stays in the database.
    pub async fn mail_delivered(&self, id: i64) -> Result<(), sqlx::Error> {
        execute!(self, "DELETE FROM mail_outbox WHERE id = $1", id)
    }

    /// A failed attempt: the next one at `next_attempt_at`.
    pub async fn mail_failed(
        &self,
        id: i64,
        next_attempt_at: UnixMillis,
        failing_since: UnixMillis,
    ) -> Result<(), sqlx::Error> {
        let sql = "UPDATE mail_outbox SET attempts = attempts + 1, next_attempt_at = $2,
                   failing_since = COALESCE(failing_since, $3) WHERE id = $1";
        execute!(self, sql, id, next_attempt_at, failing_since)
    }

    /// Mails waiting, and the start of the oldest current run of failures.
    pub async fn outbox_state(&self) -> Result<(i64, Option<i64>), sqlx::Error> {
        let sql = "SELECT COUNT(*), MIN(failing_since) FROM mail_outbox";
        on_pool!(self, |pool| sqlx::query_as(sql).fetch_one(pool).await)
    }

    /// Spends a live verification token (of `purpose`) and marks its account's address
    /// proven, in one transaction; answers the account, or `None` (nothing changed) when no
    /// live link has this hash.
    pub async fn verify_email_by_token(
        &self,
        hash: &str,
        purpose: &str,
        now: UnixMillis,
    ) -> Result<Option<i64>, sqlx::Error> {
        let verified = "UPDATE users SET email_verified_at = $2 WHERE id = $1";
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let spent = spend_token!(tx, hash, purpose, now);
            let Some((user_id, _)) = spent else {
                return Ok(None);
            };
            sqlx::query(verified)
                .bind(user_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(user_id))
        })
    }

    /// Spends a live email-change token (of `purpose`) and gives its account the new address,
    /// verified, voiding the account's live links of `voids`, in one transaction: a database
    /// failure part way leaves the link live and the address unchanged (so the user can follow
    /// the same link again), never a spent link with no change made. A disabled or deleted
    /// account's link changes nothing (`NoLiveToken`).
    pub async fn change_email_by_token(
        &self,
        hash: &str,
        purpose: &str,
        voids: &str,
        now: UnixMillis,
    ) -> Result<EmailChangeByToken, sqlx::Error> {
        // Not for a disabled account: a link asked for before an administrator disabled it
        // (perhaps by whoever had taken it over) must not move its address, from which a
        // reset would retake it once it is enabled again.
        let change = "UPDATE users SET email_sealed = $2, email_index = $3, email_verified_at = $4,
                      updated_at = $4 WHERE id = $1 AND disabled_at IS NULL";
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let spent = spend_token!(tx, hash, purpose, now);
            let Some((user_id, Some(pending))) = spent else {
                return Ok(EmailChangeByToken::NoLiveToken);
            };
            let email = self.open_field(Field::PendingEmail, user_id, &pending)?;
            let index = self.keys.email_index(&email_key(&email));
            let changed = sqlx::query(change)
                .bind(user_id)
                .bind(self.seal_email(user_id, &email)?)
                .bind(index)
                .bind(now)
                .execute(&mut *tx)
                .await;
            match changed {
                Ok(done) if done.rows_affected() == 1 => {}
                Ok(_) => return Ok(EmailChangeByToken::NoLiveToken),
                Err(error) if is_unique_violation(&error, "users", "email_index") => {
                    return Ok(EmailChangeByToken::Taken);
                }
                Err(error) => return Err(error),
            }
            void_tokens!(tx, user_id, voids, now);
            tx.commit().await?;
            Ok(EmailChangeByToken::Changed { user_id })
        })
    }

    /// Spends a live reset token (of `purpose`) made for `user_id` (whose details the new
    /// password was judged against), sets the account's new password, voids its other links
    /// of `purpose` and ends all its sessions, in one transaction: a new password never
    /// stands beside an attacker's live session, and a database failure part way leaves the
    /// link live and nothing changed. Answers the sessions it ended, or `None` (nothing
    /// changed) when no live link of that account has this hash or the account is disabled
    /// or gone.
    pub async fn reset_password_by_token(
        &self,
        hash: &str,
        purpose: &str,
        user_id: i64,
        password_hash: &str,
        now: UnixMillis,
    ) -> Result<Option<Vec<String>>, sqlx::Error> {
        let set = "UPDATE users SET password_hash = $2, updated_at = $3
                   WHERE id = $1 AND disabled_at IS NULL";
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let spent = spend_token!(tx, hash, purpose, now);
            if spent.is_none_or(|(owner, _)| owner != user_id) {
                return Ok(None);
            }
            let set = sqlx::query(set)
                .bind(user_id)
                .bind(password_hash)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            if set.rows_affected() != 1 {
                return Ok(None);
            }
            void_tokens!(tx, user_id, purpose, now);
            let ended_sessions: Vec<String> = sqlx::query_scalar(REVOKE_USER_SESSIONS)
                .bind(user_id)
                .bind(now)
                .bind(None::<&str>)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(ended_sessions))
        })
    }

    /// Tokens of `purpose` made for the account since `since` (the per-account mail budget).
    pub async fn mail_tokens_since(
        &self,
        user_id: i64,
        purpose: &str,
        since: UnixMillis,
    ) -> Result<i64, sqlx::Error> {
        on_pool!(self, |pool| sqlx::query_scalar(TOKENS_SINCE)
            .bind(user_id)
            .bind(purpose)
            .bind(since)
            .fetch_one(pool)
            .await)
    }

    /// The account a live token of `purpose` belongs to, without spending it (a new
    /// password is judged before the token is spent, so a weak one does not burn it).
    pub async fn peek_mail_token(
        &self,
        hash: &str,
        purpose: &str,
        now: UnixMillis,
    ) -> Result<Option<i64>, sqlx::Error> {
        let sql = "SELECT user_id FROM mail_tokens
                   WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3";
        on_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(hash)
            .bind(purpose)
            .bind(now)
            .fetch_optional(pool)
            .await)
    }

    /// Whether the account's address is verified.
    pub async fn email_verified(&self, user_id: i64) -> Result<bool, sqlx::Error> {
        let sql = "SELECT email_verified_at FROM users WHERE id = $1";
        let at: Option<Option<i64>> = on_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(user_id)
            .fetch_optional(pool)
            .await)?;
        Ok(at.flatten().is_some())
    }

    /// Deletes spent and expired tokens (retention).
    pub async fn prune_mail_tokens(&self, now: UnixMillis) -> Result<(), sqlx::Error> {
        execute!(self, "DELETE FROM mail_tokens WHERE expires_at <= $1", now)
    }
}
