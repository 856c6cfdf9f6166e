//! How the services' errors answer over HTTP: each becomes the status and body its handler
//! gave before the services existed, so a client cannot tell the difference. Internal causes
//! (database, audit trail, password hashing) go through the conversions in [`super::error`]
//! and [`super`], which log them and show only the request id.

use super::error::Error;
use crate::services::accounts::AccountError;
use crate::services::audit_trail::AuditTrailError;
use crate::services::sessions::SessionError;

impl From<SessionError> for Error {
    fn from(error: SessionError) -> Self {
        match error {
            SessionError::Unauthenticated => Error::Unauthorized,
            SessionError::UnknownSession => Error::NotFound("session"),
            SessionError::UnknownUser => Error::NotFound("user"),
            SessionError::Store(error) => error.into(),
            SessionError::Audit(error) => error.into(),
            SessionError::Hash(error) => error.into(),
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
                "administrators cannot change their own account here",
            ),
            AccountError::StaleLogin => {
                Error::invalid("reauthentication", "log in again to grant the admin role")
            }
            AccountError::UnknownUser => Error::NotFound("user"),
            AccountError::Unauthenticated => Error::Unauthorized,
            AccountError::Session(error) => error.into(),
            AccountError::Store(error) => error.into(),
            AccountError::Audit(error) => error.into(),
            AccountError::Hash(error) => error.into(),
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
