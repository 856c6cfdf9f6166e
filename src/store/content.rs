//! Articles, tags, favorites and comments.

use sqlx::{AssertSqlSafe, FromRow};

use super::{Pool, Store, execute, matchable, on_pool};
use crate::clock::UnixMillis;

/// Tags travel from the database as one string joined by the ASCII unit separator, which
/// tags can never contain (control characters are refused at the edge).
const TAG_SEPARATOR: char = '\u{1f}';

#[derive(Debug, Clone, FromRow)]
pub struct ArticleRow {
    pub id: i64,
    pub slug: String,
    pub title: String,
    pub description: String,
    pub body: String,
    /// The body's sanitized HTML; NULL for a row written before it was stored.
    pub body_html: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub tags: Option<String>,
    pub favorites_count: i64,
    pub favorited: i64,
    pub author_id: i64,
    pub author_username: String,
    pub author_bio: Option<String>,
    pub author_image: Option<String>,
    pub author_following: i64,
}

impl ArticleRow {
    /// The tag list, sorted alphabetically.
    pub fn tag_list(&self) -> Vec<String> {
        let mut tags: Vec<String> = self
            .tags
            .as_deref()
            .map(|joined| joined.split(TAG_SEPARATOR).map(str::to_owned).collect())
            .unwrap_or_default();
        tags.sort();
        tags
    }
}

#[derive(Debug, Clone, FromRow)]
pub struct CommentRow {
    pub id: i64,
    pub body: String,
    /// The body's sanitized HTML; NULL for a row written before it was stored.
    pub body_html: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub author_id: i64,
    pub author_username: String,
    pub author_bio: Option<String>,
    pub author_image: Option<String>,
    pub author_following: i64,
}

pub struct NewArticle<'a> {
    pub slug: &'a str,
    pub title: &'a str,
    pub description: &'a str,
    pub body: &'a str,
    pub body_html: &'a str,
    pub tags: &'a [String],
    pub author_id: i64,
    pub now: UnixMillis,
}

#[derive(Default)]
pub struct ArticleChanges {
    pub slug: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    /// Given with `body`, always: the HTML rendered from it.
    pub body: Option<(String, String)>,
    pub tags: Option<Vec<String>>,
}

/// The article queries, with the engine's string aggregate spliced in once at start.
pub(super) struct ArticleQueries {
    by_slug: String,
}

/// The article columns, its author and the viewer's flags, `FROM articles a JOIN users u`.
/// `$1` is always the viewer's user id (NULL when anonymous). Without the body (`''`, no
/// HTML) for list pages, which never show it.
pub(super) fn article_select(pool: &Pool, with_body: bool, from: &str) -> String {
    let tags_aggregate = match pool {
        Pool::Sqlite(_) => {
            "SELECT group_concat(tag, char(31)) FROM article_tags WHERE article_id = a.id"
        }
        Pool::Postgres(_) => {
            "SELECT string_agg(tag, chr(31)) FROM article_tags WHERE article_id = a.id"
        }
    };
    let body = if with_body {
        "a.body, a.body_html"
    } else {
        "'' AS body, CAST(NULL AS TEXT) AS body_html"
    };
    format!(
        "SELECT a.id, a.slug, a.title, a.description, {body}, a.created_at, a.updated_at,
           ({tags_aggregate}) AS tags,
           CAST((SELECT COUNT(*) FROM favorites f WHERE f.article_id = a.id) AS BIGINT) AS favorites_count,
           CAST(CASE WHEN EXISTS (SELECT 1 FROM favorites f WHERE f.article_id = a.id AND f.user_id = $1)
                THEN 1 ELSE 0 END AS BIGINT) AS favorited,
           u.id AS author_id, u.username AS author_username, u.bio AS author_bio, u.image AS author_image,
           CAST(CASE WHEN EXISTS (SELECT 1 FROM follows fo WHERE fo.follower_id = $1 AND fo.followee_id = u.id)
                THEN 1 ELSE 0 END AS BIGINT) AS author_following
         FROM {from} JOIN users u ON u.id = a.author_id"
    )
}

impl ArticleQueries {
    pub(super) fn new(pool: &Pool) -> Self {
        Self {
            by_slug: format!(
                "{} WHERE a.slug = $2",
                article_select(pool, true, "articles a")
            ),
        }
    }
}

/// A comment with its author as `$1` (the viewer, NULL when anonymous) sees them.
const COMMENT_SELECT: &str = "SELECT c.id, c.body, c.body_html, c.created_at, c.updated_at,
       u.id AS author_id, u.username AS author_username, u.bio AS author_bio, u.image AS author_image,
       CAST(CASE WHEN EXISTS (SELECT 1 FROM follows fo WHERE fo.follower_id = $1 AND fo.followee_id = u.id)
            THEN 1 ELSE 0 END AS BIGINT) AS author_following
     FROM comments c JOIN users u ON u.id = c.author_id";

