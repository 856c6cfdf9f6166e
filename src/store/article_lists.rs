//! The article lists (`GET /api/articles` with its filters, and the feed), built so their
//! cost does not grow with the articles stored.
//!
//! Each list is two steps. First one page of ids, read off the index that serves the filter
//! in newest-first order (`articles_newest`, `articles_author_newest`, `article_tags_newest`,
//! `favorites_user_newest`, migration 0010): the query is written for the filters given, so
//! no catch-all `$n IS NULL OR …` hides the index from the planner, and OFFSET or a keyset
//! position skips index entries only. Then the rows of that page alone are enriched (tags,
//! favorites count, favorited, following). `articlesCount` comes from a maintained count
//! (`article_totals`, `tag_counts`, `user_totals`) or, for combined filters, an index range.

use std::collections::HashMap;

use sqlx::AssertSqlSafe;

use super::content::ArticleRow;
use super::{Pool, Store, matchable, on_pool};

#[cfg(test)]
mod plans;

/// Filters for the article list; all compare exactly (no LIKE, so `%` and `_` match only
/// themselves).
#[derive(Debug, Default, Clone)]
pub struct ArticleFilter {
    pub tag: Option<String>,
    pub author_key: Option<String>,
    pub favorited_by_key: Option<String>,
}

/// Which list to read.
#[derive(Debug, Clone, Copy)]
pub enum ArticleList<'a> {
    /// Every article, or those the filter keeps.
    All(&'a ArticleFilter),
    /// Articles by authors this user follows.
    Feed { follower: i64 },
}

/// The public identity of an article in list order: where a keyset page resumes. It holds
/// the slug, never the internal id; the store finds the id again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPosition {
    pub created_at: i64,
    pub slug: String,
}

/// Where a page starts.
#[derive(Debug, Clone, Copy)]
pub enum PageStart<'a> {
    /// Skip this many articles (RealWorld's `offset`; the caller caps it).
    Offset(i64),
    /// Just after this article. If it was deleted or renamed since, the page resumes after
    /// its creation time, so articles created in that same millisecond may repeat (never
    /// skip).
    After(&'a ListPosition),
}

/// One page of a list.
#[derive(Debug)]
pub struct ArticlePage {
    pub rows: Vec<ArticleRow>,
    /// How many articles the list holds in all.
    pub total: i64,
    /// The last row's position when more follow it.
    pub next: Option<ListPosition>,
}

impl ArticlePage {
    fn empty() -> Self {
        Self {
            rows: Vec::new(),
            total: 0,
            next: None,
        }
    }
}

/// A value bound to a placeholder.
#[derive(Debug, Clone)]
enum Bind {
    Text(String),
    Int(i64),
    /// The viewer's user id, NULL when anonymous.
    Viewer(Option<i64>),
}

/// SQL text with its arguments, placeholders numbered as they are added. Only fixed
/// fragments and placeholder numbers are spliced: no input ever becomes SQL text.
#[derive(Debug, Default)]
struct Sql {
    text: String,
    binds: Vec<Bind>,
}

impl Sql {
    fn param(&mut self, value: Bind) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }
}

/// Runs `$sql` (an [`Sql`]) as `$query` (`sqlx::query_as` or `query_scalar`) with its
/// arguments bound in order, on whichever engine backs the store.
macro_rules! run_sql {
    ($store:expr, $sql:expr, $query:path, $fetch:ident) => {
        on_pool!($store, |pool| {
            let mut query = $query(AssertSqlSafe($sql.text.as_str()));
            for bind in &$sql.binds {
                query = match bind {
                    Bind::Text(text) => query.bind(text.as_str()),
                    Bind::Int(number) => query.bind(*number),
                    Bind::Viewer(viewer) => query.bind(*viewer),
                };
            }
            query.$fetch(pool).await
        })
    };
}

/// The index range a list reads, in newest-first order: its table (aliased `d`), the
/// columns naming the article and its creation time, and the conditions that select it.
struct Source {
    table: &'static str,
    id: &'static str,
    created: &'static str,
    conditions: Vec<String>,
}

const USER_BY_KEY: &str = "(SELECT id FROM users WHERE username_key = ";

