//! Public profiles and follows (`/api/profiles/:username`). A profile shows only the
//! username, bio, image and whether the caller follows; never email, role or ids.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{Error, Result};
use super::extract::{AuthUser, MaybeAuthUser};
use super::views::Profile;
use crate::domain::username_key;
use crate::store::ProfileRow;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/profiles/{username}", get(get_profile))
        .route(
            "/api/profiles/{username}/follow",
            post(follow).delete(unfollow),
        )
}

#[derive(Serialize, ToSchema)]
struct ProfileResponse {
    profile: Profile,
}

async fn find(state: &AppState, viewer: Option<i64>, username: &str) -> Result<ProfileRow> {
    state
        .store
        .profile(viewer, &username_key(username))
        .await?
        .ok_or(Error::NotFound("profile"))
}

#[utoipa::path(get, path = "/api/profiles/{username}", tag = "profiles",
    params(("username" = String, Path, example = "jake")),
    responses(
        (status = 200, description = "The profile; a token is optional (it sets `following`)", body = ProfileResponse),
        (status = 401, description = "A token was sent but is not valid"),
    ))]
async fn get_profile(
    State(state): State<AppState>,
    viewer: MaybeAuthUser,
    Path(username): Path<String>,
) -> Result<axum::Json<ProfileResponse>> {
    let row = find(&state, viewer.user_id(), &username).await?;
    Ok(axum::Json(ProfileResponse {
        profile: row.into(),
    }))
}

#[utoipa::path(post, path = "/api/profiles/{username}/follow", tag = "profiles",
    params(("username" = String, Path, example = "jake")),
    responses(
        (status = 200, description = "The profile, now followed", body = ProfileResponse),
        (status = 422, description = "The caller tried to follow themselves"),
    ))]
async fn follow(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(username): Path<String>,
) -> Result<axum::Json<ProfileResponse>> {
    let target = find(&state, Some(auth.user_id), &username).await?;
    if target.id == auth.user_id {
        return Err(Error::invalid("username", "cannot follow yourself"));
    }
    state.store.follow(auth.user_id, target.id).await?;
    Ok(axum::Json(ProfileResponse {
        profile: Profile {
            following: true,
            ..target.into()
        },
    }))
}

#[utoipa::path(delete, path = "/api/profiles/{username}/follow", tag = "profiles",
    params(("username" = String, Path, example = "jake")),
    responses((status = 200, description = "The profile, no longer followed", body = ProfileResponse)))]
async fn unfollow(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(username): Path<String>,
) -> Result<axum::Json<ProfileResponse>> {
    let target = find(&state, Some(auth.user_id), &username).await?;
    state.store.unfollow(auth.user_id, target.id).await?;
    Ok(axum::Json(ProfileResponse {
        profile: Profile {
            following: false,
            ..target.into()
        },
    }))
}
