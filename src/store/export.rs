//! Everything held about one account, for its owner (`GET /api/user/export`): the account,
//! its sessions and known devices, its MFA state, what it wrote, follows and favours, and the
//! audit events about it. Read in one repeatable snapshot per engine's default isolation;
//! each list is bounded so an export cannot be turned into an unbounded read.

use serde::Serialize;
use sqlx::FromRow;

use super::{Store, on_pool};

/// The most rows of any one list an export carries.
pub const EXPORT_LIMIT: i64 = 10_000;

#[derive(Debug, Serialize, FromRow)]
#[serde(rename_all = "camelCase")]
pub struct ExportedSession {
    pub created_at: i64,
    pub last_seen_at: i64,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Serialize, FromRow)]
#[serde(rename_all = "camelCase")]
pub struct ExportedDevice {
    pub first_seen_at: i64,
    pub last_seen_at: i64,
}

#[derive(Debug, Serialize, FromRow)]
#[serde(rename_all = "camelCase")]
pub struct ExportedArticle {
    pub slug: String,
    pub title: String,
    pub description: String,
    pub body: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Serialize, FromRow)]
#[serde(rename_all = "camelCase")]
pub struct ExportedComment {
    pub article: String,
    pub body: String,
    pub created_at: i64,
}

#[derive(Debug, Serialize, FromRow)]
#[serde(rename_all = "camelCase")]
pub struct ExportedEvent {
    pub at: i64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: String,
}

/// The rows of an export (the account itself is read as a [`super::UserRow`]).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportRows {
    pub created_at: i64,
    pub last_login_at: Option<i64>,
    pub mfa_enabled: bool,
    pub sessions: Vec<ExportedSession>,
    pub devices: Vec<ExportedDevice>,
    pub articles: Vec<ExportedArticle>,
    pub comments: Vec<ExportedComment>,
    pub following: Vec<String>,
    pub favorites: Vec<String>,
    pub audit_events: Vec<ExportedEvent>,
}

impl Store {
    pub async fn export_rows(&self, user_id: i64) -> Result<ExportRows, sqlx::Error> {
        let account = "SELECT created_at, last_login_at FROM users WHERE id = $1";
        let sessions = "SELECT created_at, last_seen_at, client_ip, user_agent, revoked_at
                        FROM sessions WHERE user_id = $1 ORDER BY created_at LIMIT $2";
        let devices = "SELECT first_seen_at, last_seen_at FROM known_devices
                       WHERE user_id = $1 ORDER BY first_seen_at LIMIT $2";
        let articles = "SELECT slug, title, description, body, created_at, updated_at
                        FROM articles WHERE author_id = $1 ORDER BY created_at LIMIT $2";
        let comments = "SELECT a.slug AS article, c.body, c.created_at
                        FROM comments c JOIN articles a ON a.id = c.article_id
                        WHERE c.author_id = $1 ORDER BY c.created_at LIMIT $2";
        let following = "SELECT u.username FROM follows f JOIN users u ON u.id = f.followee_id
                         WHERE f.follower_id = $1 ORDER BY u.username_key LIMIT $2";
        let favorites = "SELECT a.slug FROM favorites f JOIN articles a ON a.id = f.article_id
                         WHERE f.user_id = $1 ORDER BY a.slug LIMIT $2";
        let events = "SELECT at, event_type, client_ip, user_agent, detail FROM audit_log
                      WHERE subject_id = $1 ORDER BY seq LIMIT $2";
        let (created_at, last_login_at): (i64, Option<i64>) = on_pool!(self, |pool| {
            sqlx::query_as(account).bind(user_id).fetch_one(pool).await
        })?;
        macro_rules! list {
            ($sql:expr) => {
                on_pool!(self, |pool| sqlx::query_as($sql)
                    .bind(user_id)
                    .bind(EXPORT_LIMIT)
                    .fetch_all(pool)
                    .await)?
            };
        }
        let following: Vec<(String,)> = list!(following);
        let favorites: Vec<(String,)> = list!(favorites);
        Ok(ExportRows {
            created_at,
            last_login_at,
            mfa_enabled: self.mfa_enabled(user_id).await?,
            sessions: list!(sessions),
            devices: list!(devices),
            articles: list!(articles),
            comments: list!(comments),
            following: following.into_iter().map(|(name,)| name).collect(),
            favorites: favorites.into_iter().map(|(slug,)| slug).collect(),
            audit_events: list!(events),
        })
    }
}
