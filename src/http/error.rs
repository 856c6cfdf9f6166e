//! The one error type. Every failure a handler can meet becomes one of these variants, and
//! this file alone decides the status and the body: 4xx bodies follow the RealWorld shape
//! `{"errors": {"<field>": ["<message>"]}}`; 5xx bodies say only "internal error" and carry
//! the request id (added by [`normalize_error_body`]), while the cause goes to the log.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::password::HashError;
use crate::defense::csrf::CsrfError;
use crate::defense::host::HostError;
use crate::defense::rate_limit::{Allowed, Limited, Refused, add_headers, ceil_secs};
use crate::domain::InvalidFields;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Names, on a 403 that asks for re-authentication, the route that gives it.
pub const STEP_UP_HEADER: &str = "x-aerie-step-up";
/// The step-up route (`POST`).
pub const STEP_UP_ROUTE: &str = "/api/auth/step-up";

/// Why an unverified account may not write, and what to do about it.
pub const EMAIL_UNVERIFIED: &str = "must be verified before this account can write: follow the link mailed to it, or ask for a new one with POST /api/auth/email/verify/resend";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No credential at all on a route that needs one. The body is [`TOKEN_REFUSED`], the
    /// same as [`Error::InvalidToken`]'s (API.md: one generic 401 message).
    #[error("authentication required")]
    Unauthorized,
    /// An access token was presented and refused: bad, expired, revoked, its session idle.
    /// One body for all, so the caller cannot tell which check failed; only the
    /// `WWW-Authenticate` challenge adds `error="invalid_token"` (RFC 6750 §3.1), which tells
    /// the caller nothing beyond that it sent a token.
    #[error("invalid token")]
    InvalidToken,
    /// Credentials other than an access token were refused (a login's email and password, a
    /// refresh token, an MFA login code): a 401 naming what to check, in the RealWorld words
    /// (`{"errors":{"email or password":["is invalid"]}}`), one answer for every reason.
    #[error("{field} {message}")]
    CredentialsRefused {
        field: &'static str,
        message: &'static str,
    },
    #[error("forbidden")]
    Forbidden,
    /// The change needs a recent password authentication: the body says so and the
    /// [`STEP_UP_HEADER`] names the route that gives one.
    #[error("re-authentication required")]
    StepUpRequired,
    /// The caller's role needs MFA (`AERIE_MFA_REQUIRED_ROLES`) and the account has none:
    /// its permissions are withheld until it enrols.
    #[error("enrolment required")]
    MfaEnrolmentRequired,
    /// `AERIE_REQUIRE_VERIFIED_EMAIL` is on and the caller's address is not verified.
    #[error("email not verified")]
    EmailUnverified,
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Field-level validation failures, all reported at once.
    #[error("validation failed")]
    Unprocessable(BTreeMap<&'static str, Vec<String>>),
    /// The request cannot be read: `field` names what is wrong (`body`, `Host`), `message`
    /// says how, so a client printing "field message" prints a sentence.
    #[error("malformed request: {field} {message}")]
    BadRequest {
        field: &'static str,
        message: String,
    },
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("content type must be application/json")]
    UnsupportedMediaType,
    /// A rate-limit policy refused the request; the response says when to come back.
    #[error("too many requests")]
    TooManyRequests(Limited),
    /// A per-user quota refused a write: a 429 with `Retry-After` for a daily budget, a 422
    /// for a standing limit (delete something first).
    #[error("{message}")]
    QuotaExceeded {
        message: String,
        retry_after: Option<std::time::Duration>,
    },
    /// A dependency (database pool) is saturated or down; retrying later may work.
    #[error("service unavailable")]
    Unavailable,
    #[error("internal error: {0}")]
    Internal(String),
}

/// The one message of every refused or missing access token (API.md: "401: no token, bad
/// token, expired token, revoked session — one generic message"), under the `token` key so
/// that a client printing "key message" prints a sentence a person can act on.
pub const TOKEN_REFUSED: &str = "is missing, invalid or expired; please log in";

/// The 403 body of a role that must have MFA, for an account without it.
pub const MFA_ENROLMENT_REQUIRED: &str = "enrolment required: this role's permissions need multi-factor authentication; enrol with POST /api/auth/mfa/totp, then POST /api/auth/mfa/totp/confirm";

/// Marks a response whose body this module wrote, so [`normalize_error_body`] keeps it.
#[derive(Clone, Copy)]
struct ShapedError;

