//! Accounts, sessions, profiles and follows.

use sqlx::{AssertSqlSafe, FromRow};

use super::mail::{INSERT_MAIL, INSERT_TOKEN, SEAL_MAIL, write_mail};
use super::{NewMailToken, OutgoingMail, Store, execute, matchable, on_pool};
use crate::clock::UnixMillis;
use crate::field_keys::Field;

#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    /// The address in clear: the store opens `email_sealed` as it reads the row.
    pub email: String,
    pub password_hash: String,
    pub bio: Option<String>,
    pub image: Option<String>,
    pub role: String,
    pub disabled_at: Option<i64>,
    /// When the current address was proven by a mailed link.
    pub email_verified_at: Option<i64>,
}

/// Read with [`Store::open_email`]: `email` is still sealed until then.
pub(super) const USER_COLUMNS: &str = "id, username, email_sealed AS email, password_hash, bio, image, role, disabled_at, email_verified_at";

pub struct NewUser<'a> {
    pub username: &'a str,
    pub username_key: &'a str,
    pub email: &'a str,
    /// The normalised email (`domain::email_key`); the store keeps only its blind index.
    pub email_key: &'a str,
    pub password_hash: &'a str,
    pub now: UnixMillis,
    /// The verification mail and its token (hash, purpose, expiry), written in the same
    /// transaction as the account.
    pub verification: Option<(String, &'static str, UnixMillis, OutgoingMail)>,
}

/// A partial update: `None` leaves a field as it is. `bio` and `image` can also be cleared,
/// hence the nested option.
#[derive(Default)]
pub struct UserChanges {
    pub username: Option<(String, String)>,
    /// The new address and its normalised form (`domain::email_key`).
    pub email: Option<(String, String)>,
    pub password_hash: Option<String>,
    pub bio: Option<Option<String>>,
    pub image: Option<Option<String>>,
}

#[derive(Debug, Clone, FromRow)]
pub struct ProfileRow {
    pub id: i64,
    pub username: String,
    pub bio: Option<String>,
    pub image: Option<String>,
    /// 1 when the viewer follows this user.
    pub following: i64,
}

