//! Step-up ("sudo mode"): sensitive changes need a recent password authentication.
//!
//! Guards against a stolen access token (or an unattended signed-in device) being enough to
//! take the account over or widen an attack: changing the email or password, ending another
//! session, an administrator ending someone's sessions and granting the admin role all need
//! the caller to have proved who they are within `AERIE_STEP_UP_MAX_AGE_SECS`. The proof
//! travels in the access token (`auth_time`, set at login, registration and
//! `POST /api/auth/step-up`, kept by refresh), so the check reads nothing.

use std::time::Duration;

use super::Caller;
use crate::clock::UnixMillis;

/// How recent a password authentication a sensitive change needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepUp {
    pub max_age: Duration,
}

impl StepUp {
    /// Whether the caller authenticated with their password recently enough at `now`.
    pub fn is_recent(self, caller: Caller<'_>, now: UnixMillis) -> bool {
        let max_age = i64::try_from(self.max_age.as_millis()).unwrap_or(i64::MAX);
        now.saturating_sub(caller.authenticated_at) <= max_age
    }
}
