//! The admin API (`/api/admin`): list accounts, set roles, disable and enable accounts,
//! revoke a user's sessions; querying the audit trail is in [`super::admin_audit`].
//!
//! Guards against privilege escalation and stale privilege. Every route needs a permission
//! from the role matrix (the access table and the `Require<_>` guard both check it).
//! Granting the admin role needs a fresh login (within `AERIE_ADMIN_GRANT_MAX_AUTH_AGE_SECS`),
//! so a stolen long-lived session cannot mint new admins. Changing a role or disabling an
//! account revokes all of that user's sessions at once, so a token never carries a role
//! the account no longer has. Administrators cannot change their own role or disable
//! themselves (no accidental lock-out of the last admin). Every action, and every read of
//! account data, is an audit event naming the administrator.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::AppState;
use super::error::{Error, Result};
use super::extract::{
    AuthUser, Json, Require, SessionRevokeAny, UserDisable, UserReadAny, UserRoleSet,
};
use super::query::{PAGE, Query};
use crate::audit::{AuditEvent, EventType};
use crate::clock::rfc3339;
use crate::domain::{Role, username_key};
use crate::request_context::RequestContext;
use crate::store::{AccountRow, UserRow};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/admin/users", get(list_users))
        .route("/api/admin/users/{username}/role", put(set_role))
        .route("/api/admin/users/{username}/disable", post(disable))
        .route("/api/admin/users/{username}/enable", post(enable))
        .route(
            "/api/admin/users/{username}/sessions",
            delete(revoke_sessions),
        )
        .merge(super::admin_audit::router())
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
    /// MFA arrives with its own issue; until then no account has it.
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
            mfa: false,
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
    let (rows, count) = state
        .store
        .list_accounts(query.text("query").as_deref(), limit, offset)
        .await?;
    let detail = json!({ "resource": "users", "results": rows.len() });
    record(
        &state,
        &admin,
        &context,
        EventType::AdminReadUserData,
        None,
        detail,
    )
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

/// The target account, or 404; never the caller's own.
async fn target(state: &AppState, caller: i64, username: &str) -> Result<UserRow> {
    let user = state
        .store
        .user_by_username_key(&username_key(username))
        .await?
        .ok_or(Error::NotFound("user"))?;
    if user.id == caller {
        return Err(Error::invalid(
            "username",
            "administrators cannot change their own account here",
        ));
    }
    Ok(user)
}

/// Answers the account as it now is.
async fn account(state: &AppState, user: &UserRow) -> Result<axum::Json<AccountResponse>> {
    let (rows, _) = state
        .store
        .list_accounts(Some(&user.username), 100, 0)
        .await?;
    let row = rows
        .into_iter()
        .find(|r| r.username == user.username)
        .ok_or(Error::NotFound("user"))?;
    Ok(axum::Json(AccountResponse { user: row.into() }))
}

#[utoipa::path(put, path = "/api/admin/users/{username}/role", tag = "admin",
    params(("username" = String, Path, example = "jake")),
    request_body = RoleChange,
    responses(
        (status = 200, description = "The account with its new role; its sessions are revoked", body = AccountResponse),
        (status = 422, description = "Unknown role, the caller's own account, or granting admin without a recent login"),
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
    let user = target(&state, admin.user_id, &username).await?;
    let now = state.clock.now();
    if role == Role::Admin {
        let max_age =
            i64::try_from(state.http.admin_grant_max_auth_age.as_millis()).unwrap_or(i64::MAX);
        let logged_in_at = state.store.session_started_at(&admin.session_id).await?;
        if logged_in_at.is_none_or(|at| now - at > max_age) {
            return Err(Error::invalid(
                "reauthentication",
                "log in again to grant the admin role",
            ));
        }
    }
    state.store.set_role(user.id, role.as_str(), now).await?;
    revoke_all_sessions(&state, user.id).await?;
    let detail = json!({ "from": user.role, "to": role.as_str() });
    record(
        &state,
        &admin,
        &context,
        EventType::RoleChanged,
        Some(user.id),
        detail,
    )
    .await?;
    account(&state, &user).await
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
    set_disabled(&state, &admin, &context, &username, true).await
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
    set_disabled(&state, &admin, &context, &username, false).await
}

async fn set_disabled(
    state: &AppState,
    admin: &AuthUser,
    context: &RequestContext,
    username: &str,
    disabled: bool,
) -> Result<axum::Json<AccountResponse>> {
    let user = target(state, admin.user_id, username).await?;
    let now = state.clock.now();
    state
        .store
        .set_disabled(user.id, disabled.then_some(now), now)
        .await?;
    revoke_all_sessions(state, user.id).await?;
    let kind = if disabled {
        EventType::UserDisabled
    } else {
        EventType::UserEnabled
    };
    record(state, admin, context, kind, Some(user.id), json!({})).await?;
    account(state, &user).await
}

#[utoipa::path(delete, path = "/api/admin/users/{username}/sessions", tag = "admin",
    params(("username" = String, Path, example = "jake")),
    responses((status = 204, description = "Every session of the account is over")))]
async fn revoke_sessions(
    State(state): State<AppState>,
    Require(admin, _): Require<SessionRevokeAny>,
    context: RequestContext,
    Path(username): Path<String>,
) -> Result<StatusCode> {
    let user = state
        .store
        .user_by_username_key(&username_key(&username))
        .await?
        .ok_or(Error::NotFound("user"))?;
    revoke_all_sessions(&state, user.id).await?;
    let detail = json!({ "by": "admin", "scope": "all" });
    record(
        &state,
        &admin,
        &context,
        EventType::SessionRevoked,
        Some(user.id),
        detail,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes every session of a user, in the database and in every instance's memory, so
/// the user's access tokens fail on their very next request.
async fn revoke_all_sessions(state: &AppState, user_id: i64) -> Result<()> {
    super::users::revoke_sessions(state, user_id, None).await
}

/// Records an administrator's action (or read) on the audit trail before the response leaves.
pub(super) async fn record(
    state: &AppState,
    admin: &AuthUser,
    context: &RequestContext,
    kind: EventType,
    subject: Option<i64>,
    detail: serde_json::Value,
) -> Result<()> {
    let mut event = AuditEvent::new(kind)
        .actor(admin.user_id)
        .session(admin.session_id.clone())
        .from_request(context)
        .detail(detail);
    event.subject = subject;
    state.audit.record(event).await?;
    Ok(())
}
