//! The account lifecycle by email: password reset, address verification, confirmed email
//! changes and the security notices that go with account changes.
//!
//! Guards against account takeover through the mail flows. Tokens are 256 random bits, kept
//! only as their SHA-256, bound to one purpose and account, short-lived and spent once
//! (`store::mail`); a reset ends every session of the account and leaves MFA on; a reset
//! request answers the same whether or not the address has an account (the caller answers
//! 202 before this service looks anything up); a change of address takes effect only when
//! the new address confirms it, and the old one hears about it. Every mail is queued in the
//! same transaction as its token.

mod notices;
mod reset;
mod tokens;
mod verify;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

pub use notices::{Notice, Notifier};
pub use tokens::MailToken;

use super::Recorder;
use super::sessions::{Revoker, SessionError};
use crate::audit::AuditError;
use crate::auth::password::{HashError, PasswordHasher, PasswordSettings};
use crate::clock::Clock;
use crate::domain::InvalidFields;
use crate::mail::{Kind, Sender};
use crate::store::{MailBudget, NewMailToken, OutgoingMail, Store};

/// How long a mailed link works.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// Mails of one purpose one account may be sent per hour (reset, verification, change):
/// whoever knows an address cannot flood its inbox.
const MAILS_PER_ACCOUNT_HOUR: i64 = 3;

/// What a token is for: one purpose each, and a token of one is refused by the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    PasswordReset,
    VerifyEmail,
    EmailChange,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::PasswordReset => "password_reset",
            Purpose::VerifyEmail => "verify_email",
            Purpose::EmailChange => "email_change",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The token is unknown, spent, expired or for another purpose: one answer for all.
    #[error("token: is invalid or has expired")]
    InvalidToken,
    #[error(transparent)]
    Invalid(#[from] InvalidFields),
    /// Mail is not configured on this server.
    #[error("mail is not configured on this server")]
    MailOff,
    #[error("authentication required")]
    Unauthenticated,
    #[error("email: has already been taken")]
    EmailTaken,
    #[error("no such user")]
    UnknownUser,
    /// The account's email-change links for the hour are spent.
    #[error("email changes: 3 links an hour; try again later")]
    TooManyEmailChanges,
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Store(#[from] sqlx::Error),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Hash(#[from] HashError),
}

/// The mail flows. Cheap to clone.
#[derive(Clone)]
pub struct Lifecycle {
    store: Store,
    hasher: PasswordHasher,
    revoker: Revoker,
    recorder: Recorder,
    clock: Arc<dyn Clock>,
    passwords: PasswordSettings,
    sender: Sender,
}

impl Lifecycle {
    pub fn new(
        store: Store,
        hasher: PasswordHasher,
        revoker: Revoker,
        recorder: Recorder,
        clock: Arc<dyn Clock>,
        passwords: PasswordSettings,
        sender: Sender,
    ) -> Self {
        Self {
            store,
            hasher,
            revoker,
            recorder,
            clock,
            passwords,
            sender,
        }
    }

    pub fn enabled(&self) -> bool {
        self.sender.settings().enabled()
    }

    pub fn require_verified_email(&self) -> bool {
        self.sender.settings().require_verified_email
    }

    pub fn sender(&self) -> &Sender {
        &self.sender
    }

    fn ensure_enabled(&self) -> Result<(), LifecycleError> {
        if self.enabled() {
            Ok(())
        } else {
            Err(LifecycleError::MailOff)
        }
    }

    /// A token for `purpose` on `user_id`, and the mail that carries it to `to`.
    fn tokened_mail(
        &self,
        purpose: Purpose,
        kind: Kind,
        user_id: i64,
        username: &str,
        to: &str,
    ) -> (MailToken, NewMailToken, OutgoingMail) {
        let token = MailToken::generate();
        let record = NewMailToken {
            hash: token.hash(),
            purpose: purpose.as_str(),
            user_id,
            new_email: None,
            expires_at: self.clock.now() + millis(TOKEN_LIFETIME),
        };
        let mail = OutgoingMail {
            kind: kind.as_str(),
            to: to.to_owned(),
            payload: json!({ "username": username, "token": token.expose() }).to_string(),
        };
        (token, record, mail)
    }

    /// Whether `user_id` may be sent another mail of `purpose` this hour (a look ahead, to
    /// refuse a request before it changes anything; [`Self::queue_within_budget`] is the
    /// bound).
    async fn within_account_budget(
        &self,
        user_id: i64,
        purpose: Purpose,
    ) -> Result<bool, LifecycleError> {
        let sent = self
            .store
            .mail_tokens_since(user_id, purpose.as_str(), self.budget_window_start())
            .await?;
        Ok(sent < MAILS_PER_ACCOUNT_HOUR)
    }

    /// Tokens made after this count against the account's hourly budget.
    fn budget_window_start(&self) -> crate::clock::UnixMillis {
        self.clock.now() - 3_600_000
    }

    /// Queues `token` and `mails` and wakes the sender if the account's budget for the
    /// token's purpose has room, checked and spent in one step (with `replaces_earlier`, the
    /// account's earlier links of that purpose end in the same step); answers whether it had.
    async fn queue_within_budget(
        &self,
        token: &NewMailToken,
        mails: &[OutgoingMail],
        replaces_earlier: bool,
    ) -> Result<bool, LifecycleError> {
        let budget = MailBudget {
            since: self.budget_window_start(),
            most: MAILS_PER_ACCOUNT_HOUR,
            replaces_earlier,
        };
        let queued = self
            .store
            .queue_mail_within_budget(token, mails, self.clock.now(), budget)
            .await?;
        if queued {
            self.sender.wake();
        }
        Ok(queued)
    }

    /// The verification mail of a new account, to be written with the account itself
    /// (`None` when mail is off).
    pub fn verification_for_new_account(
        &self,
        username: &str,
        email: &str,
    ) -> Option<(String, &'static str, crate::clock::UnixMillis, OutgoingMail)> {
        if !self.enabled() {
            return None;
        }
        let (_, record, mail) =
            self.tokened_mail(Purpose::VerifyEmail, Kind::VerifyEmail, 0, username, email);
        Some((record.hash, record.purpose, record.expires_at, mail))
    }

    /// The sender has new mail (after a registration wrote one).
    pub fn wake(&self) {
        self.sender.wake();
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
