//! Sessions and tokens (`/api/auth`): refresh, logout, and the caller's session list.
//!
//! Guards against stolen refresh tokens (each is single-use: refreshing rotates it, and a
//! rotated token presented again after the grace window is treated as theft, so the whole
//! session family is revoked and a security event names it and the client's address),
//! endless sessions (idle timeout and absolute lifetime), logged-out tokens living on (a
//! revocation takes effect at once, in memory, on every instance) and one user ending
//! another's session (a session id that is not the caller's is a 404, like an unknown one).
//!
//! Step-up (`POST /api/auth/step-up`): a signed-in caller types their password again and gets
//! a new access token for the same session carrying `auth_time` = now, which changing the
//! email or password, ending another session and an admin's sensitive actions require
//! (within `AERIE_STEP_UP_MAX_AGE_SECS`); such a request without it gets 403 and the
//! `X-Aerie-Step-Up` header naming this route.
//!
//! The grace rule: a rotated token presented again within `AERIE_REFRESH_GRACE_SECS` of its
//! rotation is a concurrent refresh from the same client (two tabs, a retried request) and
//! gets the same successor as the first refresh (rotation is idempotent, so the family never
//! forks); after the window it is reuse. Refreshing is rate limited per client IP
//! (`AERIE_RATE_LIMIT_REFRESH`), a credential route like login.
//!
//! Cookie mode ([`super::cookies`]): the refresh token may come in its cookie instead of the
//! body. Such a refresh needs a trusted `Origin` (or `Referer`) but not the CSRF token: a
//! forged one could only rotate the victim's own cookies inside the victim's browser, and it
//! is how a front end on another origin that lost its copy of the token (a page reload) gets
//! it back, in the `X-CSRF-Token` response header. Logging out clears the cookies.
//!
//! The rules are [`crate::services::sessions`]'s; these handlers pick where the refresh
//! token comes from and how the answer goes back.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json as JsonResponse, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::cookies::{self, ClearedCookies};
use super::error::{Error, Result};
use super::extract::{AuthUser, Json};
use super::mfa::PasswordOrCode;
use super::users::presenters::{Delivery, UserResponse};
use crate::clock::rfc3339;
use crate::defense::csrf;
use crate::defense::rate_limit::{Policy, route};
use crate::request_context::RequestContext;
use crate::services::sessions::{RevokedBecause, SessionError};
use crate::store::SessionRow;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/auth/refresh",
            post(refresh).layer(route(Policy::Refresh)),
        )
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/logout-all", post(logout_all))
        .route(
            "/api/auth/step-up",
            post(step_up).layer(route(Policy::LoginIp)),
        )
        .route("/api/auth/sessions", get(list_sessions))
        .route("/api/auth/sessions/{id}", delete(revoke_session))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RefreshRequest {
    #[schema(value_type = String, required = true)]
    refresh_token: Option<String>,
}

/// `POST /api/auth/refresh`: rotates the refresh token and answers the User shape (in
/// cookie mode, with the tokens in cookies instead).
#[utoipa::path(post, path = "/api/auth/refresh", tag = "sessions",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new access token and refresh token; the presented one is spent", body = super::users::presenters::UserResponse),
        (status = 401, description = "Unknown, expired, revoked or reused refresh token (reuse ends the whole session); one answer for all, `{\"errors\":{\"refreshToken\":[\"is invalid or has expired; please log in\"]}}`"),
    ))]
async fn refresh(
    State(state): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    Json(body): Json<RefreshRequest>,
) -> Result<impl IntoResponse> {
    let (presented, delivery) = match body.refresh_token {
        Some(token) if cookies::requested(&state.cookies, &headers) => {
            csrf::check_origin(&headers, &state.origins, csrf::OriginRule::IfPresent)?;
            (token, Delivery::Cookies)
        }
        Some(token) => (token, Delivery::Body),
        None => {
            let token = cookies::read(&state.cookies, &headers, cookies::REFRESH_COOKIE)
                .ok_or_else(|| Error::invalid("refreshToken", "can't be blank"))?;
            csrf::check_origin(&headers, &state.origins, csrf::OriginRule::Required)?;
            (token.to_owned(), Delivery::Cookies)
        }
    };
    let refreshed =
        state
            .sessions
            .refresh(&presented, &context)
            .await
            .map_err(|error| match error {
                // Unknown, expired, revoked or reused: one answer (see `services::sessions`).
                SessionError::Unauthenticated => Error::CredentialsRefused {
                    field: "refreshToken",
                    message: "is invalid or has expired; please log in",
                },
                other => other.into(),
            })?;
    let csrf_token = cookies::csrf_token_to_keep(&state.cookies, &headers);
    Ok(delivery.answer(
        &state,
        refreshed.user,
        refreshed.tokens,
        refreshed.session_created_at,
        Some(csrf_token),
    ))
}

