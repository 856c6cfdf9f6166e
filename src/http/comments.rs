//! Comments on articles (`/api/articles/:slug/comments`).
//!
//! Guards against deleting someone else's comment (only its author, the article's author or
//! a moderator may) and against reaching a comment through another article's slug (ids are
//! scoped to their article: the wrong pair is a 404).

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::bodies;
use super::error::{Error, Result};
use super::extract::{AuthUser, Json, MaybeAuthUser};
use super::query::{PAGE, Query};
use super::views::Comment;
use crate::domain::{CommentBody, FieldErrors, Permission};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/articles/{slug}/comments",
            get(list_comments).post(add_comment),
        )
        .route("/api/articles/{slug}/comments/{id}", delete(delete_comment))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CommentWrapper {
    #[serde(deserialize_with = "super::extract::object")]
    comment: NewComment,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewComment {
    /// Markdown source.
    #[schema(value_type = super::openapi::text::CommentBodyText, required = true, example = "Thank you so much!")]
    body: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct CommentResponse {
    comment: Comment,
}

/// Comments per page when the client names no `limit` (RealWorld clients never do), and the
/// most one page may hold: a long thread is served in pages, never all at once.
const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 500;

/// A page of comments, oldest first; `commentsCount` counts all of the article's comments,
/// not just this page.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct CommentsResponse {
    comments: Vec<Comment>,
    comments_count: i64,
}

/// The comment as the response carries it, with its stored HTML.
async fn present(state: &AppState, mut row: crate::store::CommentRow) -> Result<Comment> {
    let html = bodies::comment_html(state, &mut row).await?;
    Ok(Comment::new(row, html))
}

/// The article's id and author, or 404.
async fn article(state: &AppState, slug: &str) -> Result<(i64, i64)> {
    let row = state
        .store
        .article_by_slug(None, slug)
        .await?
        .ok_or(Error::NotFound("article"))?;
    Ok((row.id, row.author_id))
}

#[utoipa::path(get, path = "/api/articles/{slug}/comments", tag = "comments",
    params(
        ("slug" = String, Path, example = "how-to-train-your-dragon"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Page size (default 100)"),
        ("offset" = Option<i64>, Query, minimum = 0, maximum = 2147483647, description = "Comments to skip"),
    ),
    responses(
        (status = 200, description = "A page of the article's comments, oldest first, and how many it has in all; a token is optional", body = CommentsResponse),
        (status = 401, description = "A token was sent but is not valid"),
    ))]
async fn list_comments(
    State(state): State<AppState>,
    viewer: MaybeAuthUser,
    Path(slug): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<axum::Json<CommentsResponse>> {
    let (limit, offset) = Query::parse(raw.as_deref(), &[PAGE])?.page_of(DEFAULT_PAGE, MAX_PAGE)?;
    let (article_id, _) = article(&state, &slug).await?;
    let (rows, total) = state
        .store
        .comments(viewer.user_id(), article_id, limit, offset)
        .await?;
    let mut comments = Vec::with_capacity(rows.len());
    for row in rows {
        comments.push(present(&state, row).await?);
    }
    Ok(axum::Json(CommentsResponse {
        comments,
        comments_count: total,
    }))
}

#[utoipa::path(post, path = "/api/articles/{slug}/comments", tag = "comments",
    params(("slug" = String, Path, example = "how-to-train-your-dragon")),
    request_body = CommentWrapper,
    responses((status = 200, description = "The new comment", body = CommentResponse)))]
async fn add_comment(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(slug): Path<String>,
    Json(CommentWrapper { comment }): Json<CommentWrapper>,
) -> Result<axum::Json<CommentResponse>> {
    let mut errors = FieldErrors::default();
    let body = errors.required("body", comment.body, CommentBody::parse);
    errors.finish()?;
    let body = body.ok_or_else(|| Error::Internal("validated body missing".into()))?;
    let (article_id, _) = article(&state, &slug).await?;
    state
        .quotas
        .check_new_comment(auth.user_id, body.as_str().len())
        .await?;
    let html = bodies::render(&state, body.as_str()).await?;
    let id = state
        .store
        .insert_comment(
            article_id,
            auth.user_id,
            (body.as_str(), &html),
            state.clock.now(),
        )
        .await?;
    let row = state
        .store
        .comment(Some(auth.user_id), article_id, id)
        .await?
        .ok_or(Error::NotFound("comment"))?;
    Ok(axum::Json(CommentResponse {
        comment: Comment::new(row, html),
    }))
}

#[utoipa::path(delete, path = "/api/articles/{slug}/comments/{id}", tag = "comments",
    params(("slug" = String, Path, example = "how-to-train-your-dragon"), ("id" = i64, Path, example = 1, description = "The comment's id, within this article")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Neither the comment's author, the article's author, nor an editor or admin"),
    ))]
async fn delete_comment(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((slug, id)): Path<(String, String)>,
) -> Result<StatusCode> {
    let id: i64 = id.parse().map_err(|_| Error::NotFound("comment"))?;
    let (article_id, article_author) = article(&state, &slug).await?;
    let comment = state
        .store
        .comment(None, article_id, id)
        .await?
        .ok_or(Error::NotFound("comment"))?;
    let allowed = comment.author_id == auth.user_id
        || article_author == auth.user_id
        || auth.can(Permission::CommentDeleteAny);
    if !allowed {
        return Err(auth.refusal(Permission::CommentDeleteAny));
    }
    state.store.delete_comment(comment.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lets the fuzz targets (fuzz/) reach this module's private request body types.
#[doc(hidden)]
pub mod fuzz_entry;
