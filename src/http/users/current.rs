//! The caller's own account (`/api/user`, `/api/user/password`): read it, change it, change
//! the password. The rules (the current password, ending the other sessions) are
//! [`crate::services::accounts::own`]'s.

use axum::extract::State;
use axum::http::StatusCode;

use super::bodies::{PasswordChange, UserBody, UserUpdate};
use super::presenters::UserResponse;
use crate::http::AppState;
use crate::http::error::Result;
use crate::http::extract::{AuthUser, Json};
use crate::request_context::RequestContext;

#[utoipa::path(get, path = "/api/user", tag = "users",
    responses((status = 200, description = "The caller's account", body = UserResponse)))]
pub(super) async fn current_user(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<axum::Json<UserResponse>> {
    let row = state.accounts.active(auth.user_id).await?;
    Ok(axum::Json(UserResponse::for_caller(row, auth)))
}

#[utoipa::path(put, path = "/api/user", tag = "users",
    request_body = UserBody<UserUpdate>,
    responses((status = 200, description = "The updated account", body = UserResponse)))]
pub(super) async fn update_user(
    State(state): State<AppState>,
    auth: AuthUser,
    context: RequestContext,
    Json(UserBody { user }): Json<UserBody<UserUpdate>>,
) -> Result<axum::Json<UserResponse>> {
    let caller = auth.caller(&context);
    let row = state.accounts.update_profile(caller, user.into()).await?;
    Ok(axum::Json(UserResponse::for_caller(row, auth)))
}

/// `PUT /api/user/password`: needs the current password; every other session ends (the
/// caller's own keeps working, so the device that changed it stays signed in).
#[utoipa::path(put, path = "/api/user/password", tag = "users",
    request_body = PasswordChange,
    responses((status = 204, description = "Changed; every other session of the caller ended")))]
pub(super) async fn change_password(
    State(state): State<AppState>,
    auth: AuthUser,
    context: RequestContext,
    Json(body): Json<PasswordChange>,
) -> Result<StatusCode> {
    let caller = auth.caller(&context);
    state
        .accounts
        .change_password(caller, body.current_password, body.new_password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
