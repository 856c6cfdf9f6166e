//! How the services' errors answer over HTTP: each becomes the status and body its handler
//! gave before the services existed, so a client cannot tell the difference. Internal causes
//! (database, audit trail, password hashing) go through the conversions in [`super::error`]
//! and [`super`], which log them and show only the request id.

use super::error::Error;
use crate::services::accounts::AccountError;
use crate::services::audit_trail::AuditTrailError;
use crate::services::lifecycle::LifecycleError;
use crate::services::markdown::RenderError;
use crate::services::mfa::MfaError;
use crate::services::quotas::{Quota, QuotaError};
use crate::services::sessions::SessionError;

impl From<SessionError> for Error {
    fn from(error: SessionError) -> Self {
        match error {
            // Past login and refresh (whose handlers answer in their own words), a signed-in
            // caller whose session or account is no longer good: their token is refused.
            SessionError::Unauthenticated => Error::InvalidToken,
            SessionError::UnknownSession => Error::NotFound("session"),
            SessionError::UnknownUser => Error::NotFound("user"),
            SessionError::StepUpRequired => Error::StepUpRequired,
            SessionError::WrongPassword => Error::invalid("password", "is incorrect"),
            SessionError::Store(error) => error.into(),
            SessionError::Audit(error) => error.into(),
            SessionError::Hash(error) => error.into(),
        }
    }
}

impl From<MfaError> for Error {
    fn from(error: MfaError) -> Self {
        match error {
            MfaError::Unauthenticated => Error::InvalidToken,
            MfaError::WrongPassword => Error::invalid("password", "is incorrect"),
            MfaError::WrongCode => Error::invalid("code", "is incorrect"),
            MfaError::AlreadyOn => {
                Error::invalid("mfa", "is already on; turn it off first to enrol again")
            }
            MfaError::NotEnrolling => Error::invalid(
                "mfa",
                "enrolment has not been started; start one with POST /api/auth/mfa/totp",
            ),
            MfaError::NotOn => Error::invalid("mfa", "is not on for this account"),
            MfaError::CodeRequired => {
                Error::invalid("code", "is required: this account has MFA on")
            }
            MfaError::Enrolment => Error::Internal(MfaError::Enrolment.to_string()),
            MfaError::Session(error) => error.into(),
            MfaError::Store(error) => error.into(),
            MfaError::Audit(error) => error.into(),
            MfaError::Hash(error) => error.into(),
        }
    }
}

impl From<AccountError> for Error {
    fn from(error: AccountError) -> Self {
        match error {
            AccountError::Invalid(fields) => fields.into(),
            AccountError::Taken(field) => Error::invalid(field, "has already been taken"),
            AccountError::CurrentPasswordMissing => {
                Error::invalid("currentPassword", "is required to change the password")
            }
            AccountError::CurrentPasswordWrong => Error::invalid("currentPassword", "is incorrect"),
            AccountError::OwnAccount => Error::invalid(
                "username",
                "is your own: administrators cannot change their own account here",
            ),
            AccountError::StepUpRequired => Error::StepUpRequired,
            AccountError::UnknownUser => Error::NotFound("user"),
            AccountError::Unauthenticated => Error::InvalidToken,
            AccountError::Session(error) => error.into(),
            AccountError::Store(error) => error.into(),
            AccountError::Audit(error) => error.into(),
            AccountError::Hash(error) => error.into(),
            AccountError::Mail(error) => error.into(),
        }
    }
}

impl From<LifecycleError> for Error {
    fn from(error: LifecycleError) -> Self {
        match error {
            LifecycleError::InvalidToken => Error::invalid("token", "is invalid or has expired"),
            LifecycleError::Invalid(fields) => fields.into(),
            LifecycleError::MailOff => Error::NotFound("mail"),
            LifecycleError::Unauthenticated => Error::InvalidToken,
            LifecycleError::EmailTaken => Error::invalid("email", "has already been taken"),
            LifecycleError::UnknownUser => Error::NotFound("user"),
            LifecycleError::TooManyEmailChanges => Error::QuotaExceeded {
                message: LifecycleError::TooManyEmailChanges.to_string(),
                // The budget is counted over the last hour: by then the oldest link is out.
                retry_after: Some(std::time::Duration::from_secs(3600)),
            },
            LifecycleError::Session(error) => error.into(),
            LifecycleError::Store(error) => error.into(),
            LifecycleError::Audit(error) => error.into(),
            LifecycleError::Hash(error) => error.into(),
        }
    }
}

