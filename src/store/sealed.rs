//! Sealed columns (see `crate::field_keys`): sealing and opening values as rows pass, sealing
//! the rows an upgrade left in clear, and re-sealing rows under a new key while the server
//! keeps serving (`aerie keys rotate-data`).
//!
//! Every re-seal is a compare-and-set on the old stored value, so a row the server changed
//! meanwhile (a new email, a new enrolment) is left to the next pass instead of being
//! overwritten with stale data. A pass is resumable by construction: rows already under the
//! active key are skipped.

use sqlx::AssertSqlSafe;

use super::{Pool, Store, UserRow, budget, on_pool};
use crate::field_keys::{Field, FieldKeyError, FieldKeys};

/// Every sealed column a rotation re-seals, in the order it walks them.
pub const SEALED_FIELDS: [Field; 4] = [
    Field::UserEmail,
    Field::TotpSecret,
    Field::MailRecipient,
    Field::MailPayload,
];

/// Sealed columns a rotation does not re-seal, because their rows live minutes: the address
/// an email change waits to confirm (its link expires within 30 minutes, and the retention
/// task deletes it then). `--retire` still counts them, and refuses while one uses an old key.
pub const SHORT_LIVED_SEALED_FIELDS: [Field; 1] = [Field::PendingEmail];

/// Where a sealed field is stored: fixed SQL fragments, never input.
struct Location {
    table: &'static str,
    id: &'static str,
    sealed: &'static str,
}

fn location(field: Field) -> Location {
    match field {
        Field::UserEmail => Location {
            table: "users",
            id: "id",
            sealed: "email_sealed",
        },
        Field::TotpSecret => Location {
            table: "mfa_totp",
            id: "user_id",
            sealed: "secret_sealed",
        },
        Field::MailRecipient => Location {
            table: "mail_outbox",
            id: "id",
            sealed: "recipient_sealed",
        },
        Field::MailPayload => Location {
            table: "mail_outbox",
            id: "id",
            sealed: "payload_sealed",
        },
        Field::PendingEmail => Location {
            table: "mail_tokens",
            id: "user_id",
            sealed: "new_email_sealed",
        },
    }
}

/// A value that did not seal or open: logged with the field and row, answered as an internal
/// error (the client sees only the request id).
pub(super) fn key_error(error: FieldKeyError) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(error))
}

/// How many stored values of one field each key seals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUse {
    pub field: Field,
    /// `(key id, values)`, for every key id the keyring holds plus the legacy MFA key.
    pub by_key: Vec<(u32, i64)>,
    /// Values under a key the keyring does not hold, or not sealed at all (left in clear by
    /// an upgrade not yet finished).
    pub other: i64,
}

impl KeyUse {
    /// Values under any key but `active`.
    pub fn not_under(&self, active: u32) -> i64 {
        self.other
            + self
                .by_key
                .iter()
                .filter(|(kid, _)| *kid != active)
                .map(|(_, count)| count)
                .sum::<i64>()
    }
}

/// What one re-seal batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resealed {
    /// Rows read.
    pub scanned: u64,
    /// Rows moved to the active key.
    pub resealed: u64,
    /// The last row id read: the next batch starts after it; `None` at the end of the table.
    pub next: Option<i64>,
}

impl Store {
    pub(super) fn seal_email(&self, user_id: i64, email: &str) -> Result<String, sqlx::Error> {
        self.keys
            .seal(Field::UserEmail, user_id, email.as_bytes())
            .map_err(key_error)
    }

    /// Replaces the sealed email a row was read with by the address it seals.
    pub(super) fn open_email(&self, mut row: UserRow) -> Result<UserRow, sqlx::Error> {
        let plain = self
            .keys
            .open(Field::UserEmail, row.id, &row.email)
            .map_err(key_error)?;
        row.email = String::from_utf8(plain).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        Ok(row)
    }

    pub(super) fn seal_secret(&self, user_id: i64, secret: &[u8]) -> Result<String, sqlx::Error> {
        self.keys
            .seal(Field::TotpSecret, user_id, secret)
            .map_err(key_error)
    }

    pub(super) fn open_secret(&self, user_id: i64, sealed: &str) -> Result<Vec<u8>, sqlx::Error> {
        self.keys
            .open(Field::TotpSecret, user_id, sealed)
            .map_err(key_error)
    }

