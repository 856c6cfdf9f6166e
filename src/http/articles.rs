//! Articles, the feed and favorites (`/api/articles`).
//!
//! Guards against editing or deleting someone else's article (author, or a role with the
//! `*:any` permission), mass assignment (unknown fields are refused, so nobody sets
//! `author`, `slug` or `favoritesCount`), unbounded listing (`limit` ≤ 100), deep pages that
//! cost more the deeper they go (`offset` ≤ `AERIE_MAX_LIST_OFFSET`; deeper, the signed
//! `after` cursor of [`cursor`]), and one account filling the disk (the per-user quotas of
//! [`crate::services::quotas`]).

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::bodies;
use super::error::{Error, Result};
use super::extract::{AuthUser, Json, MaybeAuthUser};
use super::openapi::text::{ArticleBodyText, DescriptionText, TagList, TitleText};
use super::query::Query;
use super::views::Article;
use crate::domain::{ArticleBody, Description, FieldErrors, Permission, Slug, Title, username_key};
use crate::store::{
    self, ArticleChanges, ArticleFilter, ArticlePage, ArticleRow, NewArticle, PageStart,
    is_unique_violation,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/articles", get(list_articles).post(create_article))
        .route("/api/articles/feed", get(feed))
        .route(
            "/api/articles/{slug}",
            get(get_article).put(update_article).delete(delete_article),
        )
        .route(
            "/api/articles/{slug}/favorite",
            post(favorite).delete(unfavorite),
        )
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, bound(deserialize = "T: Deserialize<'de>"))]
struct ArticleBodyWrapper<T> {
    #[serde(deserialize_with = "super::extract::object")]
    article: T,
}

// `Option` fields so a missing one is a 422 naming it; the OpenAPI document marks them
// required.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewArticleRequest {
    #[schema(value_type = TitleText, required = true, example = "How to train your dragon")]
    title: Option<String>,
    #[schema(value_type = DescriptionText, required = true, example = "Ever wonder how?")]
    description: Option<String>,
    /// Markdown source.
    #[schema(value_type = ArticleBodyText, required = true, example = "You have to believe")]
    body: Option<String>,
    #[schema(value_type = Option<TagList>, example = json!(["dragons", "training"]))]
    tag_list: Option<Vec<String>>,
}

/// Absent fields stay as they are; a new title gives a new slug.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ArticleUpdateRequest {
    #[schema(value_type = Option<TitleText>)]
    title: Option<String>,
    #[schema(value_type = Option<DescriptionText>)]
    description: Option<String>,
    #[schema(value_type = Option<ArticleBodyText>)]
    body: Option<String>,
    #[schema(value_type = Option<TagList>)]
    tag_list: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
struct ArticleResponse {
    article: Article,
}

/// A page of articles, newest first, without their bodies; `articlesCount` counts all
/// matches, not just this page.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ArticleList {
    articles: Vec<Article>,
    articles_count: i64,
    /// Present when more articles follow this page: pass it as `after` for the next page
    /// (same filters). Opaque; its cost does not grow with the depth, unlike `offset`.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// The query parameters of the article lists' pages.
const PAGE_OR_CURSOR: &[&str] = &["limit", "offset", "after"];

/// One page of `list`, from `offset` (capped) or after the cursor `after`. `scope` names
/// the list (its filters, the feed's reader) in the cursor's seal.
async fn list_page(
    state: &AppState,
    viewer: Option<i64>,
    list: store::ArticleList<'_>,
    scope: &str,
    query: &Query,
) -> Result<axum::Json<ArticleList>> {
    let (limit, offset) = query.page()?;
    let max = state.http.max_list_offset;
    if offset > max {
        return Err(Error::invalid(
            "offset",
            format!("is deeper than {max}; page on with `after` (the response's nextCursor)"),
        ));
    }
    let position = match query.typed("after") {
        Some(_) if query.typed("offset").is_some() => {
            return Err(Error::invalid("after", "cannot be combined with offset"));
        }
        Some(cursor) => Some(
            state
                .cursors
                .open(scope, cursor)
                .ok_or_else(|| Error::invalid("after", "is not a cursor this list gave out"))?,
        ),
        None => None,
    };
    let start = match &position {
        Some(position) => PageStart::After(position),
        None => PageStart::Offset(offset),
    };
    let ArticlePage { rows, total, next } = state
        .store
        .list_articles(viewer, list, start, limit)
        .await?;
    Ok(axum::Json(ArticleList {
        articles: rows.into_iter().map(Article::summary).collect(),
        articles_count: total,
        next_cursor: next.map(|position| state.cursors.seal(scope, &position)),
    }))
}

