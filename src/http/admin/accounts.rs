//! Account administration over HTTP: the request and response types, and handlers that
//! call [`crate::services::accounts`] with the administrator as the actor.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock::rfc3339;
use crate::domain::Role;
use crate::http::AppState;
use crate::http::error::{Error, Result};
use crate::http::extract::{
    Json, Require, SessionRevokeAny, UserDeleteAny, UserDisable, UserReadAny, UserRoleSet,
};
use crate::http::query::{PAGE, Query};
use crate::request_context::RequestContext;
use crate::services::Actor;
use crate::services::accounts::Changed;
use crate::store::AccountRow;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/admin/users", get(list_users))
        .route("/api/admin/users/{username}", delete(delete_account))
        .route("/api/admin/users/{username}/role", put(set_role))
        .route("/api/admin/users/{username}/disable", post(disable))
        .route("/api/admin/users/{username}/enable", post(enable))
        .route(
            "/api/admin/users/{username}/sessions",
            delete(revoke_sessions),
        )
}

/// An account as administrators see it (never the password hash).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Account {
    username: String,
    email: String,
    #[schema(value_type = Role)]
    role: String,
    disabled: bool,
    /// Whether the account has MFA on (TOTP confirmed).
    mfa: bool,
    #[schema(format = DateTime)]
    created_at: String,
    /// `null` until the first login.
    #[schema(format = DateTime, required = true)]
    last_login_at: Option<String>,
}

impl From<AccountRow> for Account {
    fn from(row: AccountRow) -> Self {
        Self {
            username: row.username,
            email: row.email,
            role: row.role,
            disabled: row.disabled_at.is_some(),
            mfa: row.mfa_enrolments > 0,
            created_at: rfc3339(row.created_at),
            last_login_at: row.last_login_at.map(rfc3339),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AccountList {
    users: Vec<Account>,
    users_count: i64,
}

#[utoipa::path(get, path = "/api/admin/users", tag = "admin",
    params(
        ("query" = Option<String>, Query, description = "Only accounts whose username or email contains this (case-insensitive)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)"),
        ("offset" = Option<i64>, Query, minimum = 0, maximum = 2147483647, description = "Accounts to skip"),
    ),
    responses((status = 200, description = "Accounts", body = AccountList)))]
async fn list_users(
    State(state): State<AppState>,
    Require(admin, _): Require<UserReadAny>,
    context: RequestContext,
    RawQuery(raw): RawQuery,
) -> Result<axum::Json<AccountList>> {
    let query = Query::parse(raw.as_deref(), &[&["query"], PAGE])?;
    let (limit, offset) = query.page()?;
    let actor = Actor::Admin(admin.caller(&context));
    let (rows, count) = state
        .accounts
        .list(actor, query.text("query").as_deref(), limit, offset)
        .await?;
    Ok(axum::Json(AccountList {
        users: rows.into_iter().map(Account::from).collect(),
        users_count: count,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RoleChange {
    #[schema(value_type = Role)]
    role: String,
}

#[derive(Serialize, ToSchema)]
struct AccountResponse {
    user: Account,
}

/// Answers the account as it now is.
async fn account(state: &AppState, changed: Changed) -> Result<axum::Json<AccountResponse>> {
    let row = state.accounts.as_listed(&changed.user).await?;
    Ok(axum::Json(AccountResponse { user: row.into() }))
}

#[utoipa::path(put, path = "/api/admin/users/{username}/role", tag = "admin",
    params(("username" = String, Path, example = "jake")),
    request_body = RoleChange,
    responses(
        (status = 200, description = "The account with its new role; its sessions are revoked", body = AccountResponse),
        (status = 422, description = "Unknown role, or the caller's own account"),
        (status = 403, description = "Granting admin: re-authentication required: no password authentication within AERIE_STEP_UP_MAX_AGE_SECS; the `X-Aerie-Step-Up` header names `POST /api/auth/step-up`"),
    ))]
async fn set_role(
    State(state): State<AppState>,
    Require(admin, _): Require<UserRoleSet>,
    context: RequestContext,
    Path(username): Path<String>,
    Json(body): Json<RoleChange>,
) -> Result<axum::Json<AccountResponse>> {
    let role = Role::parse(&body.role)
        .ok_or_else(|| Error::invalid("role", "must be one of user, editor, admin"))?;
    let actor = Actor::Admin(admin.caller(&context));
    let changed = state.accounts.set_role(actor, &username, role).await?;
    account(&state, changed).await
}

#[utoipa::path(post, path = "/api/admin/users/{username}/disable", tag = "admin",
    params(("username" = String, Path, example = "jake")),
    responses(
        (status = 200, description = "The account, disabled; its sessions are revoked", body = AccountResponse),
        (status = 422, description = "The caller's own account"),
    ))]
async fn disable(
    State(state): State<AppState>,
    Require(admin, _): Require<UserDisable>,
    context: RequestContext,
    Path(username): Path<String>,
) -> Result<axum::Json<AccountResponse>> {
    let actor = Actor::Admin(admin.caller(&context));
    let changed = state.accounts.set_disabled(actor, &username, true).await?;
    account(&state, changed).await
}

#[utoipa::path(post, path = "/api/admin/users/{username}/enable", tag = "admin",
    params(("username" = String, Path, example = "jake")),
    responses(
        (status = 200, description = "The account, enabled", body = AccountResponse),
        (status = 422, description = "The caller's own account"),
    ))]
async fn enable(
    State(state): State<AppState>,
    Require(admin, _): Require<UserDisable>,
    context: RequestContext,
    Path(username): Path<String>,
) -> Result<axum::Json<AccountResponse>> {
    let actor = Actor::Admin(admin.caller(&context));
    let changed = state.accounts.set_disabled(actor, &username, false).await?;
    account(&state, changed).await
}

#[utoipa::path(delete, path = "/api/admin/users/{username}", tag = "admin",
    params(("username" = String, Path, example = "jake")),
    responses(
        (status = 204, description = "The account's sessions are over and the account is anonymised or removed, as AERIE_ACCOUNT_DELETION says"),
        (status = 404, description = "No such account"),
        (status = 422, description = "The caller's own account (delete it with `DELETE /api/user`)"),
        (status = 403, description = "Re-authentication required: no password authentication within AERIE_STEP_UP_MAX_AGE_SECS; the `X-Aerie-Step-Up` header names `POST /api/auth/step-up`"),
    ))]
async fn delete_account(
    State(state): State<AppState>,
    Require(admin, _): Require<UserDeleteAny>,
    context: RequestContext,
    Path(username): Path<String>,
) -> Result<StatusCode> {
    let actor = Actor::Admin(admin.caller(&context));
    state.accounts.delete(actor, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/admin/users/{username}/sessions", tag = "admin",
    params(("username" = String, Path, example = "jake")),
    responses(
        (status = 204, description = "Every session of the account is over"),
        (status = 403, description = "Re-authentication required: no password authentication within AERIE_STEP_UP_MAX_AGE_SECS; the `X-Aerie-Step-Up` header names `POST /api/auth/step-up`"),
    ))]
async fn revoke_sessions(
    State(state): State<AppState>,
    Require(admin, _): Require<SessionRevokeAny>,
    context: RequestContext,
    Path(username): Path<String>,
) -> Result<StatusCode> {
    let actor = Actor::Admin(admin.caller(&context));
    let revoker = state.sessions.revoker();
    revoker.revoke_all_of(actor, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}
