//! The account lifecycle by email (`/api/auth/password-reset`, `/api/auth/email/…`).
//!
//! Guards against account enumeration and reset-link poisoning. A reset request is answered
//! 202 with one body before anything is looked up: the lookup, the token and the mail happen
//! after the answer has gone, so neither the body nor the time says whether the address has
//! an account. Links are built by the sender from `AERIE_APP_URL`, never from this request's
//! `Host`. The token routes share one per-address rate limit (`AERIE_RATE_LIMIT_MAIL`), and
//! tokens are 256 random bits, so guessing one is hopeless anyway. The rules are
//! [`crate::services::lifecycle`]'s.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json as JsonResponse, Router};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{Error, Result};
use super::extract::{AuthUser, Json};
use crate::defense::rate_limit::{Policy, route};
use crate::domain::{Email, FieldErrors};
use crate::request_context::RequestContext;

pub fn router() -> Router<AppState> {
    let limited = || route(Policy::Mail);
    Router::new()
        .route(
            "/api/auth/password-reset",
            post(request_reset).layer(limited()),
        )
        .route(
            "/api/auth/password-reset/confirm",
            post(confirm_reset).layer(limited()),
        )
        .route(
            "/api/auth/email/verify",
            post(verify_email).layer(limited()),
        )
        .route(
            "/api/auth/email/verify/resend",
            post(resend_verification).layer(limited()),
        )
        .route(
            "/api/auth/email/confirm",
            post(confirm_email).layer(limited()),
        )
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    #[schema(value_type = String, format = Email, required = true)]
    email: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ResetConfirmation {
    #[schema(value_type = String, required = true)]
    token: Option<String>,
    #[schema(value_type = String, format = Password, required = true)]
    new_password: Option<SecretString>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    /// The token from the mailed link (after `#token=`).
    #[schema(value_type = String, required = true)]
    token: Option<String>,
}

/// The one answer to every accepted request for a mail.
#[derive(Serialize, ToSchema)]
struct Accepted {
    message: &'static str,
}

const RESET_ACCEPTED: &str =
    "If an account has this address, a link to reset its password is on its way.";

/// `POST /api/auth/password-reset`: always 202 with the same body for a well-formed address,
/// whether or not it has an account; the work happens after the answer.
#[utoipa::path(post, path = "/api/auth/password-reset", tag = "mail",
    request_body = ResetRequest,
    responses(
        (status = 202, description = "Accepted; one body whether or not the address has an account. A link valid for 30 minutes, once, is mailed if it has one", body = Accepted),
        (status = 404, description = "Mail is not configured on this server: `{\"errors\":{\"mail\":[\"not found\"]}}`"),
        (status = 422, description = "A missing or malformed address"),
        (status = 429, description = "Too many mail requests from this address (`AERIE_RATE_LIMIT_MAIL`)"),
    ))]
async fn request_reset(
    State(state): State<AppState>,
    context: RequestContext,
    Json(body): Json<ResetRequest>,
) -> Result<impl IntoResponse> {
    if !state.lifecycle.enabled() {
        return Err(Error::NotFound("mail"));
    }
    let mut errors = FieldErrors::default();
    let email = errors.required("email", body.email, Email::parse);
    errors.finish()?;
    let Some(email) = email else {
        return Err(Error::invalid("email", "can't be blank"));
    };
    let lifecycle = state.lifecycle.clone();
    tokio::spawn(async move {
        if let Err(error) = lifecycle.request_reset(email.as_str(), &context).await {
            tracing::error!(%error, "password reset request");
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        JsonResponse(Accepted {
            message: RESET_ACCEPTED,
        }),
    ))
}

/// `POST /api/auth/password-reset/confirm`: the mailed token sets a new password.
#[utoipa::path(post, path = "/api/auth/password-reset/confirm", tag = "mail",
    request_body = ResetConfirmation,
    responses(
        (status = 204, description = "The password is set; every session of the account is over; MFA, if on, is still asked at the next login"),
        (status = 422, description = "`token`: is invalid or has expired (unknown, spent, expired or for another purpose: one answer); `newPassword`: too weak or missing (the token is not spent)"),
        (status = 404, description = "Mail is not configured on this server"),
        (status = 429, description = "Too many mail requests from this address"),
    ))]
async fn confirm_reset(
    State(state): State<AppState>,
    context: RequestContext,
    Json(body): Json<ResetConfirmation>,
) -> Result<impl IntoResponse> {
    state
        .lifecycle
        .confirm_reset(body.token, body.new_password, &context)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/auth/email/verify`: the mailed token proves the account's address.
#[utoipa::path(post, path = "/api/auth/email/verify", tag = "mail",
    request_body = TokenBody,
    responses(
        (status = 204, description = "The address is verified (`emailVerified: true` in the User shape)"),
        (status = 422, description = "`token`: is invalid or has expired"),
        (status = 404, description = "Mail is not configured on this server"),
    ))]
async fn verify_email(
    State(state): State<AppState>,
    context: RequestContext,
    Json(body): Json<TokenBody>,
) -> Result<impl IntoResponse> {
    state.lifecycle.verify_email(body.token, &context).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/auth/email/verify/resend`: mails a new verification link (earlier ones stop
/// working). Same answer when the address is already verified or the hourly budget is spent.
#[utoipa::path(post, path = "/api/auth/email/verify/resend", tag = "mail",
    responses(
        (status = 202, description = "A new link is on its way, unless the address is verified or three were sent this hour", body = Accepted),
        (status = 404, description = "Mail is not configured on this server"),
    ))]
async fn resend_verification(
    State(state): State<AppState>,
    auth: AuthUser,
    context: RequestContext,
) -> Result<impl IntoResponse> {
    state
        .lifecycle
        .resend_verification(auth.caller(&context))
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        JsonResponse(Accepted {
            message: "A verification link is on its way unless the address is already verified.",
        }),
    ))
}

/// `POST /api/auth/email/confirm`: the link mailed to a new address makes the change.
#[utoipa::path(post, path = "/api/auth/email/confirm", tag = "mail",
    request_body = TokenBody,
    responses(
        (status = 204, description = "The account's address is now the new one, verified"),
        (status = 422, description = "`token`: is invalid or has expired; `email`: has already been taken (another account took it meanwhile)"),
        (status = 404, description = "Mail is not configured on this server"),
    ))]
async fn confirm_email(
    State(state): State<AppState>,
    context: RequestContext,
    Json(body): Json<TokenBody>,
) -> Result<impl IntoResponse> {
    state
        .lifecycle
        .confirm_email_change(body.token, &context)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
