//! Accounts: creating them, their owners changing them, administrators changing their role
//! and disabling them.
//!
//! Guards against weak passwords (length and zxcvbn strength, judged against the account's
//! own name and email: [`registration`]), password takeover through a stolen access token
//! (a new password or email needs a recent password authentication, a new password also the
//! current one, and ends every other session: [`own`]), privilege escalation and stale
//! privilege ([`admin`]: granting the admin role needs a recent password authentication;
//! a role change or a disabled account ends every session of the account, so no token
//! carries a role the account no longer has).

pub mod admin;
pub mod own;
pub mod registration;

use std::sync::Arc;

pub use admin::Changed;
pub use own::ProfileChanges;
pub use registration::{NewAccount, ValidAccount, validate_registration};

use super::lifecycle::{Lifecycle, LifecycleError};
use super::sessions::{Revoker, SessionError};
use super::{Recorder, StepUp};
use crate::audit::AuditError;
use crate::auth::password::{HashError, PasswordHasher, PasswordSettings};
use crate::clock::Clock;
use crate::domain::InvalidFields;
use crate::store::Store;

/// The account rules that come from the configuration (the password rules are
/// [`PasswordSettings`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountRules {
    /// Profile images may be `http://` URLs (development only; production needs `https://`).
    pub allow_http_images: bool,
    /// Changing one's email or password, and granting the admin role, need a password
    /// authentication at most this old.
    pub step_up: StepUp,
    /// What `DELETE /api/user` does with what the account wrote.
    pub deletion: AccountDeletion,
}

/// `AERIE_ACCOUNT_DELETION`: what an account's own deletion does with its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountDeletion {
    /// Articles and comments stay, under a random `deleted-…` name; everything personal goes.
    Anonymise,
    /// The account and everything it wrote go.
    Remove,
}

impl AccountDeletion {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Anonymise => "anonymise",
            Self::Remove => "remove",
        }
    }
}

/// Why an account could not be created or changed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Fields that break their rules, all of them.
    #[error(transparent)]
    Invalid(#[from] InvalidFields),
    /// Another account has this username or email (the field's name).
    #[error("{0}: has already been taken")]
    Taken(&'static str),
    /// A new password was given without the current one.
    #[error("currentPassword: is required to change the password")]
    CurrentPasswordMissing,
    #[error("currentPassword: is incorrect")]
    CurrentPasswordWrong,
    /// An administrator tried to change their own role or disable themselves.
    #[error("administrators cannot change their own account here")]
    OwnAccount,
    /// A change that needs a recent password authentication, without one.
    #[error("re-authentication required")]
    StepUpRequired,
    #[error("no such user")]
    UnknownUser,
    /// The caller's own account is disabled or gone.
    #[error("authentication required")]
    Unauthenticated,
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Store(#[from] sqlx::Error),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Mail(#[from] LifecycleError),
}

/// Creates and changes accounts. Cheap to clone: everything inside is shared.
#[derive(Clone)]
pub struct Accounts {
    store: Store,
    hasher: PasswordHasher,
    revoker: Revoker,
    recorder: Recorder,
    clock: Arc<dyn Clock>,
    passwords: PasswordSettings,
    rules: AccountRules,
    /// The mail flows: verification at registration, confirmed address changes, notices.
    /// `None` at the command line.
    lifecycle: Option<Lifecycle>,
}

impl Accounts {
    pub fn new(
        store: Store,
        hasher: PasswordHasher,
        revoker: Revoker,
        recorder: Recorder,
        clock: Arc<dyn Clock>,
        passwords: PasswordSettings,
        rules: AccountRules,
    ) -> Self {
        Self {
            store,
            hasher,
            revoker,
            recorder,
            clock,
            passwords,
            rules,
            lifecycle: None,
        }
    }

    /// Sends mail for what needs it (the server's accounts; the CLI's have none).
    pub fn with_lifecycle(mut self, lifecycle: Lifecycle) -> Self {
        self.lifecycle = Some(lifecycle);
        self
    }

    /// The mail flows, when mail is on.
    fn mail(&self) -> Option<&Lifecycle> {
        self.lifecycle.as_ref().filter(|l| l.enabled())
    }
}