    /// Seals what the upgrade to field encryption left in clear (emails: rows whose index is
    /// not a blind index yet) and re-seals TOTP secrets sealed by the retired MFA key, in
    /// batches. Answers how many rows changed. Runs before the server serves: until it has,
    /// a lookup by blind index would miss the rows still in clear.
    pub async fn seal_legacy_rows(&self) -> Result<u64, sqlx::Error> {
        let select = "SELECT id, email_sealed, email_index FROM users
                      WHERE email_index NOT LIKE 'i1.%' ORDER BY id LIMIT 500";
        let update = "UPDATE users SET email_sealed = $2, email_index = $3
                      WHERE id = $1 AND email_index = $4";
        let mut changed = 0;
        loop {
            let rows: Vec<(i64, String, String)> =
                on_pool!(self, |pool| sqlx::query_as(select).fetch_all(pool).await)?;
            if rows.is_empty() {
                break;
            }
            for (id, email, old_key) in rows {
                let sealed = self.seal_email(id, &email)?;
                // The old column held `domain::email_key(email)`: the index's own input.
                let index = self.keys.email_index(&old_key);
                on_pool!(self, |pool| sqlx::query(update)
                    .bind(id)
                    .bind(&sealed)
                    .bind(&index)
                    .bind(&old_key)
                    .execute(pool)
                    .await
                    .map(drop))?;
                changed += 1;
            }
        }
        let select = "SELECT user_id, secret_sealed FROM mfa_totp
                      WHERE secret_sealed LIKE 'v1.%' ORDER BY user_id LIMIT 500";
        loop {
            let rows: Vec<(i64, String)> =
                on_pool!(self, |pool| sqlx::query_as(select).fetch_all(pool).await)?;
            if rows.is_empty() {
                break;
            }
            for (user_id, sealed) in rows {
                self.reseal(Field::TotpSecret, user_id, &sealed).await?;
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// Seals what an upgrade left in clear ([`Self::seal_legacy_rows`]) and, when there was
    /// any, compacts the SQLite file so the clear text does not linger in old pages. Answers
    /// how many rows were sealed.
    pub async fn finish_field_encryption(&self) -> Result<u64, sqlx::Error> {
        let sealed = self.seal_legacy_rows().await?;
        if sealed > 0 {
            self.compact().await?;
        }
        Ok(sealed)
    }

    /// Opens `old` and stores it sealed under the active key, if the row still holds `old`.
    async fn reseal(&self, field: Field, id: i64, old: &str) -> Result<bool, sqlx::Error> {
        let plain = self.keys.open(field, id, old).map_err(key_error)?;
        let new = self.keys.seal(field, id, &plain).map_err(key_error)?;
        let Location {
            table,
            id: id_column,
            sealed,
        } = location(field);
        let sql =
            format!("UPDATE {table} SET {sealed} = $3 WHERE {id_column} = $1 AND {sealed} = $2");
        let affected = on_pool!(self, |pool| sqlx::query(AssertSqlSafe(sql.as_str()))
            .bind(id)
            .bind(old)
            .bind(&new)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(affected == 1)
    }

    /// Re-seals under the active key up to `limit` rows of `field` after row id `after`.
    pub async fn reseal_batch(
        &self,
        field: Field,
        after: i64,
        limit: i64,
    ) -> Result<Resealed, sqlx::Error> {
        let Location { table, id, sealed } = location(field);
        let sql =
            format!("SELECT {id}, {sealed} FROM {table} WHERE {id} > $1 ORDER BY {id} LIMIT $2");
        let rows: Vec<(i64, String)> =
            on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql.as_str()))
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await)?;
        let active = self.keys.active_key_id();
        let mut done = Resealed {
            scanned: 0,
            resealed: 0,
            next: None,
        };
        for (row, value) in &rows {
            done.scanned += 1;
            done.next = Some(*row);
            if value.is_empty() || FieldKeys::key_id_of(value) == Some(active) {
                continue;
            }
            if self.reseal(field, *row, value).await? {
                done.resealed += 1;
            }
        }
        if rows.len() < usize::try_from(limit).unwrap_or(usize::MAX) {
            done.next = None;
        }
        Ok(done)
    }

    /// How many rows of `field` there are in all.
    pub async fn sealed_rows(&self, field: Field) -> Result<i64, sqlx::Error> {
        let Location { table, sealed, .. } = location(field);
        // A column that may hold nothing (an account's pending email) counts only its values.
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE {sealed} IS NOT NULL");
        on_pool!(self, |pool| sqlx::query_scalar(AssertSqlSafe(sql.as_str()))
            .fetch_one(pool)
            .await)
    }

    /// How many values of `field` each key seals: what `--retire` checks before it drops a key.
    pub async fn key_use(&self, field: Field) -> Result<KeyUse, sqlx::Error> {
        let Location { table, sealed, .. } = location(field);
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE {sealed} LIKE $1");
        let mut by_key = Vec::new();
        let mut patterns: Vec<(u32, String)> = self
            .keys
            .key_ids()
            .into_iter()
            .map(|kid| (kid, format!("f1.{kid}.%")))
            .collect();
        if field == Field::TotpSecret {
            patterns.insert(0, (crate::field_keys::LEGACY_KEY_ID, "v1.%".to_owned()));
        }
        for (kid, pattern) in patterns {
            let count: i64 =
                on_pool!(self, |pool| sqlx::query_scalar(AssertSqlSafe(sql.as_str()))
                    .bind(&pattern)
                    .fetch_one(pool)
                    .await)?;
            by_key.push((kid, count));
        }
        let total = self.sealed_rows(field).await?;
        let counted: i64 = by_key.iter().map(|(_, count)| count).sum();
        Ok(KeyUse {
            field,
            by_key,
            other: total - counted,
        })
    }

    /// Rewrites the SQLite file without its free pages and empties the WAL, so values that
    /// were in clear before they were sealed do not linger in either. Nothing to do on
    /// PostgreSQL (its old row versions go with autovacuum; its files are not the backup).
    pub async fn compact(&self) -> Result<(), sqlx::Error> {
        let Pool::Sqlite(pool) = &self.pool else {
            return Ok(());
        };
        let mut connection = pool.acquire().await?;
        budget::lift_sqlite(&mut connection).await?;
        for sql in [
            "PRAGMA wal_checkpoint(TRUNCATE)",
            "VACUUM",
            "PRAGMA wal_checkpoint(TRUNCATE)",
        ] {
            sqlx::query(sql).execute(&mut *connection).await?;
        }
        Ok(())
    }
}