impl From<QuotaError> for Error {
    /// Too many tags is a plain validation error on `tagList`; every other quota is named
    /// under `quota`, with `Retry-After` when it is a daily budget.
    fn from(error: QuotaError) -> Self {
        match error {
            QuotaError::Exceeded {
                quota: Quota::TagsPerArticle,
                limit,
                ..
            } => Error::invalid("tagList", format!("has too many tags (maximum is {limit})")),
            QuotaError::Exceeded {
                quota,
                limit,
                retry_after,
            } => Error::QuotaExceeded {
                // Read as "quota of 1000 articles per user is reached".
                message: format!("of {limit} {} is reached", quota.describe()),
                retry_after,
            },
            QuotaError::Store(error) => error.into(),
        }
    }
}

impl From<AuditTrailError> for Error {
    fn from(error: AuditTrailError) -> Self {
        match error {
            AuditTrailError::Store(error) => error.into(),
            AuditTrailError::Audit(error) => error.into(),
        }
    }
}

impl From<RenderError> for Error {
    /// A body past a Markdown limit is the client's 422 on `body`, naming the limit.
    fn from(error: RenderError) -> Self {
        match error {
            RenderError::Refused(refusal) => Error::invalid("body", refusal.to_string()),
            RenderError::PoolClosed => Error::Internal(error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use serde_json::{Value, json};

    use super::*;

    async fn answer(error: impl Into<Error>) -> (StatusCode, Value) {
        crate::http::answers_for_tests::status_and_json(error.into().into_response()).await
    }

    /// The answers the handlers gave before the services existed, field for field.
    #[tokio::test]
    async fn service_errors_answer_as_the_handlers_did() {
        let invalid = |field: &str, message: &str| json!({ "errors": { field: [message] } });
        let cases: Vec<(Error, StatusCode, Value)> = vec![
            (
                AccountError::Taken("email").into(),
                StatusCode::UNPROCESSABLE_ENTITY,
                invalid("email", "has already been taken"),
            ),
            (
                AccountError::CurrentPasswordMissing.into(),
                StatusCode::UNPROCESSABLE_ENTITY,
                invalid("currentPassword", "is required to change the password"),
            ),
            (
                AccountError::CurrentPasswordWrong.into(),
                StatusCode::UNPROCESSABLE_ENTITY,
                invalid("currentPassword", "is incorrect"),
            ),
            (
                AccountError::OwnAccount.into(),
                StatusCode::UNPROCESSABLE_ENTITY,
                invalid(
                    "username",
                    "is your own: administrators cannot change their own account here",
                ),
            ),
            (
                AccountError::StepUpRequired.into(),
                StatusCode::FORBIDDEN,
                invalid("auth", "re-authentication required"),
            ),
            (
                SessionError::StepUpRequired.into(),
                StatusCode::FORBIDDEN,
                invalid("auth", "re-authentication required"),
            ),
            (
                SessionError::WrongPassword.into(),
                StatusCode::UNPROCESSABLE_ENTITY,
                invalid("password", "is incorrect"),
            ),
            (
                AccountError::UnknownUser.into(),
                StatusCode::NOT_FOUND,
                invalid("user", "not found"),
            ),
            (
                AccountError::Unauthenticated.into(),
                StatusCode::UNAUTHORIZED,
                invalid("token", crate::http::error::TOKEN_REFUSED),
            ),
            (
                AccountError::Session(SessionError::Unauthenticated).into(),
                StatusCode::UNAUTHORIZED,
                invalid("token", crate::http::error::TOKEN_REFUSED),
            ),
            (
                SessionError::UnknownSession.into(),
                StatusCode::NOT_FOUND,
                invalid("session", "not found"),
            ),
            (
                SessionError::UnknownUser.into(),
                StatusCode::NOT_FOUND,
                invalid("user", "not found"),
            ),
        ];
        for (error, status, body) in cases {
            let what = format!("{error:?}");
            assert_eq!(answer(error).await, (status, body), "{what}");
        }
    }

    /// A database failure inside a service is still the handlers' 500 or 503, never its text.
    #[tokio::test]
    async fn internal_causes_keep_their_statuses() {
        let (status, _) = answer(SessionError::Store(sqlx::Error::PoolTimedOut)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let (status, _) = answer(AccountError::Store(sqlx::Error::RowNotFound)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let (status, _) = answer(AuditTrailError::Store(sqlx::Error::RowNotFound)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        // A connection lost mid-statement (the database restarted, the network cut it).
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let (status, body) = answer(SessionError::Store(sqlx::Error::Io(reset))).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!body.to_string().contains("reset"), "{body}");
    }
}
