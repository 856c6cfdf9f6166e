//! The caller's own account (`/api/user`, `/api/user/password`): read it, change it, change
//! the password. The rules (the current password, ending the other sessions) are
//! [`crate::services::accounts::own`]'s.
//!
//! Guards against a stolen session guessing the account's password through the
//! current-password check: each attempt is charged to the account's login budget
//! (`login-account`, the same limiter, lockout and audit sampling as login), so guessing here
//! is no cheaper than guessing at the login form.

use axum::extract::State;
use axum::http::StatusCode;

use super::bodies::{PasswordChange, UserBody, UserUpdate};
use super::presenters::UserResponse;
use crate::defense::rate_limit::Policy;
use crate::http::AppState;
use crate::http::error::{Error, Result};
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
    responses(
        (status = 200, description = "The updated account", body = UserResponse),
        (status = 403, description = "Changing the email or password: re-authentication required: no password authentication within AERIE_STEP_UP_MAX_AGE_SECS; the `X-Aerie-Step-Up` header names `POST /api/auth/step-up`"),
    ))]
pub(super) async fn update_user(
    State(state): State<AppState>,
    auth: AuthUser,
    context: RequestContext,
    Json(UserBody { user }): Json<UserBody<UserUpdate>>,
) -> Result<axum::Json<UserResponse>> {
    let caller = auth.caller(&context);
    if user.current_password.is_some() {
        charge_password_attempt(&state, auth.user_id).await?;
    }
    let row = state.accounts.update_profile(caller, user.into()).await?;
    Ok(axum::Json(UserResponse::for_caller(row, auth)))
}

/// `DELETE /api/user`: the caller deletes their own account (see
/// [`crate::services::accounts::Accounts::delete_own`]).
#[utoipa::path(delete, path = "/api/user", tag = "users",
    responses(
        (status = 204, description = "Deleted: every session ended; the content kept under a random `deleted-…` name (AERIE_ACCOUNT_DELETION=anonymise, the default) or removed with the account (remove)"),
        (status = 403, description = "Re-authentication required: no password authentication within AERIE_STEP_UP_MAX_AGE_SECS; the `X-Aerie-Step-Up` header names `POST /api/auth/step-up`"),
    ))]
pub(super) async fn delete_user(
    State(state): State<AppState>,
    auth: AuthUser,
    context: RequestContext,
) -> Result<StatusCode> {
    state.accounts.delete_own(auth.caller(&context)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/user/export`: everything held about the caller, as JSON (data portability).
/// The account's email appears here, to its owner, as on `GET /api/user`.
#[utoipa::path(get, path = "/api/user/export", tag = "users",
    responses(
        (status = 200, description = "`{\"export\": {...}}`: the account (`user`), `createdAt`, `lastLoginAt`, `mfaEnabled`, `sessions` (with their addresses and user agents), `devices`, `articles`, `comments`, `following`, `favorites` and `auditEvents` about the caller; each list at most 10,000 entries", body = Object),
        (status = 403, description = "Re-authentication required: no password authentication within AERIE_STEP_UP_MAX_AGE_SECS; the `X-Aerie-Step-Up` header names `POST /api/auth/step-up`"),
    ))]
pub(super) async fn export_user(
    State(state): State<AppState>,
    auth: AuthUser,
    context: RequestContext,
) -> Result<axum::Json<serde_json::Value>> {
    let (user, rows) = state.accounts.export(auth.caller(&context)).await?;
    let mut export = serde_json::to_value(rows).map_err(|e| Error::Internal(e.to_string()))?;
    if let Some(fields) = export.as_object_mut() {
        fields.insert(
            "user".into(),
            serde_json::json!({
                "username": user.username,
                "email": user.email,
                "bio": user.bio,
                "image": user.image,
                "role": user.role,
            }),
        );
    }
    Ok(axum::Json(serde_json::json!({ "export": export })))
}

/// `PUT /api/user/password`: needs the current password; every other session ends (the
/// caller's own keeps working, so the device that changed it stays signed in).
#[utoipa::path(put, path = "/api/user/password", tag = "users",
    request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed; every other session of the caller ended"),
        (status = 403, description = "Re-authentication required: no password authentication within AERIE_STEP_UP_MAX_AGE_SECS; the `X-Aerie-Step-Up` header names `POST /api/auth/step-up`"),
    ))]
pub(super) async fn change_password(
    State(state): State<AppState>,
    auth: AuthUser,
    context: RequestContext,
    Json(body): Json<PasswordChange>,
) -> Result<StatusCode> {
    let caller = auth.caller(&context);
    if body.current_password.is_some() {
        charge_password_attempt(&state, auth.user_id).await?;
    }
    state
        .accounts
        .change_password(caller, body.current_password, body.new_password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Charges one password attempt by a signed-in caller to their account's login budget, before
/// any password work: a 429 once it is spent, like login's.
pub(in crate::http) async fn charge_password_attempt(state: &AppState, user_id: i64) -> Result<()> {
    let account = state.accounts.active(user_id).await?;
    state
        .rate_limiter
        .check_account(Policy::LoginAccount, &account.email)
        .await?;
    Ok(())
}