/// `POST /api/auth/step-up`: the caller proves who they are again (their password, or with
/// MFA on a code) and gets an access token for the same session whose `auth_time` is now, as
/// the sensitive changes require (see [`crate::services::StepUp`]). A wrong password is
/// charged by the login guard (this session's pair budget and the account's), a code to the
/// MFA budget, both to the per-IP login limit; a wrong one is audited and changes nothing.
#[utoipa::path(post, path = "/api/auth/step-up", tag = "sessions",
    request_body = PasswordOrCode,
    responses(
        (status = 200, description = "A new access token for the same session, authenticated now (the refresh token is unchanged)", body = super::users::presenters::UserResponse),
        (status = 422, description = "Wrong or missing password or code; the password of an account with MFA on (it needs a code); a code for an account without MFA; both given"),
        (status = 429, description = "The account's login or MFA budget, or the address's login limit, is spent"),
    ))]
async fn step_up(
    State(state): State<AppState>,
    auth: AuthUser,
    context: RequestContext,
    Json(body): Json<PasswordOrCode>,
) -> Result<impl IntoResponse> {
    let (proof, attempt) = body.admitted_proof(&state, &auth, &context).await?;
    let stepped = state.mfa.step_up(auth.caller(&context), &proof).await;
    let stepped = attempt.settle(&state, stepped).await?;
    Ok(UserResponse::stepped_up(
        &state,
        stepped.user,
        stepped.access,
        auth.via_cookie,
    ))
}

/// The cookies to expire when the caller's own session ends and it came in a cookie.
fn cleared_if_cookie(auth: &AuthUser) -> Option<ClearedCookies> {
    auth.via_cookie.then_some(ClearedCookies)
}

/// `POST /api/auth/logout`: ends the caller's session.
#[utoipa::path(post, path = "/api/auth/logout", tag = "sessions",
    responses((status = 204, description = "The caller's session is over")))]
async fn logout(
    State(state): State<AppState>,
    auth: AuthUser,
    context: RequestContext,
) -> Result<impl IntoResponse> {
    state.sessions.log_out(auth.caller(&context)).await?;
    Ok((cleared_if_cookie(&auth), StatusCode::NO_CONTENT))
}

/// `POST /api/auth/logout-all`: ends every session of the caller, this one included.
#[utoipa::path(post, path = "/api/auth/logout-all", tag = "sessions",
    responses((status = 204, description = "Every session of the caller is over")))]
async fn logout_all(
    State(state): State<AppState>,
    auth: AuthUser,
    context: RequestContext,
) -> Result<impl IntoResponse> {
    let caller = auth.caller(&context);
    let revoker = state.sessions.revoker();
    revoker
        .revoke_own(caller, RevokedBecause::LogoutAll)
        .await?;
    Ok((cleared_if_cookie(&auth), StatusCode::NO_CONTENT))
}

#[derive(Serialize, ToSchema)]
struct SessionList {
    sessions: Vec<SessionView>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Session)]
struct SessionView {
    id: String,
    #[schema(format = DateTime)]
    created_at: String,
    /// The last login or refresh: access tokens are checked without a database write.
    #[schema(format = DateTime)]
    last_used_at: String,
    #[schema(required = true)]
    ip: Option<String>,
    #[schema(required = true)]
    user_agent: Option<String>,
    /// The address of the session's last login or refresh.
    #[schema(required = true)]
    last_ip: Option<String>,
    /// The device of its last login or refresh, coarsely (`Firefox on Linux`, `curl`).
    last_device: String,
    current: bool,
}

/// `GET /api/auth/sessions`: the caller's live sessions, newest first.
#[utoipa::path(get, path = "/api/auth/sessions", tag = "sessions",
    responses((status = 200, description = "The caller's live sessions, newest first", body = SessionList)))]
async fn list_sessions(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<JsonResponse<SessionList>> {
    let rows = state.sessions.live(auth.user_id).await?;
    let sessions = rows
        .into_iter()
        .map(|row: SessionRow| SessionView {
            current: row.id == auth.session_id,
            id: row.id,
            created_at: rfc3339(row.created_at),
            last_used_at: rfc3339(row.last_seen_at),
            last_device: crate::services::devices::device_family(row.last_user_agent.as_deref()),
            last_ip: row.last_ip,
            ip: row.client_ip,
            user_agent: row.user_agent,
        })
        .collect();
    Ok(JsonResponse(SessionList { sessions }))
}

/// `DELETE /api/auth/sessions/:id`: ends one of the caller's sessions. Someone else's id is
/// answered exactly like an unknown one.
#[utoipa::path(delete, path = "/api/auth/sessions/{id}", tag = "sessions",
    params(("id" = String, Path, description = "A session id from `GET /api/auth/sessions`")),
    responses(
        (status = 204, description = "That session is over"),
        (status = 403, description = "Another than the current session: re-authentication required: no password authentication within AERIE_STEP_UP_MAX_AGE_SECS; the `X-Aerie-Step-Up` header names `POST /api/auth/step-up`"),
    ))]
async fn revoke_session(
    State(state): State<AppState>,
    auth: AuthUser,
    context: RequestContext,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    let caller = auth.caller(&context);
    state.sessions.revoker().revoke_one(caller, &id).await?;
    let own = id == auth.session_id;
    Ok((
        own.then(|| cleared_if_cookie(&auth)).flatten(),
        StatusCode::NO_CONTENT,
    ))
}
