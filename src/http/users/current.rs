//! The caller's own account (`/api/user`, `/api/user/password`): read it, change it, change
//! the password. The rules (the current password, ending the other sessions) are
//! [`crate::services::accounts::own`]'s.
//!
//! Guards against a stolen session guessing the account's password through the
//! current-password check: each wrong one is charged by the login guard like a failed login
//! (to this session's own pair budget and to the account's), so guessing here is no cheaper
//! than at the login form, while guessers elsewhere cannot keep the owner from changing it
//! (see [`PasswordAttempt`]).

use axum::extract::State;
use axum::http::StatusCode;

use super::bodies::{PasswordChange, UserBody, UserUpdate};
use super::presenters::UserResponse;
use crate::defense::login_guard::Admitted;
use crate::http::AppState;
use crate::http::error::{Error, Result};
use crate::http::extract::{AuthUser, Json};
use crate::request_context::RequestContext;
use crate::services::accounts::AccountError;
use crate::services::mfa::MfaError;
use crate::services::sessions::SessionError;

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
        (status = 429, description = "A new email address with mail on, past the account's 3 confirmation links an hour: `{\"errors\":{\"quota\":[…]}}` with `Retry-After`; nothing in the request is saved"),
    ))]
pub(super) async fn update_user(
    State(state): State<AppState>,
    auth: AuthUser,
    context: RequestContext,
    Json(UserBody { user }): Json<UserBody<UserUpdate>>,
) -> Result<axum::Json<UserResponse>> {
    let caller = auth.caller(&context);
    let attempt = PasswordAttempt::admit_if(&state, &auth, user.current_password.is_some()).await?;
    let updated = state.accounts.update_profile(caller, user.into()).await;
    let row = attempt.settle(&state, updated).await?;
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
    let attempt = PasswordAttempt::admit_if(&state, &auth, body.current_password.is_some()).await?;
    let changed = state
        .accounts
        .change_password(caller, body.current_password, body.new_password)
        .await;
    attempt.settle(&state, changed).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A signed-in caller's password check, let through by the login guard
/// ([`crate::defense::login_guard::LoginGuard::admit_signed_in`]) before any password work.
/// Only a wrong password is charged ([`Self::settle`]): a correct one costs nothing, so the
/// owner's own changes never spend the budget that slows the guessers.
pub(in crate::http) struct PasswordAttempt(Option<Admitted>);

impl PasswordAttempt {
    /// No password given: nothing to guard or charge.
    pub(in crate::http) fn none() -> Self {
        Self(None)
    }

    /// Asks the guard when a password is `given` (a 429 once this session's guesses are
    /// spent); without one there is nothing to guard.
    pub(in crate::http) async fn admit_if(
        state: &AppState,
        auth: &AuthUser,
        given: bool,
    ) -> Result<Self> {
        if !given {
            return Ok(Self::none());
        }
        let account = state.accounts.active(auth.user_id).await?;
        let admitted = state
            .login_guard
            .admit_signed_in(&account.email, &auth.session_id)
            .await?;
        Ok(Self(Some(admitted)))
    }

    /// Charges the attempt when `outcome` says the password was wrong, and passes it on.
    pub(in crate::http) async fn settle<T, E: RejectsPassword>(
        self,
        state: &AppState,
        outcome: std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        if let (Some(admitted), Err(error)) = (&self.0, &outcome)
            && error.rejects_password()
        {
            state.login_guard.failed(admitted).await;
        }
        outcome
    }
}

/// A service error that says the password given was wrong.
pub(in crate::http) trait RejectsPassword {
    fn rejects_password(&self) -> bool;
}

impl RejectsPassword for AccountError {
    fn rejects_password(&self) -> bool {
        matches!(self, Self::CurrentPasswordWrong)
    }
}

impl RejectsPassword for MfaError {
    fn rejects_password(&self) -> bool {
        matches!(
            self,
            Self::WrongPassword | Self::Session(SessionError::WrongPassword)
        )
    }
}