#[utoipa::path(get, path = "/api/articles", tag = "articles",
    params(
        ("tag" = Option<String>, Query, description = "Only articles with this tag"),
        ("author" = Option<String>, Query, description = "Only articles by this username"),
        ("favorited" = Option<String>, Query, description = "Only articles this username favorited"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)"),
        ("offset" = Option<i64>, Query, minimum = 0, maximum = 10000, description = "Articles to skip, at most `AERIE_MAX_LIST_OFFSET` (10,000 by default); not with `after`"),
        ("after" = Option<String>, Query, description = "Start after the page that returned this `nextCursor` (same filters); not with `offset`"),
    ),
    responses(
        (status = 200, description = "Articles, newest first; a token is optional", body = ArticleList),
        (status = 401, description = "A token was sent but is not valid"),
        (status = 422, description = "A parameter out of range, `offset` deeper than allowed, or an `after` cursor this list did not give out"),
    ))]
async fn list_articles(
    State(state): State<AppState>,
    viewer: MaybeAuthUser,
    RawQuery(raw): RawQuery,
) -> Result<axum::Json<ArticleList>> {
    let query = Query::parse(
        raw.as_deref(),
        &[&["tag", "author", "favorited"], PAGE_OR_CURSOR],
    )?;
    let filter = ArticleFilter {
        tag: query.text("tag"),
        author_key: query.text("author").map(|a| username_key(&a)),
        favorited_by_key: query.text("favorited").map(|f| username_key(&f)),
    };
    let scope = serde_json::json!([
        "articles",
        filter.tag,
        filter.author_key,
        filter.favorited_by_key
    ])
    .to_string();
    let list = store::ArticleList::All(&filter);
    list_page(&state, viewer.user_id(), list, &scope, &query).await
}

#[utoipa::path(get, path = "/api/articles/feed", tag = "articles",
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)"),
        ("offset" = Option<i64>, Query, minimum = 0, maximum = 10000, description = "Articles to skip, at most `AERIE_MAX_LIST_OFFSET` (10,000 by default); not with `after`"),
        ("after" = Option<String>, Query, description = "Start after the page that returned this `nextCursor`; not with `offset`"),
    ),
    responses(
        (status = 200, description = "Articles by authors the caller follows, newest first", body = ArticleList),
        (status = 422, description = "A parameter out of range, `offset` deeper than allowed, or an `after` cursor this list did not give out"),
    ))]
async fn feed(
    State(state): State<AppState>,
    auth: AuthUser,
    RawQuery(raw): RawQuery,
) -> Result<axum::Json<ArticleList>> {
    let query = Query::parse(raw.as_deref(), &[PAGE_OR_CURSOR])?;
    let scope = serde_json::json!(["feed", auth.user_id]).to_string();
    let list = store::ArticleList::Feed {
        follower: auth.user_id,
    };
    list_page(&state, Some(auth.user_id), list, &scope, &query).await
}

/// The full article as the response carries it, with its stored HTML.
async fn present(state: &AppState, mut row: ArticleRow) -> Result<axum::Json<ArticleResponse>> {
    let html = bodies::article_html(state, &mut row).await?;
    Ok(axum::Json(ArticleResponse {
        article: Article::full(row, html),
    }))
}

async fn find(state: &AppState, viewer: Option<i64>, slug: &str) -> Result<ArticleRow> {
    state
        .store
        .article_by_slug(viewer, slug)
        .await?
        .ok_or(Error::NotFound("article"))
}

#[utoipa::path(get, path = "/api/articles/{slug}", tag = "articles",
    params(("slug" = String, Path, example = "how-to-train-your-dragon")),
    responses(
        (status = 200, description = "The article, with its Markdown body and rendered `bodyHtml`; a token is optional", body = ArticleResponse),
        (status = 401, description = "A token was sent but is not valid"),
    ))]
