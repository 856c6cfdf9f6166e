//! Per-user content quotas.
//!
//! Guards against one account filling the disk within the rate limits (an outside review
//! stored about 1 GB of articles per hour from one account): a user holds at most so many
//! articles, writes at most so many comments and so many bytes of Markdown a day, and tags
//! an article with at most so many tags. Everyone is held to them, administrators and
//! editors included: a stolen admin token must not be a way round them.
//!
//! The daily budgets are rolling windows of 24 hours counted from the rows themselves, so
//! they survive restarts and hold across instances. Check and write are two steps, so
//! requests racing each other can overshoot a quota by at most the number of them in flight.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, UnixMillis};
use crate::store::{RecentWrites, Store};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// The quotas, from `AERIE_QUOTA_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaSettings {
    /// Articles one user may hold.
    pub articles_per_user: i64,
    /// Comments one user may write in 24 hours.
    pub comments_per_day: i64,
    /// Tags on one article (at most the domain's own ceiling of 20).
    pub tags_per_article: usize,
    /// Bytes of article and comment bodies one user may store in 24 hours.
    pub body_bytes_per_day: i64,
}

/// Which quota refused a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    ArticlesPerUser,
    CommentsPerDay,
    TagsPerArticle,
    BodyBytesPerDay,
}

impl Quota {
    pub fn describe(self) -> &'static str {
        match self {
            Quota::ArticlesPerUser => "articles per user",
            Quota::CommentsPerDay => "comments per day",
            Quota::TagsPerArticle => "tags per article",
            Quota::BodyBytesPerDay => "bytes of bodies per day",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    /// The write would exceed `quota`; a daily budget frees up after `retry_after`.
    #[error("quota exceeded: {} (limit {limit})", quota.describe())]
    Exceeded {
        quota: Quota,
        limit: i64,
        retry_after: Option<Duration>,
    },
    #[error(transparent)]
    Store(#[from] sqlx::Error),
}

/// Checks writes against the quotas. Cheap to clone.
#[derive(Clone)]
pub struct Quotas {
    store: Store,
    clock: Arc<dyn Clock>,
    settings: QuotaSettings,
}

impl Quotas {
    pub fn new(store: Store, clock: Arc<dyn Clock>, settings: QuotaSettings) -> Self {
        Self {
            store,
            clock,
            settings,
        }
    }

    pub fn settings(&self) -> &QuotaSettings {
        &self.settings
    }

    /// An article's tag list, counted as sent (duplicates too: the published `maxItems`).
    pub fn check_tags(&self, tags: usize) -> Result<(), QuotaError> {
        if tags > self.settings.tags_per_article {
            return Err(QuotaError::Exceeded {
                quota: Quota::TagsPerArticle,
                limit: i64::try_from(self.settings.tags_per_article).unwrap_or(i64::MAX),
                retry_after: None,
            });
        }
        Ok(())
    }

    /// A new article of `body_bytes` by `author_id`.
    pub async fn check_new_article(
        &self,
        author_id: i64,
        body_bytes: usize,
    ) -> Result<(), QuotaError> {
        let limit = self.settings.articles_per_user;
        if self.store.article_count(author_id).await? >= limit {
            return Err(QuotaError::Exceeded {
                quota: Quota::ArticlesPerUser,
                limit,
                retry_after: None,
            });
        }
        self.check_body_bytes(author_id, body_bytes).await
    }

    /// A new comment of `body_bytes` by `author_id`.
    pub async fn check_new_comment(
        &self,
        author_id: i64,
        body_bytes: usize,
    ) -> Result<(), QuotaError> {
        let now = self.clock.now();
        let written = self
            .store
            .comments_since(author_id, now - millis(DAY))
            .await?;
        within_day(
            Quota::CommentsPerDay,
            self.settings.comments_per_day,
            written,
            1,
            now,
        )?;
        self.check_body_bytes(author_id, body_bytes).await
    }

    /// `body_bytes` more of Markdown written by `user_id` (a new body or an edited one).
    pub async fn check_body_bytes(
        &self,
        user_id: i64,
        body_bytes: usize,
    ) -> Result<(), QuotaError> {
        let now = self.clock.now();
        let written = self
            .store
            .body_bytes_since(user_id, now - millis(DAY))
            .await?;
        let adding = i64::try_from(body_bytes).unwrap_or(i64::MAX);
        within_day(
            Quota::BodyBytesPerDay,
            self.settings.body_bytes_per_day,
            written,
            adding,
            now,
        )
    }
}

/// Refuses `adding` more when it takes the day's `written` past `limit`; the refusal says
/// when the oldest write leaves the window.
fn within_day(
    quota: Quota,
    limit: i64,
    written: RecentWrites,
    adding: i64,
    now: UnixMillis,
) -> Result<(), QuotaError> {
    if written.amount.saturating_add(adding) <= limit {
        return Ok(());
    }
    let frees_at = written.oldest.unwrap_or(now).saturating_add(millis(DAY));
    let wait = u64::try_from(frees_at.saturating_sub(now)).unwrap_or(0);
    Err(QuotaError::Exceeded {
        quota,
        limit,
        retry_after: Some(Duration::from_millis(wait)),
    })
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
