//! Registration and login: the two ways a session starts. The rules are the services'
//! ([`crate::services::accounts::registration`], [`crate::services::sessions`]); here the
//! body is read, the per-account login limit applied, and the session's tokens delivered.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;

use super::bodies::{Login, Registration, UserBody};
use super::presenters::{Delivery, UserResponse};
use crate::defense::rate_limit::Policy;
use crate::domain::{Email, FieldErrors};
use crate::http::AppState;
use crate::http::error::{Error, Result};
use crate::http::extract::Json;
use crate::request_context::RequestContext;
use crate::services::sessions::Opening;

#[utoipa::path(post, path = "/api/users", tag = "users",
    request_body = UserBody<Registration>,
    responses(
        (status = 201, description = "Account created; a session starts", body = UserResponse),
        (status = 422, description = "Invalid field, weak password, or username or email taken"),
    ))]
pub(super) async fn register(
    State(state): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    Json(UserBody { user }): Json<UserBody<Registration>>,
) -> Result<impl IntoResponse> {
    let delivery = Delivery::for_new_session(&state, &headers)?;
    let row = state.accounts.register(user.into()).await?;
    let started = state
        .sessions
        .start(row, &context, Opening::Registration)
        .await?;
    let (cookies, body) = delivery.answer(
        &state,
        started.user,
        started.tokens,
        state.clock.now(),
        None,
    );
    Ok((StatusCode::CREATED, cookies, body))
}

#[utoipa::path(post, path = "/api/users/login", tag = "users",
    request_body = UserBody<Login>,
    responses(
        (status = 200, description = "Logged in; a new session starts. With MFA on, no token yet: `{mfa: {challenge, expiresIn}}`, to answer with a code at `POST /api/users/login/mfa`", body = crate::http::mfa::LoginResponse),
        (status = 401, description = "Wrong email or password, or a disabled account (one answer for all)"),
        (status = 422, description = "Email missing or not an address (at most 254 characters), password missing"),
    ))]
pub(super) async fn login(
    State(state): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    Json(UserBody { user }): Json<UserBody<Login>>,
) -> Result<impl IntoResponse> {
    let delivery = Delivery::for_new_session(&state, &headers)?;
    let mut errors = FieldErrors::default();
    // The address is parsed before anything is keyed on it: a 64 KB "email" is a 422 here,
    // never a limiter bucket, trip or alert counter. Every stored address passed the same
    // parse at registration, so no account becomes unreachable.
    // Surrounding spaces are a client's slip, not part of the address.
    let email = user.email.map(|email| email.trim().to_owned());
    let email = errors.required("email", email, Email::parse);
    if user.password.is_none() {
        errors.missing("password");
    }
    errors.finish()?;
    let (Some(email), Some(password)) = (email, user.password) else {
        return Err(Error::Internal("validated fields missing".into()));
    };
    // Per target account, before any work: see `defense::rate_limit` for the lockout rule.
    state
        .rate_limiter
        .check_account(Policy::LoginAccount, email.as_str())
        .await?;
    // With MFA on, the password earns only a challenge (see `http::mfa`).
    let step = state
        .mfa
        .log_in(email.as_str(), &password, &context)
        .await?;
    Ok(crate::http::mfa::login_answer(&state, delivery, step))
}