async fn get_article(
    State(state): State<AppState>,
    viewer: MaybeAuthUser,
    Path(slug): Path<String>,
) -> Result<axum::Json<ArticleResponse>> {
    let row = find(&state, viewer.user_id(), &slug).await?;
    present(&state, row).await
}

#[utoipa::path(post, path = "/api/articles", tag = "articles",
    request_body = ArticleBodyWrapper<NewArticleRequest>,
    responses((status = 201, description = "Created", body = ArticleResponse)))]
async fn create_article(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(ArticleBodyWrapper { article }): Json<ArticleBodyWrapper<NewArticleRequest>>,
) -> Result<(StatusCode, axum::Json<ArticleResponse>)> {
    // The quota bounds the list as sent, duplicates included: the published `maxItems` says
    // so, and a client (or a schema-driven fuzzer) must find the document true.
    let sent_tags = article.tag_list.as_ref().map_or(0, Vec::len);
    let mut errors = FieldErrors::default();
    let title = errors.required("title", article.title, Title::parse);
    let description = errors.required("description", article.description, Description::parse);
    let body = errors.required("body", article.body, ArticleBody::parse);
    let tags = errors.check(
        "tagList",
        crate::domain::tag_list(article.tag_list.unwrap_or_default()),
    );
    errors.finish()?;
    let (Some(title), Some(description), Some(body), Some(tags)) = (title, description, body, tags)
    else {
        return Err(Error::Internal("validated fields missing".into()));
    };
    let tags: Vec<String> = tags.into_iter().map(|t| t.into_inner()).collect();
    // Quotas before the render: a refused write costs no rendering.
    state.quotas.check_tags(sent_tags)?;
    state
        .quotas
        .check_new_article(auth.user_id, body.as_str().len())
        .await?;
    let body_html = bodies::render(&state, body.as_str()).await?;
    let base = Slug::from_title(&title);
    let now = state.clock.now();
    let mut attempt = base.clone();
    for _ in 0..4 {
        let new = NewArticle {
            slug: attempt.as_str(),
            title: title.as_str(),
            description: description.as_str(),
            body: body.as_str(),
            body_html: &body_html,
            tags: &tags,
            author_id: auth.user_id,
            now,
        };
        match state.store.insert_article(new).await {
            Ok(_) => {
                let row = find(&state, Some(auth.user_id), attempt.as_str()).await?;
                return Ok((StatusCode::CREATED, present(&state, row).await?));
            }
            Err(e) if is_unique_violation(&e, "articles", "slug") => {
                attempt = base.with_suffix(&slug_suffix())
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Internal("no free slug after retries".into()))
}

/// Six random lowercase letters and digits: makes a taken slug unique.
fn slug_suffix() -> String {
    use rand::seq::SliceRandom;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..6)
        .filter_map(|_| ALPHABET.choose(&mut rng).copied().map(char::from))
        .collect()
}

/// Loads an article the caller may change: its author, or a role holding `permission`.
async fn owned(
    state: &AppState,
    auth: &AuthUser,
    slug: &str,
    permission: Permission,
) -> Result<ArticleRow> {
    let row = find(state, Some(auth.user_id), slug).await?;
    if row.author_id != auth.user_id && !auth.can(permission) {
        return Err(auth.refusal(permission));
    }
    Ok(row)
}

#[utoipa::path(put, path = "/api/articles/{slug}", tag = "articles",
    params(("slug" = String, Path, example = "how-to-train-your-dragon")),
    request_body = ArticleBodyWrapper<ArticleUpdateRequest>,
    responses(
        (status = 200, description = "Updated", body = ArticleResponse),
        (status = 403, description = "Neither the author nor an editor or admin"),
    ))]