impl Store {
    pub async fn article_by_slug(
        &self,
        viewer: Option<i64>,
        slug: &str,
    ) -> Result<Option<ArticleRow>, sqlx::Error> {
        if !matchable(slug) {
            return Ok(None);
        }
        let sql = &self.queries.by_slug;
        on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(viewer)
            .bind(slug)
            .fetch_optional(pool)
            .await)
    }

    /// Inserts an article with its tags in one transaction.
    pub async fn insert_article(&self, new: NewArticle<'_>) -> Result<i64, sqlx::Error> {
        let sql = "INSERT INTO articles (slug, title, description, body, body_html, author_id, created_at, updated_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id";
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let id: i64 = sqlx::query_scalar(sql)
                .bind(new.slug)
                .bind(new.title)
                .bind(new.description)
                .bind(new.body)
                .bind(new.body_html)
                .bind(new.author_id)
                .bind(new.now)
                .fetch_one(&mut *tx)
                .await?;
            for tag in new.tags {
                sqlx::query("INSERT INTO article_tags (article_id, tag) VALUES ($1, $2)")
                    .bind(id)
                    .bind(tag)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(id)
        })
    }

    /// Applies a partial update; replaces the tag set when one is given.
    pub async fn update_article(
        &self,
        id: i64,
        changes: &ArticleChanges,
        now: UnixMillis,
    ) -> Result<(), sqlx::Error> {
        let sql = "UPDATE articles SET slug = COALESCE($2, slug), title = COALESCE($3, title),
                     description = COALESCE($4, description), body = COALESCE($5, body),
                     body_html = COALESCE($7, body_html), updated_at = $6
                   WHERE id = $1";
        let (body, body_html) = match &changes.body {
            Some((body, html)) => (Some(body), Some(html)),
            None => (None, None),
        };
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(sql)
                .bind(id)
                .bind(&changes.slug)
                .bind(&changes.title)
                .bind(&changes.description)
                .bind(body)
                .bind(now)
                .bind(body_html)
                .execute(&mut *tx)
                .await?;
            if let Some(tags) = &changes.tags {
                sqlx::query("DELETE FROM article_tags WHERE article_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                for tag in tags {
                    sqlx::query("INSERT INTO article_tags (article_id, tag) VALUES ($1, $2)")
                        .bind(id)
                        .bind(tag)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Stores the HTML of a row written before HTML was stored, unless a write has stored
    /// newer HTML meanwhile.
    pub async fn backfill_article_html(&self, id: i64, html: &str) -> Result<(), sqlx::Error> {
        let sql = "UPDATE articles SET body_html = $2 WHERE id = $1 AND body_html IS NULL";
        execute!(self, sql, id, html)
    }

    pub async fn delete_article(&self, id: i64) -> Result<(), sqlx::Error> {
        execute!(self, "DELETE FROM articles WHERE id = $1", id)?;
        Ok(())
    }

    pub async fn favorite(&self, user_id: i64, article_id: i64) -> Result<(), sqlx::Error> {
        let sql =
            "INSERT INTO favorites (user_id, article_id) VALUES ($1, $2) ON CONFLICT DO NOTHING";
        execute!(self, sql, user_id, article_id)?;
        Ok(())
    }

    pub async fn unfavorite(&self, user_id: i64, article_id: i64) -> Result<(), sqlx::Error> {
        let sql = "DELETE FROM favorites WHERE user_id = $1 AND article_id = $2";
        execute!(self, sql, user_id, article_id)?;
        Ok(())
    }

    pub async fn insert_comment(
        &self,
        article_id: i64,
        author_id: i64,
        (body, body_html): (&str, &str),
        now: UnixMillis,
    ) -> Result<i64, sqlx::Error> {
        let sql =
            "INSERT INTO comments (article_id, author_id, body, body_html, created_at, updated_at)
                   VALUES ($1, $2, $3, $4, $5, $5) RETURNING id";
        on_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(article_id)
            .bind(author_id)
            .bind(body)
            .bind(body_html)
            .bind(now)
            .fetch_one(pool)
            .await)
    }

    /// One page of an article's comments, oldest first, and how many it has in all.
    pub async fn comments(
        &self,
        viewer: Option<i64>,
        article_id: i64,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<CommentRow>, i64), sqlx::Error> {
        let page = format!(
            "{COMMENT_SELECT} WHERE c.article_id = $2 ORDER BY c.created_at, c.id LIMIT $3 OFFSET $4"
        );
        let count = "SELECT COUNT(*) FROM comments WHERE article_id = $1";
        on_pool!(self, |pool| {
            let rows = sqlx::query_as(AssertSqlSafe(page.as_str()))
                .bind(viewer)
                .bind(article_id)
                .bind(limit)
                .bind(offset)
                .fetch_all(pool)
                .await?;
            let total: i64 = sqlx::query_scalar(count)
                .bind(article_id)
                .fetch_one(pool)
                .await?;
            Ok((rows, total))
        })
    }

    /// One comment, if it belongs to this article.
    pub async fn comment(
        &self,
        viewer: Option<i64>,
        article_id: i64,
        id: i64,
    ) -> Result<Option<CommentRow>, sqlx::Error> {
        let sql = format!("{COMMENT_SELECT} WHERE c.article_id = $2 AND c.id = $3");
        on_pool!(self, |pool| sqlx::query_as(AssertSqlSafe(sql.as_str()))
            .bind(viewer)
            .bind(article_id)
            .bind(id)
            .fetch_optional(pool)
            .await)
    }

    /// Stores the HTML of a comment written before HTML was stored.
    pub async fn backfill_comment_html(&self, id: i64, html: &str) -> Result<(), sqlx::Error> {
        let sql = "UPDATE comments SET body_html = $2 WHERE id = $1 AND body_html IS NULL";
        execute!(self, sql, id, html)
    }

    pub async fn delete_comment(&self, comment_id: i64) -> Result<(), sqlx::Error> {
        execute!(self, "DELETE FROM comments WHERE id = $1", comment_id)?;
        Ok(())
    }

    /// The `limit` tags most articles use, ties by name. Read off the `tag_counts` index
    /// (kept by triggers on `article_tags`), so the cost does not grow with the tags stored.
    pub async fn popular_tags(&self, limit: i64) -> Result<Vec<String>, sqlx::Error> {
        let sql = "SELECT tag FROM tag_counts ORDER BY articles DESC, tag LIMIT $1";
        on_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(limit)
            .fetch_all(pool)
            .await)
    }
}
