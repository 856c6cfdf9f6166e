//! Articles, the feed and favorites (`/api/articles`).
//!
//! Guards against editing or deleting someone else's article (author, or a role with the
//! `*:any` permission), mass assignment (unknown fields are refused, so nobody sets
//! `author`, `slug` or `favoritesCount`), and unbounded listing (`limit` ≤ 100).

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::{Error, FieldErrors, Result};
use super::extract::{AuthUser, Json, MaybeAuthUser};
use super::query::Query;
use super::views::Article;
use crate::domain::{ArticleBody, Description, Permission, Slug, Title, username_key};
use crate::store::{ArticleChanges, ArticleFilter, ArticleRow, NewArticle, is_unique_violation};

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "T: Deserialize<'de>"))]
struct ArticleBodyWrapper<T> {
    #[serde(deserialize_with = "super::extract::object")]
    article: T,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewArticleRequest {
    title: Option<String>,
    description: Option<String>,
    body: Option<String>,
    tag_list: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ArticleUpdateRequest {
    title: Option<String>,
    description: Option<String>,
    body: Option<String>,
    tag_list: Option<Vec<String>>,
}

#[derive(Serialize)]
struct ArticleResponse {
    article: Article,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ArticleList {
    articles: Vec<Article>,
    articles_count: i64,
}

impl ArticleList {
    fn new((rows, count): (Vec<ArticleRow>, i64)) -> Self {
        Self {
            articles: rows.into_iter().map(Article::summary).collect(),
            articles_count: count,
        }
    }
}

async fn list_articles(
    State(state): State<AppState>,
    viewer: MaybeAuthUser,
    RawQuery(raw): RawQuery,
) -> Result<axum::Json<ArticleList>> {
    let query = Query::parse(raw.as_deref())?;
    let (limit, offset) = query.page()?;
    let filter = ArticleFilter {
        tag: query.text("tag"),
        author_key: query.text("author").map(|a| username_key(&a)),
        favorited_by_key: query.text("favorited").map(|f| username_key(&f)),
    };
    let page = state
        .store
        .list_articles(viewer.user_id(), &filter, limit, offset)
        .await?;
    Ok(axum::Json(ArticleList::new(page)))
}

async fn feed(
    State(state): State<AppState>,
    auth: AuthUser,
    RawQuery(raw): RawQuery,
) -> Result<axum::Json<ArticleList>> {
    let (limit, offset) = Query::parse(raw.as_deref())?.page()?;
    let page = state.store.feed(auth.user_id, limit, offset).await?;
    Ok(axum::Json(ArticleList::new(page)))
}

async fn find(state: &AppState, viewer: Option<i64>, slug: &str) -> Result<ArticleRow> {
    state
        .store
        .article_by_slug(viewer, slug)
        .await?
        .ok_or(Error::NotFound("article"))
}

async fn get_article(
    State(state): State<AppState>,
    viewer: MaybeAuthUser,
    Path(slug): Path<String>,
) -> Result<axum::Json<ArticleResponse>> {
    let row = find(&state, viewer.user_id(), &slug).await?;
    Ok(axum::Json(ArticleResponse {
        article: Article::full(row),
    }))
}

async fn create_article(
    State(state): State<AppState>,
    auth: AuthUser,
    Json(ArticleBodyWrapper { article }): Json<ArticleBodyWrapper<NewArticleRequest>>,
) -> Result<(StatusCode, axum::Json<ArticleResponse>)> {
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
    let base = Slug::from_title(&title);
    let now = state.clock.now();
    let mut attempt = base.clone();
    for _ in 0..4 {
        let new = NewArticle {
            slug: attempt.as_str(),
            title: title.as_str(),
            description: description.as_str(),
            body: body.as_str(),
            tags: &tags,
            author_id: auth.user_id,
            now,
        };
        match state.store.insert_article(new).await {
            Ok(_) => {
                let row = find(&state, Some(auth.user_id), attempt.as_str()).await?;
                return Ok((
                    StatusCode::CREATED,
                    axum::Json(ArticleResponse {
                        article: Article::full(row),
                    }),
                ));
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
        return Err(Error::Forbidden);
    }
    Ok(row)
}

async fn update_article(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(slug): Path<String>,
    Json(ArticleBodyWrapper { article }): Json<ArticleBodyWrapper<ArticleUpdateRequest>>,
) -> Result<axum::Json<ArticleResponse>> {
    let row = owned(&state, &auth, &slug, Permission::ArticleUpdateAny).await?;
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
    let base = title
        .as_ref()
        .map(Slug::from_title)
        .filter(|s| s.as_str() != row.slug);
    let mut changes = ArticleChanges {
        slug: base.as_ref().map(|s| s.as_str().to_owned()),
        title: title.map(Title::into_inner),
        description: description.map(Description::into_inner),
        body: body.map(ArticleBody::into_inner),
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
                return Ok(axum::Json(ArticleResponse {
                    article: Article::full(updated),
                }));
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

async fn delete_article(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(slug): Path<String>,
) -> Result<StatusCode> {
    let row = owned(&state, &auth, &slug, Permission::ArticleDeleteAny).await?;
    state.store.delete_article(row.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn favorite(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(slug): Path<String>,
) -> Result<axum::Json<ArticleResponse>> {
    set_favorite(&state, &auth, &slug, true).await
}

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
    Ok(axum::Json(ArticleResponse {
        article: Article::full(row),
    }))
}
