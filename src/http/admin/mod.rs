//! The admin API (`/api/admin`): list accounts, set roles, disable and enable accounts,
//! revoke a user's sessions ([`accounts`]), and query the audit trail ([`audit`]).
//!
//! Guards against privilege escalation and stale privilege. Every route needs a permission
//! from the role matrix (the access table and the `Require<_>` guard both check it).
//! Granting the admin role and ending someone's sessions need a recent password
//! authentication (within `AERIE_STEP_UP_MAX_AGE_SECS`, see [`crate::services::StepUp`]), so a
//! stolen long-lived session cannot mint new admins. Changing a role or disabling an
//! account revokes all of that user's sessions at once, so a token never carries a role
//! the account no longer has. Administrators cannot change their own role or disable
//! themselves (no accidental lock-out of the last admin). Every action, and every read of
//! account data or of the trail, is an audit event naming the administrator. The rules are
//! [`crate::services::accounts`]' and [`crate::services::audit_trail`]'s.

pub(super) mod accounts;
pub(super) mod audit;

use axum::Router;

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(accounts::routes())
        .merge(audit::routes())
}