async fn update_article(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(slug): Path<String>,
    Json(ArticleBodyWrapper { article }): Json<ArticleBodyWrapper<ArticleUpdateRequest>>,
) -> Result<axum::Json<ArticleResponse>> {
    let row = owned(&state, &auth, &slug, Permission::ArticleUpdateAny).await?;
    // As in `create_article`: the list as sent.
    let sent_tags = article.tag_list.as_ref().map(Vec::len);
    let mut errors = FieldErrors::default();
    let title = article
        .title
        .and_then(|v| errors.check("title", Title::parse(v)));
    let description = article
        .description
        .and_then(|v| errors.check("description", Description::parse(v)));
    let body = article
        .body
        .and_then(|v| errors.check("body", ArticleBody::parse(v)));
    let tags = match article.tag_list {
        Some(list) => errors
            .check("tagList", crate::domain::tag_list(list))
            .map(Some),
        None => Some(None),
    };
    errors.finish()?;
    if let Some(sent) = sent_tags {
        state.quotas.check_tags(sent)?;
    }
    if let Some(body) = &body {
        // Charged to the caller: an editor's edits count against the editor's budget.
        state
            .quotas
            .check_body_bytes(auth.user_id, body.as_str().len())
            .await?;
    }
    let body = match body {
        Some(body) => {
            let html = bodies::render(&state, body.as_str()).await?;
            Some((body.into_inner(), html))
        }
        None => None,
    };
    let base = title
        .as_ref()
        .map(Slug::from_title)
        .filter(|s| s.as_str() != row.slug);
    let mut changes = ArticleChanges {
        slug: base.as_ref().map(|s| s.as_str().to_owned()),
        title: title.map(Title::into_inner),
        description: description.map(Description::into_inner),
        body,
        tags: tags
            .flatten()
            .map(|t| t.into_iter().map(|t| t.into_inner()).collect()),
    };
    let now = state.clock.now();
    for _ in 0..4 {
        match state.store.update_article(row.id, &changes, now).await {
            Ok(()) => {
                let slug = changes.slug.as_deref().unwrap_or(&row.slug);
                let updated = find(&state, Some(auth.user_id), slug).await?;
                return present(&state, updated).await;
            }
            Err(e) if is_unique_violation(&e, "articles", "slug") => {
                changes.slug = base
                    .as_ref()
                    .map(|s| s.with_suffix(&slug_suffix()).as_str().to_owned());
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Internal("no free slug after retries".into()))
}

#[utoipa::path(delete, path = "/api/articles/{slug}", tag = "articles",
    params(("slug" = String, Path, example = "how-to-train-your-dragon")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Neither the author nor an editor or admin"),
    ))]
async fn delete_article(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(slug): Path<String>,
) -> Result<StatusCode> {
    let row = owned(&state, &auth, &slug, Permission::ArticleDeleteAny).await?;
    state.store.delete_article(row.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/articles/{slug}/favorite", tag = "articles",
    params(("slug" = String, Path, example = "how-to-train-your-dragon")),
    responses((status = 200, description = "The article, now a favorite of the caller", body = ArticleResponse)))]
async fn favorite(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(slug): Path<String>,
) -> Result<axum::Json<ArticleResponse>> {
    set_favorite(&state, &auth, &slug, true).await
}

#[utoipa::path(delete, path = "/api/articles/{slug}/favorite", tag = "articles",
    params(("slug" = String, Path, example = "how-to-train-your-dragon")),
    responses((status = 200, description = "The article, no longer a favorite of the caller", body = ArticleResponse)))]
async fn unfavorite(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(slug): Path<String>,
) -> Result<axum::Json<ArticleResponse>> {
    set_favorite(&state, &auth, &slug, false).await
}

/// Marks or unmarks the article as the caller's favorite (idempotent) and answers it as
/// the caller now sees it.
async fn set_favorite(
    state: &AppState,
    auth: &AuthUser,
    slug: &str,
    favorite: bool,
) -> Result<axum::Json<ArticleResponse>> {
    let row = find(state, Some(auth.user_id), slug).await?;
    if favorite {
        state.store.favorite(auth.user_id, row.id).await?;
    } else {
        state.store.unfavorite(auth.user_id, row.id).await?;
    }
    let row = find(state, Some(auth.user_id), slug).await?;
    present(state, row).await
}

pub mod cursor;

/// Lets the fuzz targets (fuzz/) reach this module's private request body types.
#[doc(hidden)]
pub mod fuzz_entry;
