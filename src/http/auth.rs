//! Sessions and tokens (`/api/auth`): refresh, logout, and the caller's session list.
//!
//! Guards against stolen refresh tokens (each is single-use: refreshing rotates it, and a
//! rotated token presented again after the grace window is treated as theft, so the whole
//! session family is revoked and a security event names it and the client's address),
//! endless sessions (idle timeout and absolute lifetime), logged-out tokens living on (a
//! revocation takes effect at once, in memory, on every instance) and one user ending
//! another's session (a session id that is not the caller's is a 404, like an unknown one).
//!
//! The grace rule: a rotated token presented again within `AERIE_REFRESH_GRACE_SECS` of its
//! rotation is a concurrent refresh from the same client (two tabs, a retried request) and
//! gets its own successor in the same family; after the window it is reuse.
//!
//! Cookie mode ([`super::cookies`]): the refresh token may come in its cookie instead of the
//! body. Such a refresh needs a trusted `Origin` (or `Referer`) but not the CSRF token: a
//! forged one could only rotate the victim's own cookies inside the victim's browser, and it
//! is how a front end on another origin that lost its copy of the token (a page reload) gets
//! it back, in the `X-CSRF-Token` response header. Logging out clears the cookies.

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
use super::users::{Delivery, RevokedBecause, issue_tokens, record_revoked, revoke_own_sessions};
use crate::audit::{AuditEvent, EventType};
use crate::clock::{UnixMillis, rfc3339};
use crate::defense::csrf;
use crate::request_context::RequestContext;
use crate::store::{RefreshRow, SessionRow};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/refresh", post(refresh))
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/logout-all", post(logout_all))
        .route("/api/auth/sessions", get(list_sessions))
        .route("/api/auth/sessions/{id}", delete(revoke_session))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RefreshRequest {
    #[schema(value_type = String, required = true)]
    refresh_token: Option<String>,
}

fn millis(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// `POST /api/auth/refresh`: rotates the refresh token and answers the User shape (in
/// cookie mode, with the tokens in cookies instead).
#[utoipa::path(post, path = "/api/auth/refresh", tag = "sessions",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new access token and refresh token; the presented one is spent", body = super::users::UserResponse),
        (status = 401, description = "Unknown, expired, revoked or reused refresh token (reuse ends the whole session)"),
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
    let hash = crate::auth::refresh::hash_of_presented(&presented).ok_or(Error::Unauthorized)?;
    let row = state
        .store
        .refresh_token(&hash)
        .await?
        .ok_or(Error::Unauthorized)?;
    let now = state.clock.now();
    check_family(&state, &row, now, &context).await?;
    if row.rotated_at.is_none() {
        // Losing this race means another request rotated it a moment ago: a concurrent
        // refresh, inside the grace window by definition.
        state.store.mark_refresh_token_rotated(&hash, now).await?;
    }
    let user = match state.store.user_by_id(row.user_id).await? {
        Some(user) if user.disabled_at.is_none() => user,
        _ => return Err(Error::Unauthorized),
    };
    state.store.touch_session(&row.session_id, now).await?;
    let tokens = issue_tokens(&state, &user, &row.session_id).await?;
    let rotated = AuditEvent::new(EventType::RefreshRotated)
        .actor(user.id)
        .subject(user.id)
        .session(row.session_id.clone())
        .from_request(&context);
    state.audit.record(rotated).await?;
    let csrf_token = cookies::csrf_token_to_keep(&state.cookies, &headers);
    Ok(delivery.answer(&state, user, tokens, row.created_at, Some(csrf_token)))
}

/// Refuses a token whose session is over, and revokes the family on reuse.
async fn check_family(
    state: &AppState,
    row: &RefreshRow,
    now: UnixMillis,
    context: &RequestContext,
) -> Result<()> {
    if row.revoked_at.is_some() {
        return Err(Error::Unauthorized);
    }
    if row
        .rotated_at
        .is_some_and(|rotated| now - rotated > millis(state.session_times.refresh_grace))
    {
        let revoked = state
            .store
            .revoke_session(&row.session_id, row.user_id, now)
            .await?;
        state.revocations.announce(&state.store, &revoked).await?;
        // Whoever presented it is unknown (the thief or the rightful client): no actor. The
        // alert rule `refresh_reuse` fires on this event.
        let event = AuditEvent::new(EventType::RefreshReuseDetected)
            .subject(row.user_id)
            .session(row.session_id.clone())
            .from_request(context)
            .detail(serde_json::json!({ "sessionFamily": row.session_id }));
        state.audit.record(event).await?;
        return Err(Error::Unauthorized);
    }
    let idle = now - row.last_seen_at > millis(state.session_times.idle_timeout);
    let too_old = now - row.created_at > millis(state.session_times.max_lifetime);
    if idle || too_old {
        return Err(Error::Unauthorized);
    }
    Ok(())
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
    let revoked = state
        .store
        .revoke_session(&auth.session_id, auth.user_id, state.clock.now())
        .await?;
    state.revocations.announce(&state.store, &revoked).await?;
    let event = AuditEvent::new(EventType::Logout)
        .actor(auth.user_id)
        .subject(auth.user_id)
        .session(auth.session_id.clone())
        .from_request(&context);
    state.audit.record(event).await?;
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
    revoke_own_sessions(&state, &auth, &context, RevokedBecause::LogoutAll).await?;
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
    current: bool,
}

/// `GET /api/auth/sessions`: the caller's live sessions, newest first.
#[utoipa::path(get, path = "/api/auth/sessions", tag = "sessions",
    responses((status = 200, description = "The caller's live sessions, newest first", body = SessionList)))]
async fn list_sessions(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<JsonResponse<SessionList>> {
    let now = state.clock.now();
    let rows = state
        .store
        .live_sessions(
            auth.user_id,
            now - millis(state.session_times.idle_timeout),
            now - millis(state.session_times.max_lifetime),
        )
        .await?;
    let sessions = rows
        .into_iter()
        .map(|row: SessionRow| SessionView {
            current: row.id == auth.session_id,
            id: row.id,
            created_at: rfc3339(row.created_at),
            last_used_at: rfc3339(row.last_seen_at),
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
    responses((status = 204, description = "That session is over")))]
async fn revoke_session(
    State(state): State<AppState>,
    auth: AuthUser,
    context: RequestContext,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    let revoked = state
        .store
        .revoke_session(&id, auth.user_id, state.clock.now())
        .await?;
    if revoked.is_empty() {
        return Err(Error::NotFound("session"));
    }
    state.revocations.announce(&state.store, &revoked).await?;
    let because = RevokedBecause::SessionDeleted;
    record_revoked(&state, &auth, &context, because, &id, &revoked).await?;
    let own = id == auth.session_id;
    Ok((
        own.then(|| cleared_if_cookie(&auth)).flatten(),
        StatusCode::NO_CONTENT,
    ))
}
