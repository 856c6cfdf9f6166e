//! Account administration: listing accounts, roles, disabling, revoking sessions.

use sqlx::{AssertSqlSafe, FromRow};

use super::users::USER_COLUMNS;
use super::{Store, UserRow, execute, matchable, on_pool};
use crate::clock::UnixMillis;
use crate::domain::email_key;
use crate::field_keys::Field;

/// An account as an administrator sees it.
#[derive(Debug, Clone, FromRow)]
pub struct AccountRow {
    pub id: i64,
    pub username: String,
    /// The address in clear (opened as the row is read).
    pub email: String,
    pub role: String,
    pub disabled_at: Option<i64>,
    pub created_at: i64,
    /// When the account last logged in (its newest session), if ever.
    pub last_login_at: Option<i64>,
    /// 1 when the account has MFA on (a confirmed TOTP enrolment), else 0.
    pub mfa_enrolments: i64,
}

/// `LIKE` pattern for "contains `text`", with the wildcards in `text` escaped so `%` and `_`
/// match only themselves.
fn contains_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

impl Store {
    pub async fn user_by_username_key(
        &self,
        username_key: &str,
    ) -> Result<Option<UserRow>, sqlx::Error> {
        if !matchable(username_key) {
            return Ok(None);
        }
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username_key = $1");
        let row: Option<UserRow> =
            on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql.as_str()))
                .bind(username_key)
                .fetch_optional(pool)
                .await)?;
        row.map(|row| self.open_email(row)).transpose()
    }

    /// Accounts whose username contains `query` or whose email is `query` (both ignoring
    /// case), by username, and how many match in all. Emails are sealed, so only a whole
    /// address can be matched: through its blind index.
    pub async fn list_accounts(
        &self,
        query: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<AccountRow>, i64), sqlx::Error> {
        let query = query.filter(|q| matchable(q));
        let pattern = query.map(|q| contains_pattern(&q.to_lowercase()));
        let index = query.map(|q| self.keys.email_index(&email_key(q)));
        let filter = "($1 IS NULL OR u.username_key LIKE $1 ESCAPE '\\' OR u.email_index = $4)";
        let list = format!(
            "SELECT u.id, u.username, u.email_sealed AS email, u.role, u.disabled_at, u.created_at,
               (SELECT MAX(s.created_at) FROM sessions s WHERE s.user_id = u.id) AS last_login_at,
               (SELECT COUNT(*) FROM mfa_totp m
                 WHERE m.user_id = u.id AND m.confirmed_at IS NOT NULL) AS mfa_enrolments
             FROM users u WHERE {filter} ORDER BY u.username_key LIMIT $2 OFFSET $3"
        );
        let count = format!(
            "SELECT COUNT(*) FROM users u WHERE {}",
            filter.replace("$4", "$2")
        );
        let (rows, total): (Vec<AccountRow>, i64) = on_pool!(self, |pool| {
            let rows = sqlx::query_as(AssertSqlSafe(list.as_str()))
                .bind(&pattern)
                .bind(limit)
                .bind(offset)
                .bind(&index)
                .fetch_all(pool)
                .await?;
            let total: i64 = sqlx::query_scalar(AssertSqlSafe(count.as_str()))
                .bind(&pattern)
                .bind(&index)
                .fetch_one(pool)
                .await?;
            Ok::<_, sqlx::Error>((rows, total))
        })?;
        let rows = rows
            .into_iter()
            .map(|mut row| {
                let plain = self
                    .keys
                    .open(Field::UserEmail, row.id, &row.email)
                    .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
                row.email =
                    String::from_utf8(plain).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
                Ok(row)
            })
            .collect::<Result<_, sqlx::Error>>()?;
        Ok((rows, total))
    }

    pub async fn set_role(
        &self,
        user_id: i64,
        role: &str,
        now: UnixMillis,
    ) -> Result<(), sqlx::Error> {
        let sql = "UPDATE users SET role = $2, updated_at = $3 WHERE id = $1";
        execute!(self, sql, user_id, role, now)
    }

    /// Disables the account (`Some(time)`) or enables it (`None`).
    pub async fn set_disabled(
        &self,
        user_id: i64,
        disabled_at: Option<UnixMillis>,
        now: UnixMillis,
    ) -> Result<(), sqlx::Error> {
        let sql = "UPDATE users SET disabled_at = $2, updated_at = $3 WHERE id = $1";
        execute!(self, sql, user_id, disabled_at, now)
    }

    /// Marks every live session of every user revoked (incident response).
    pub async fn revoke_every_session(&self, now: UnixMillis) -> Result<Vec<String>, sqlx::Error> {
        let sql = "UPDATE sessions SET revoked_at = $1 WHERE revoked_at IS NULL RETURNING id";
        on_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(now)
            .fetch_all(pool)
            .await)
    }

    /// When a session began (its login time), if it exists and is not revoked.
    pub async fn session_started_at(&self, session_id: &str) -> Result<Option<i64>, sqlx::Error> {
        let sql = "SELECT created_at FROM sessions WHERE id = $1 AND revoked_at IS NULL";
        on_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(session_id)
            .fetch_optional(pool)
            .await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_match_only_themselves() {
        assert_eq!(contains_pattern("a%b_c\\"), "%a\\%b\\_c\\\\%");
    }
}
