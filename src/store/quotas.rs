//! What the per-user quotas count: a user's articles, and their recent writes. Each query
//! reads one user's rows through an index on `(author_id, time)` (migration 0006).

use super::{Store, on_pool};
use crate::clock::UnixMillis;

/// A user's writes inside a window: how many (or how many bytes), and when the oldest of
/// them was written (when the window starts to free up).
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct RecentWrites {
    pub amount: i64,
    pub oldest: Option<i64>,
}

impl Store {
    /// How many articles `author_id` has.
    pub async fn article_count(&self, author_id: i64) -> Result<i64, sqlx::Error> {
        let sql = "SELECT COUNT(*) FROM articles WHERE author_id = $1";
        on_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(author_id)
            .fetch_one(pool)
            .await)
    }

    /// The comments `author_id` wrote after `since`.
    pub async fn comments_since(
        &self,
        author_id: i64,
        since: UnixMillis,
    ) -> Result<RecentWrites, sqlx::Error> {
        let sql = "SELECT CAST(COUNT(*) AS BIGINT) AS amount, MIN(created_at) AS oldest
                   FROM comments WHERE author_id = $1 AND created_at > $2";
        on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(author_id)
            .bind(since)
            .fetch_one(pool)
            .await)
    }

    /// The bytes of Markdown `author_id` stored after `since`: article bodies written
    /// or edited since then (at their current size) and comment bodies.
    pub async fn body_bytes_since(
        &self,
        author_id: i64,
        since: UnixMillis,
    ) -> Result<RecentWrites, sqlx::Error> {
        let sql =
            "SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT) AS amount, MIN(at) AS oldest FROM (
                       SELECT octet_length(body) AS bytes, updated_at AS at FROM articles
                        WHERE author_id = $1 AND updated_at > $2
                       UNION ALL
                       SELECT octet_length(body), created_at FROM comments
                        WHERE author_id = $1 AND created_at > $2
                   ) AS recent";
        on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(author_id)
            .bind(since)
            .fetch_one(pool)
            .await)
    }
}
