//! The tag cloud (`/api/tags`).

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
    responses((status = 200, description = "Every tag in use", body = TagsResponse)))]
async fn list_tags(State(state): State<AppState>) -> Result<axum::Json<TagsResponse>> {
    Ok(axum::Json(TagsResponse {
        tags: state.store.tags().await?,
    }))
}
