//! Registration and login: the two ways a session starts. The rules are the services'
//! ([`crate::services::accounts::registration`], [`crate::services::sessions`]); here the
//! body is read, the login guard consulted ([`crate::defense::login_guard`]: failures counted
//! per account and address, never a lockout of the owner's correct login), and the session's
//! tokens delivered with the device token that marks this client as known.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, IntoResponseParts, ResponseParts};

use super::bodies::{Login, Registration, UserBody};
use super::presenters::{Delivery, UserResponse};
use crate::defense::login_guard::{Attempt, DEVICE_COOKIE};
use crate::domain::{Email, FieldErrors};
use crate::http::AppState;
use crate::http::error::{Error, Result};
use crate::http::extract::Json;
use crate::request_context::RequestContext;
use crate::services::mfa::MfaError;
use crate::services::sessions::{Opening, SessionError};

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
        (status = 200, description = "Logged in; a new session starts and the device cookie `__Host-aerie-device` is set (see the login guard). With MFA on, no token yet: `{mfa: {challenge, expiresIn}}`, to answer with a code at `POST /api/users/login/mfa`", body = crate::http::mfa::LoginResponse),
        (status = 401, description = "Wrong email or password, or a disabled account: one answer for all, `{\"errors\":{\"email or password\":[\"is invalid\"]}}`"),
        (status = 422, description = "Email missing or not an address (at most 254 characters), password missing"),
        (status = 429, description = "Too many failed logins for this account from this address or device, from this address or network, or (from an address with recent failures) for this account"),
    ))]
pub(super) async fn login(
    State(state): State<AppState>,
    mut context: RequestContext,
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
    // Looks before any work, charges only failures: see `defense::login_guard`.
    let admitted = state
        .login_guard
        .admit(&Attempt {
            email: email.as_str(),
            ip: context.client.ip.as_deref().and_then(|ip| ip.parse().ok()),
            device: crate::http::cookies::device_token(&headers),
        })
        .await?;
    context.client.known_device = admitted.known_device.is_some();
    // With MFA on, the password earns only a challenge (see `http::mfa`); a correct password
    // still proves the device, so the device cookie is set either way.
    let step = match state.mfa.log_in(email.as_str(), &password, &context).await {
        Ok(step) => step,
        Err(error) => {
            if matches!(error, MfaError::Session(SessionError::Unauthenticated)) {
                state.login_guard.failed(&admitted).await;
                return Err(Error::login_refused());
            }
            return Err(error.into());
        }
    };
    let device = DeviceCookie(state.login_guard.device_token(&admitted));
    Ok((
        device,
        crate::http::mfa::login_answer(&state, delivery, step),
    ))
}

/// `Set-Cookie` for the device token: a year, `HttpOnly`, like the session cookies'
/// `__Host-` rules.
struct DeviceCookie(String);

impl IntoResponseParts for DeviceCookie {
    type Error = Error;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts> {
        crate::http::cookies::append_cookie(
            res.headers_mut(),
            DEVICE_COOKIE,
            &self.0,
            DEVICE_COOKIE_LIFETIME,
            true,
        )?;
        Ok(res)
    }
}

const DEVICE_COOKIE_LIFETIME: std::time::Duration = std::time::Duration::from_secs(365 * 86_400);