impl Source {
    /// The source of `list`, with its placeholders in `sql`. The most selective filter
    /// drives (one user's favorites or articles, then a tag); the others are checked per
    /// row by primary key.
    fn of(list: ArticleList<'_>, sql: &mut Sql) -> Self {
        let filter = match list {
            ArticleList::Feed { follower } => {
                let follower = sql.param(Bind::Int(follower));
                // Read newest first off `articles_newest`, each row checked against the
                // follows primary key, so the page stops after `limit` matches; an IN list
                // would read every followed author's articles and sort them all.
                return Self::articles(vec![format!(
                    "EXISTS (SELECT 1 FROM follows fo WHERE fo.follower_id = {follower} AND fo.followee_id = d.author_id)"
                )]);
            }
            ArticleList::All(filter) => filter,
        };
        let mut source = if let Some(key) = &filter.favorited_by_key {
            let key = sql.param(Bind::Text(key.clone()));
            Self {
                table: "favorites",
                id: "d.article_id",
                created: "d.article_created_at",
                conditions: vec![format!("d.user_id = {USER_BY_KEY}{key})")],
            }
        } else if let Some(key) = &filter.author_key {
            let key = sql.param(Bind::Text(key.clone()));
            Self::articles(vec![format!("d.author_id = {USER_BY_KEY}{key})")])
        } else if let Some(tag) = &filter.tag {
            let tag = sql.param(Bind::Text(tag.clone()));
            Self {
                table: "article_tags",
                id: "d.article_id",
                created: "d.article_created_at",
                conditions: vec![format!("d.tag = {tag}")],
            }
        } else {
            Self::articles(Vec::new())
        };
        let id = source.id;
        if let Some(key) = filter
            .author_key
            .as_ref()
            .filter(|_| source.table != "articles")
        {
            let key = sql.param(Bind::Text(key.clone()));
            source.conditions.push(format!(
                "EXISTS (SELECT 1 FROM articles x WHERE x.id = {id} AND x.author_id = {USER_BY_KEY}{key}))"
            ));
        }
        if let Some(tag) = filter
            .tag
            .as_ref()
            .filter(|_| source.table != "article_tags")
        {
            let tag = sql.param(Bind::Text(tag.clone()));
            source.conditions.push(format!(
                "EXISTS (SELECT 1 FROM article_tags t WHERE t.article_id = {id} AND t.tag = {tag})"
            ));
        }
        source
    }

    fn articles(conditions: Vec<String>) -> Self {
        Self {
            table: "articles",
            id: "d.id",
            created: "d.created_at",
            conditions,
        }
    }

    fn sql_from_and_where(&self, extra: Option<String>) -> String {
        let conditions: Vec<&str> = self
            .conditions
            .iter()
            .map(String::as_str)
            .chain(extra.as_deref())
            .collect();
        let mut text = format!(" FROM {} d", self.table);
        if !conditions.is_empty() {
            text.push_str(" WHERE ");
            text.push_str(&conditions.join(" AND "));
        }
        text
    }
}

/// Where the page begins, as the id query needs it.
enum Start {
    Offset(i64),
    /// Strictly older than `(created_at, id)` in list order.
    Before(i64, i64),
}

/// The query for one page of `(id, created_at)`, newest first: `limit` rows from `start`.
fn page_query(list: ArticleList<'_>, start: &Start, limit: i64) -> Sql {
    let mut sql = Sql::default();
    let source = Source::of(list, &mut sql);
    let (id, created) = (source.id, source.created);
    let keyset = match *start {
        Start::Before(at, before_id) => {
            let (at, before_id) = (sql.param(Bind::Int(at)), sql.param(Bind::Int(before_id)));
            Some(format!("({created}, {id}) < ({at}, {before_id})"))
        }
        Start::Offset(_) => None,
    };
    let from = source.sql_from_and_where(keyset);
    let limit = sql.param(Bind::Int(limit));
    let offset = match *start {
        Start::Offset(offset) => format!(" OFFSET {}", sql.param(Bind::Int(offset))),
        Start::Before(..) => String::new(),
    };
    sql.text = format!(
        "SELECT {id} AS id, {created} AS created_at{from} ORDER BY {created} DESC, {id} DESC LIMIT {limit}{offset}"
    );
    sql
}

/// How many articles `list` holds: a maintained count when one exists (`article_totals`,
/// `tag_counts`, `user_totals`), else the index range (filters combined).
fn count_query(list: ArticleList<'_>) -> Sql {
    let mut sql = Sql::default();
    if let ArticleList::Feed { follower } = list {
        // The followed authors' article counts: one row per author followed.
        let follower = sql.param(Bind::Int(follower));
        sql.text = format!(
            "SELECT CAST(COALESCE(SUM(t.articles), 0) AS BIGINT) FROM follows fo JOIN user_totals t ON t.user_id = fo.followee_id WHERE fo.follower_id = {follower}"
        );
        return sql;
    }
    if let ArticleList::All(filter) = list {
        let user_total = |sql: &mut Sql, column: &str, key: &String| {
            let key = sql.param(Bind::Text(key.clone()));
            format!(
                "SELECT COALESCE((SELECT t.{column} FROM user_totals t WHERE t.user_id = {USER_BY_KEY}{key})), 0)"
            )
        };
        match (&filter.tag, &filter.author_key, &filter.favorited_by_key) {
            (None, None, None) => {
                sql.text = "SELECT articles FROM article_totals WHERE id = 1".into();
                return sql;
            }
            (Some(tag), None, None) => {
                let tag = sql.param(Bind::Text(tag.clone()));
                sql.text = format!(
                    "SELECT COALESCE((SELECT articles FROM tag_counts WHERE tag = {tag}), 0)"
                );
                return sql;
            }
            (None, Some(author), None) => {
                sql.text = user_total(&mut sql, "articles", author);
                return sql;
            }
            (None, None, Some(favorited_by)) => {
                sql.text = user_total(&mut sql, "favorites", favorited_by);
                return sql;
            }
            _ => {}
        }
    }
    let source = Source::of(list, &mut sql);
    sql.text = format!("SELECT COUNT(*){}", source.sql_from_and_where(None));
    sql
}