/// Marks a 5xx whose body is a status document in a fixed vocabulary (readiness: `ok`,
/// `unreachable`, `shutting_down`), written for operators and holding no internal detail,
/// so [`normalize_error_body`] keeps it.
#[derive(Clone, Copy)]
pub struct StatusDocument;

impl Error {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Unprocessable(BTreeMap::from([(field, vec![message.into()])]))
    }

    /// A body that cannot be read: a 400 on `body`.
    pub fn malformed_body(message: impl Into<String>) -> Self {
        Self::BadRequest {
            field: "body",
            message: message.into(),
        }
    }

    /// A failed login: one answer whether the account is unknown, disabled or the password
    /// wrong (the reason stays in the audit trail).
    pub fn login_refused() -> Self {
        Self::CredentialsRefused {
            field: "email or password",
            message: "is invalid",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Error::Unauthorized | Error::InvalidToken | Error::CredentialsRefused { .. } => {
                StatusCode::UNAUTHORIZED
            }
            Error::Forbidden
            | Error::StepUpRequired
            | Error::MfaEnrolmentRequired
            | Error::EmailUnverified => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Error::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::QuotaExceeded {
                retry_after: Some(_),
                ..
            } => StatusCode::TOO_MANY_REQUESTS,
            Error::QuotaExceeded { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let limited = match &self {
            Error::TooManyRequests(limited) => Some(*limited),
            _ => None,
        };
        let quota_retry = match &self {
            Error::QuotaExceeded { retry_after, .. } => *retry_after,
            _ => None,
        };
        let step_up = matches!(self, Error::StepUpRequired);
        let challenge = match &self {
            Error::InvalidToken => Some(INVALID_TOKEN_CHALLENGE),
            Error::Unauthorized | Error::CredentialsRefused { .. } => Some(CHALLENGE),
            _ => None,
        };
        let errors = match self {
            Error::Unauthorized | Error::InvalidToken => json!({ "token": [TOKEN_REFUSED] }),
            Error::CredentialsRefused { field, message } => json!({ field: [message] }),
            Error::Forbidden => json!({ "access": ["is denied"] }),
            Error::NotFound(what) => json!({ what: ["not found"] }),
            Error::BadRequest { field, message } => json!({ field: [message] }),
            Error::PayloadTooLarge => json!({ "body": ["is too large"] }),
            Error::UnsupportedMediaType => {
                json!({ "Content-Type": ["must be application/json"] })
            }
            Error::TooManyRequests(limited) => {
                let wait = ceil_secs(limited.retry_after).max(1);
                let message = format!("are too many; try again in {wait} s");
                json!({ "requests": [message] })
            }
            Error::Unprocessable(fields) => json!(fields),
            Error::QuotaExceeded { message, .. } => json!({ "quota": [message] }),
            Error::Internal(cause) => {
                tracing::error!(%cause, "request failed");
                return status.into_response(); // body written by normalize_error_body
            }
            Error::Unavailable => return status.into_response(),
            Error::StepUpRequired => json!({ "auth": ["re-authentication required"] }),
            Error::MfaEnrolmentRequired => json!({ "mfa": [MFA_ENROLMENT_REQUIRED] }),
            Error::EmailUnverified => json!({ "email": [EMAIL_UNVERIFIED] }),
        };
        let mut response = (status, Json(json!({ "errors": errors }))).into_response();
        response.extensions_mut().insert(ShapedError);
        if let Some(limited) = limited {
            rate_limit_headers(response.headers_mut(), &limited);
        }
        if let Some(wait) = quota_retry {
            let secs = ceil_secs(wait).max(1);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if step_up {
            response
                .headers_mut()
                .insert(STEP_UP_HEADER, HeaderValue::from_static(STEP_UP_ROUTE));
        }
        if let Some(challenge) = challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

/// The schemes a 401 offers: RealWorld's `Token` and RFC 6750's `Bearer`, both accepted.
pub const CHALLENGE: &str = "Token, Bearer";
/// [`CHALLENGE`] after a presented token was refused (RFC 6750 §3.1: `invalid_token`, with no
/// description, so an expired token reads the same as a forged one).
pub const INVALID_TOKEN_CHALLENGE: &str = r#"Token, Bearer error="invalid_token""#;

/// An integer `Retry-After` (at least 1: "0" invites an immediate retry storm) and the
/// `RateLimit` headers naming the policy that refused.
fn rate_limit_headers(headers: &mut axum::http::HeaderMap, limited: &Limited) {
    let retry_after = ceil_secs(limited.retry_after).max(1);
    headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    add_headers(
        headers,
        &Allowed {
            policy: limited.policy,
            rate: limited.rate,
            remaining: 0,
            reset: std::time::Duration::from_secs(retry_after),
        },
    );
}

impl From<Limited> for Error {
    fn from(limited: Limited) -> Self {
        Error::TooManyRequests(limited)
    }
}

impl From<Refused> for Error {
    /// A store that fails closed answers 503: the request may succeed once Redis is back.
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Limited(limited) => limited.into(),
            Refused::StoreUnavailable => Error::Unavailable,
        }
    }
}

/// The rate-limit layers' answer to a refused request: the same 429 (or 503) a handler's
/// refusal gets. Handed to [`crate::defense::rate_limit::Enforcement`] when the layer stack is
/// built, so the defence answers in this module's shape without depending on it.
pub fn refusal_response(refused: Refused) -> Response {
    Error::from(refused).into_response()
}

impl From<CsrfError> for Error {
    /// Every failed CSRF proof is one 403: a probing page must not learn which one failed.
    fn from(_: CsrfError) -> Self {
        Error::Forbidden
    }
}

impl From<HostError> for Error {
    fn from(error: HostError) -> Self {
        let message = match error {
            HostError::Missing => "header is missing",
            HostError::Repeated => "header is repeated",
        };
        Error::BadRequest {
            field: "Host",
            message: message.into(),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        match error {
            // The statement ran past its budget and was stopped: the connection is free
            // again and a retry may succeed.
            other if crate::store::is_budget_exceeded(&other) => {
                tracing::warn!(error = %other, "database statement exceeded its budget");
                crate::metrics::count_db_budget_exceeded();
                Error::Unavailable
            }
            // Down, unreachable, cut off mid-statement or out of disk: a 503 the client may
            // retry, never a 500 carrying the driver's words.
            other if crate::store::is_unavailable(&other) => {
                crate::store::report_unavailable(&other);
                Error::Unavailable
            }
            other => Error::Internal(format!("database: {other}")),
        }
    }
}

impl From<HashError> for Error {
    fn from(error: HashError) -> Self {
        Error::Internal(error.to_string())
    }
}

impl From<InvalidFields> for Error {
    fn from(InvalidFields(fields): InvalidFields) -> Self {
        Error::Unprocessable(fields)
    }
}

/// The words of a 4xx that no handler wrote (the router's 405, a tower layer's 408 or 413),
/// as "field message" a person can read.
fn unshaped_client_error(status: StatusCode) -> (&'static str, String) {
    match status {
        StatusCode::METHOD_NOT_ALLOWED => ("method", "is not allowed on this route".into()),
        StatusCode::PAYLOAD_TOO_LARGE => ("body", "is too large".into()),
        StatusCode::REQUEST_TIMEOUT => ("request", "took too long".into()),
        other => (
            "request",
            format!(
                "was refused: {}",
                other
                    .canonical_reason()
                    .unwrap_or("client error")
                    .to_ascii_lowercase()
            ),
        ),
    }
}

/// Gives every error response the documented shape, whoever produced it: the router's
/// 404/405, body-limit 413s, timeouts and caught panics. 5xx bodies are replaced even when
/// shaped, so no internal detail can leak, and they carry the request id for support.
/// Called by the layer that shapes answers ([`super::shaping`]), below the request id's
/// layer, with the request's id.
pub fn normalize_error_body(response: Response, request_id: Option<&HeaderValue>) -> Response {
    let status = response.status();
    let shaped = response.extensions().get::<ShapedError>().is_some();
    if response.extensions().get::<StatusDocument>().is_some()
        || !(status.is_server_error() || (status.is_client_error() && !shaped))
    {
        return response;
    }
    let body = if status.is_server_error() {
        let message = if status == StatusCode::SERVICE_UNAVAILABLE {
            "service unavailable"
        } else {
            "internal error"
        };
        let request_id = request_id.and_then(|v| v.to_str().ok());
        json!({ "errors": { "body": [message] }, "requestId": request_id.unwrap_or_default() })
    } else {
        let (field, message) = unshaped_client_error(status);
        json!({ "errors": { field: [message] } })
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body.to_string()))
}
