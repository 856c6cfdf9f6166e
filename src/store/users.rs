//! Accounts, sessions, profiles and follows.

use sqlx::{AssertSqlSafe, FromRow};

use super::{Store, execute, matchable, on_pool};
use crate::clock::UnixMillis;

#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub bio: Option<String>,
    pub image: Option<String>,
    pub role: String,
    pub disabled_at: Option<i64>,
}

pub(super) const USER_COLUMNS: &str =
    "id, username, email, password_hash, bio, image, role, disabled_at";

pub struct NewUser<'a> {
    pub username: &'a str,
    pub username_key: &'a str,
    pub email: &'a str,
    pub email_key: &'a str,
    pub password_hash: &'a str,
    pub now: UnixMillis,
}

/// A partial update: `None` leaves a field as it is. `bio` and `image` can also be cleared,
/// hence the nested option.
#[derive(Default)]
pub struct UserChanges {
    pub username: Option<(String, String)>,
    pub email: Option<(String, String)>,
    pub password_hash: Option<String>,
    pub bio: Option<Option<String>>,
    pub image: Option<Option<String>>,
}

pub struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: i64,
    pub now: UnixMillis,
    pub client_ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
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
    pub async fn insert_user(&self, new: NewUser<'_>) -> Result<UserRow, sqlx::Error> {
        let sql = format!(
            "INSERT INTO users (username, username_key, email, email_key, password_hash, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {USER_COLUMNS}"
        );
        on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(new.username)
            .bind(new.username_key)
            .bind(new.email)
            .bind(new.email_key)
            .bind(new.password_hash)
            .bind(new.now)
            .fetch_one(pool)
            .await)
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<UserRow>, sqlx::Error> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(id)
            .fetch_optional(pool)
            .await)
    }

    pub async fn user_by_email_key(&self, email_key: &str) -> Result<Option<UserRow>, sqlx::Error> {
        if !matchable(email_key) {
            return Ok(None);
        }
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email_key = $1");
        on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(email_key)
            .fetch_optional(pool)
            .await)
    }

    pub async fn update_user(
        &self,
        id: i64,
        changes: UserChanges,
        now: UnixMillis,
    ) -> Result<Option<UserRow>, sqlx::Error> {
        let (username, username_key) = changes.username.unzip();
        let (email, email_key) = changes.email.unzip();
        let set_bio = i64::from(changes.bio.is_some());
        let set_image = i64::from(changes.image.is_some());
        let sql = format!(
            "UPDATE users SET
                username = COALESCE($2, username), username_key = COALESCE($3, username_key),
                email = COALESCE($4, email), email_key = COALESCE($5, email_key),
                password_hash = COALESCE($6, password_hash),
                bio = CASE WHEN $7 = 1 THEN $8 ELSE bio END,
                image = CASE WHEN $9 = 1 THEN $10 ELSE image END,
                updated_at = $11
             WHERE id = $1 RETURNING {USER_COLUMNS}"
        );
        on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(id)
            .bind(&username)
            .bind(&username_key)
            .bind(&email)
            .bind(&email_key)
            .bind(&changes.password_hash)
            .bind(set_bio)
            .bind(changes.bio.clone().flatten())
            .bind(set_image)
            .bind(changes.image.clone().flatten())
            .bind(now)
            .fetch_optional(pool)
            .await)
    }

    pub async fn insert_session(&self, session: NewSession<'_>) -> Result<(), sqlx::Error> {
        let sql =
            "INSERT INTO sessions (id, user_id, created_at, last_seen_at, authenticated_at, client_ip, user_agent)
                   VALUES ($1, $2, $3, $3, $3, $4, $5)";
        let NewSession {
            id,
            user_id,
            now,
            client_ip,
            user_agent,
        } = session;
        execute!(self, sql, id, user_id, now, client_ip, user_agent)?;
        Ok(())
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