impl Store {
    /// Inserts the account. The sealed email's associated data names the row, whose id the
    /// insert assigns, so the row goes in with an empty email and gets its sealed one in the
    /// same transaction: the address is never written in clear, and a failure leaves no row.
    /// The blind index is written by the insert, so a taken email fails on the unique index.
    pub async fn insert_user(&self, new: NewUser<'_>) -> Result<UserRow, sqlx::Error> {
        let insert = "INSERT INTO users (username, username_key, email_sealed, email_index, password_hash, created_at, updated_at)
                      VALUES ($1, $2, '', $3, $4, $5, $5) RETURNING id";
        let seal =
            format!("UPDATE users SET email_sealed = $2 WHERE id = $1 RETURNING {USER_COLUMNS}");
        let index = self.keys.email_index(new.email_key);
        let row: UserRow = on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let id: i64 = sqlx::query_scalar(insert)
                .bind(new.username)
                .bind(new.username_key)
                .bind(&index)
                .bind(new.password_hash)
                .bind(new.now)
                .fetch_one(&mut *tx)
                .await?;
            let sealed = self.seal_email(id, new.email)?;
            let row = sqlx::query_as(AssertSqlSafe(seal.as_str()))
                .bind(id)
                .bind(&sealed)
                .fetch_one(&mut *tx)
                .await?;
            if let Some((hash, purpose, expires_at, mail)) = &new.verification {
                let token = NewMailToken {
                    hash: hash.clone(),
                    purpose,
                    user_id: id,
                    new_email: None,
                    expires_at: *expires_at,
                };
                write_mail!(self, tx, Some(&token), std::slice::from_ref(mail), new.now);
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(row)
        })?;
        self.open_email(row)
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<UserRow>, sqlx::Error> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let row: Option<UserRow> =
            on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql.as_str()))
                .bind(id)
                .fetch_optional(pool)
                .await)?;
        row.map(|row| self.open_email(row)).transpose()
    }

    /// The account with this normalised email: one equality on the unique blind index.
    pub async fn user_by_email_key(&self, email_key: &str) -> Result<Option<UserRow>, sqlx::Error> {
        if !matchable(email_key) {
            return Ok(None);
        }
        let index = self.keys.email_index(email_key);
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email_index = $1");
        let row: Option<UserRow> =
            on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql.as_str()))
                .bind(&index)
                .fetch_optional(pool)
                .await)?;
        row.map(|row| self.open_email(row)).transpose()
    }

    pub async fn update_user(
        &self,
        id: i64,
        changes: UserChanges,
        now: UnixMillis,
    ) -> Result<Option<UserRow>, sqlx::Error> {
        let (username, username_key) = changes.username.unzip();
        let (email, email_index) = match &changes.email {
            Some((email, key)) => (
                Some(self.seal_email(id, email)?),
                Some(self.keys.email_index(key)),
            ),
            None => (None, None),
        };
        let set_bio = i64::from(changes.bio.is_some());
        let set_image = i64::from(changes.image.is_some());
        let sql = format!(
            "UPDATE users SET
                username = COALESCE($2, username), username_key = COALESCE($3, username_key),
                email_sealed = COALESCE($4, email_sealed), email_index = COALESCE($5, email_index),
                password_hash = COALESCE($6, password_hash),
                bio = CASE WHEN $7 = 1 THEN $8 ELSE bio END,
                image = CASE WHEN $9 = 1 THEN $10 ELSE image END,
                updated_at = $11
             WHERE id = $1 RETURNING {USER_COLUMNS}"
        );
        let row: Option<UserRow> =
            on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql.as_str()))
                .bind(id)
                .bind(&username)
                .bind(&username_key)
                .bind(&email)
                .bind(&email_index)
                .bind(&changes.password_hash)
                .bind(set_bio)
                .bind(changes.bio.clone().flatten())
                .bind(set_image)
                .bind(changes.image.clone().flatten())
                .bind(now)
                .fetch_optional(pool)
                .await)?;
        row.map(|row| self.open_email(row)).transpose()
    }

    /// Deletes an account and, through the foreign keys, everything it wrote and held.
    pub async fn remove_account(&self, id: i64) -> Result<bool, sqlx::Error> {
        let sql = "DELETE FROM users WHERE id = $1";
        let affected = on_pool!(self, |pool| sqlx::query(sql)
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(affected == 1)
    }

    /// Strips an account of everything personal and keeps its content: a new random name
    /// `placeholder` (and an address made from it, sealed), no password that can verify,
    /// no bio or image, disabled; its MFA, devices, follows and favourites go. One
    /// transaction: either the account is anonymous or nothing changed.
    pub async fn anonymise_account(
        &self,
        id: i64,
        placeholder: &str,
        now: UnixMillis,
    ) -> Result<bool, sqlx::Error> {
        let email = format!("{placeholder}@deleted.invalid");
        let sealed = self.seal_email(id, &email)?;
        let index = self.keys.email_index(&email);
        let account = "UPDATE users SET username = $2, username_key = $2, email_sealed = $3,
                           email_index = $4, password_hash = '!', bio = NULL, image = NULL,
                           disabled_at = $5, last_login_at = NULL, email_verified_at = NULL, updated_at = $5
                       WHERE id = $1";
        let personal = [
            "DELETE FROM mfa_challenges WHERE user_id = $1",
            "DELETE FROM mfa_recovery_codes WHERE user_id = $1",
            "DELETE FROM mfa_totp WHERE user_id = $1",
            "DELETE FROM known_devices WHERE user_id = $1",
            "DELETE FROM mail_tokens WHERE user_id = $1",
            "DELETE FROM favorites WHERE user_id = $1",
            "DELETE FROM follows WHERE follower_id = $1 OR followee_id = $1",
        ];
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let changed = sqlx::query(account)
                .bind(id)
                .bind(placeholder)
                .bind(&sealed)
                .bind(&index)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            for sql in personal {
                sqlx::query(sql).bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(changed == 1)
        })
    }

    /// Enabled accounts that have not logged in since `cutoff` (never: since they were
    /// created), by username: `(username, last login, created at)`.
    pub async fn dormant_accounts(
        &self,
        cutoff: UnixMillis,
    ) -> Result<Vec<(String, Option<i64>, i64)>, sqlx::Error> {
        let sql = "SELECT username, last_login_at, created_at FROM users
                   WHERE disabled_at IS NULL AND COALESCE(last_login_at, created_at) < $1
                   ORDER BY username_key";
        on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(cutoff)
            .fetch_all(pool)
            .await)
    }

    /// A user's public profile as seen by `viewer` (anonymous when `None`).
    pub async fn profile(
        &self,
        viewer: Option<i64>,
        username_key: &str,
    ) -> Result<Option<ProfileRow>, sqlx::Error> {
        if !matchable(username_key) {
            return Ok(None);
        }
        let sql = "SELECT u.id, u.username, u.bio, u.image,
                     CAST(CASE WHEN EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = $1 AND f.followee_id = u.id)
                          THEN 1 ELSE 0 END AS BIGINT) AS following
                   FROM users u WHERE u.username_key = $2";
        on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(viewer)
            .bind(username_key)
            .fetch_optional(pool)
            .await)
    }

    pub async fn follow(&self, follower: i64, followee: i64) -> Result<(), sqlx::Error> {
        let sql =
            "INSERT INTO follows (follower_id, followee_id) VALUES ($1, $2) ON CONFLICT DO NOTHING";
        execute!(self, sql, follower, followee)?;
        Ok(())
    }

    pub async fn unfollow(&self, follower: i64, followee: i64) -> Result<(), sqlx::Error> {
        let sql = "DELETE FROM follows WHERE follower_id = $1 AND followee_id = $2";
        execute!(self, sql, follower, followee)?;
        Ok(())
    }
}
