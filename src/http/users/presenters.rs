//! How the caller's account and a session's tokens are answered: the User response, and
//! whether the tokens go in the body or (cookie mode) in `HttpOnly` cookies the page's
//! scripts cannot read.

use axum::http::HeaderMap;
use serde::Serialize;
use utoipa::ToSchema;

use crate::clock::UnixMillis;
use crate::defense::csrf;
use crate::http::AppState;
use crate::http::cookies::{self, SessionCookies};
use crate::http::error::Result;
use crate::http::extract::AuthUser;
use crate::services::sessions::Tokens;
use crate::store::UserRow;

#[derive(Serialize, ToSchema)]
pub(in crate::http) struct UserResponse {
    user: UserView,
}

/// The caller's own account. `token` is the access token; `refreshToken` only comes with
/// a new session or a refresh.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = User)]
struct UserView {
    email: String,
    /// Absent in cookie mode: the browser's `HttpOnly` cookie holds it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    token: Option<String>,
    /// Only when a session starts or is refreshed: it is never stored in readable form.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    refresh_token: Option<String>,
    username: String,
    /// `null` when unset (always present, as RealWorld clients expect).
    #[schema(required = true)]
    bio: Option<String>,
    #[schema(required = true)]
    image: Option<String>,
    #[schema(value_type = crate::domain::Role)]
    role: String,
    /// Whether a mailed link proved `email` (an address change waiting for confirmation is
    /// not shown until it is confirmed).
    email_verified: bool,
}

impl UserResponse {
    /// The caller's account, echoing the access token unless it came in a cookie.
    pub(super) fn for_caller(row: UserRow, auth: AuthUser) -> Self {
        let token = (!auth.via_cookie).then_some(auth.token);
        Self::build(row, token, None)
    }

    /// After a step-up: the new access token in the body, or (when the caller's came in a
    /// cookie) in the access cookie only; the refresh token is unchanged and not repeated.
    pub(in crate::http) fn stepped_up(
        state: &AppState,
        row: UserRow,
        access: String,
        via_cookie: bool,
    ) -> (Option<cookies::AccessCookie>, axum::Json<Self>) {
        if !via_cookie {
            return (None, axum::Json(Self::build(row, Some(access), None)));
        }
        let cookie = cookies::AccessCookie {
            token: access,
            lifetime: state.tokens.ttl(),
        };
        (Some(cookie), axum::Json(Self::build(row, None, None)))
    }

    fn with_tokens(row: UserRow, tokens: Tokens) -> Self {
        Self::build(row, Some(tokens.access), Some(tokens.refresh))
    }

    fn build(row: UserRow, token: Option<String>, refresh_token: Option<String>) -> Self {
        Self {
            user: UserView {
                email_verified: row.email_verified_at.is_some(),
                email: row.email,
                token,
                refresh_token,
                username: row.username,
                bio: row.bio,
                image: row.image,
                role: row.role,
            },
        }
    }
}

/// How a new or refreshed session's tokens reach the client: in the body, or (cookie mode)
/// in cookies, with a body that carries neither token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::http) enum Delivery {
    Body,
    Cookies,
}

impl Delivery {
    /// For login and register: cookies when asked for or configured, and then only for a
    /// request that names no foreign origin (another site must not sign the browser into an
    /// account of its choosing).
    pub(in crate::http) fn for_new_session(state: &AppState, headers: &HeaderMap) -> Result<Self> {
        if !cookies::requested(&state.cookies, headers) {
            return Ok(Self::Body);
        }
        csrf::check_origin(headers, &state.origins, csrf::OriginRule::IfPresent)?;
        Ok(Self::Cookies)
    }

    /// The answer for a session created at `session_created_at`. A refreshed session keeps
    /// the CSRF token the browser holds (`csrf_token`); a new one gets a fresh one.
    pub(in crate::http) fn answer(
        self,
        state: &AppState,
        row: UserRow,
        tokens: Tokens,
        session_created_at: UnixMillis,
        csrf_token: Option<String>,
    ) -> (Option<SessionCookies>, axum::Json<UserResponse>) {
        if self == Self::Body {
            return (None, axum::Json(UserResponse::with_tokens(row, tokens)));
        }
        let cookies = SessionCookies {
            access: tokens.access,
            access_lifetime: state.tokens.ttl(),
            refresh: tokens.refresh,
            refresh_lifetime: SessionCookies::refresh_lifetime(
                &state.session_times,
                session_created_at,
                state.clock.now(),
            ),
            csrf: csrf_token.unwrap_or_else(csrf::mint_token),
        };
        (
            Some(cookies),
            axum::Json(UserResponse::build(row, None, None)),
        )
    }
}
