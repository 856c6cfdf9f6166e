//! The tag cloud (`/api/tags`).
//!
//! Guards against an anonymous call that grows with every tag ever used (100,800 tags made
//! it 13 MB and 400 ms): it lists at most `AERIE_TAGS_LISTED` tags, the most used first.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::Result;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/tags", get(list_tags))
}

#[derive(Serialize, ToSchema)]
struct TagsResponse {
    tags: Vec<String>,
}

#[utoipa::path(get, path = "/api/tags", tag = "articles",
    responses((status = 200, description = "The most used tags (at most `AERIE_TAGS_LISTED`, 100 by default), the most used first, ties by name", body = TagsResponse)))]
async fn list_tags(State(state): State<AppState>) -> Result<axum::Json<TagsResponse>> {
    let limit = i64::try_from(state.http.tags_listed).unwrap_or(i64::MAX);
    Ok(axum::Json(TagsResponse {
        tags: state.store.popular_tags(limit).await?,
    }))
}