/// The full rows of the articles `ids` names (list form: no body), in any order. `$1` is
/// the viewer.
///
/// The page's ids drive the join (`CROSS JOIN` fixes the order of the loops in SQLite), so
/// each article is found by its primary key whatever the planner's statistics say. With
/// `a.id IN (…)` instead, statistics taken while the database was small (an `ANALYZE` at 20
/// articles, kept by a long-lived connection) made SQLite scan the whole `articles` table
/// for every page once it held 100,000.
fn rows_query(pool: &Pool, viewer: Option<i64>, ids: &[i64]) -> Sql {
    let mut sql = Sql::default();
    let viewer = sql.param(Bind::Viewer(viewer));
    debug_assert_eq!(viewer, "$1");
    let page: Vec<String> = ids
        .iter()
        .map(|id| format!("({})", sql.param(Bind::Int(*id))))
        .collect();
    sql.text = format!(
        "WITH page(id) AS (VALUES {}) {} WHERE a.id = p.id",
        page.join(", "),
        super::content::article_select(pool, false, "page p CROSS JOIN articles a"),
    );
    sql
}

impl Store {
    /// One page of a list, newest first, with how many articles it holds and where the next
    /// page starts.
    pub async fn list_articles(
        &self,
        viewer: Option<i64>,
        list: ArticleList<'_>,
        start: PageStart<'_>,
        limit: i64,
    ) -> Result<ArticlePage, sqlx::Error> {
        if let ArticleList::All(filter) = list {
            let keys = [&filter.tag, &filter.author_key, &filter.favorited_by_key];
            if !keys.into_iter().flatten().all(|key| matchable(key)) {
                return Ok(ArticlePage::empty());
            }
        }
        let start = match start {
            PageStart::Offset(offset) => Start::Offset(offset),
            PageStart::After(position) => self.resume_at(position).await?,
        };
        // One more than the page: whether a next page exists, without counting.
        let page = page_query(list, &start, limit.saturating_add(1));
        let mut ids: Vec<(i64, i64)> = run_sql!(self, page, sqlx::query_as, fetch_all)?;
        let more = usize::try_from(limit).is_ok_and(|limit| ids.len() > limit);
        ids.truncate(usize::try_from(limit).unwrap_or(0));
        let count = count_query(list);
        let total: i64 = run_sql!(self, count, sqlx::query_scalar, fetch_one)?;
        let rows = self.rows_in_order(viewer, &ids).await?;
        let next = rows.last().filter(|_| more).map(|row| ListPosition {
            created_at: row.created_at,
            slug: row.slug.clone(),
        });
        Ok(ArticlePage { rows, total, next })
    }

    /// The keyset start just after `position`'s article.
    async fn resume_at(&self, position: &ListPosition) -> Result<Start, sqlx::Error> {
        if !matchable(&position.slug) {
            return Ok(Start::Before(position.created_at, i64::MAX));
        }
        let sql = "SELECT id FROM articles WHERE slug = $1 AND created_at = $2";
        let id: Option<i64> = on_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(&position.slug)
            .bind(position.created_at)
            .fetch_optional(pool)
            .await)?;
        Ok(Start::Before(position.created_at, id.unwrap_or(i64::MAX)))
    }

    /// The rows of `ids`, enriched, in the order given (an article deleted meanwhile is
    /// left out).
    async fn rows_in_order(
        &self,
        viewer: Option<i64>,
        ids: &[(i64, i64)],
    ) -> Result<Vec<ArticleRow>, sqlx::Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let only_ids: Vec<i64> = ids.iter().map(|(id, _)| *id).collect();
        let sql = rows_query(&self.pool, viewer, &only_ids);
        let rows: Vec<ArticleRow> = run_sql!(self, sql, sqlx::query_as, fetch_all)?;
        let mut by_id: HashMap<i64, ArticleRow> = rows.into_iter().map(|r| (r.id, r)).collect();
        Ok(only_ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }
}
