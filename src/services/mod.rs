//! The use cases: what a user, an administrator or the operator at the command line can do
//! to accounts and sessions, each in one place, whichever door it comes through.
//!
//! Guards against the same rule being written twice and drifting apart: the HTTP handlers
//! and the CLI call these services, so registration rules, session revocation and the audit
//! records that go with them cannot differ between the API and `aerie user ...`. Services
//! take plain inputs (domain types, ids, the [`RequestContext`] of the request) and answer
//! their own error types; they know nothing of HTTP. `http` turns their errors into
//! statuses and bodies, the CLI into text.
//!
//! - [`sessions`]: log in, start, refresh and end sessions, with their audit records.
//! - [`accounts`]: create accounts, change their email, password, role and disabled flag.
//! - [`audit_trail`]: administrators reading the audit trail (each read itself recorded).
//! - [`denials`]: refused permissions and tokens on the trail, sampled.
//! - [`mfa`]: TOTP multi-factor authentication: enrolment, the login's second step, step-up
//!   with a code, and the roles that must have it.
//! - [`markdown`]: rendering article and comment bodies once, on a bounded blocking pool.
//! - [`quotas`]: per-user limits on stored content.
//! - [`retention`]: deleting expired sessions and refresh tokens.
//! - [`StepUp`]: which changes need a recent password authentication.

pub mod accounts;
pub mod audit_trail;
pub mod denials;
pub mod devices;
pub mod lifecycle;
pub mod markdown;
pub mod mfa;
pub mod quotas;
pub mod retention;
pub mod sessions;
mod step_up;

use std::sync::Arc;

use self::accounts::{AccountRules, Accounts};
use self::audit_trail::AuditTrail;
use self::denials::Denials;
use self::lifecycle::{Lifecycle, Notice, Notifier};
use self::mfa::{Mfa, MfaParts};
use self::sessions::{Revoker, Sessions, TokenMakers};
use serde_json::{Map, Value};

pub use self::step_up::StepUp;

use crate::audit::{AuditError, AuditEvent, AuditLog};
use crate::auth::SessionTimes;
use crate::auth::password::{PasswordHasher, PasswordSettings};
use crate::auth::refresh::{SUCCESSOR_KEY_LABEL, SuccessorKey};
use crate::auth::revocations::Revocations;
use crate::auth::tokens::TokenService;
use crate::clock::{Clock, UnixMillis};
use crate::request_context::RequestContext;
use crate::store::Store;

/// The parts the server's services share, built once at start.
pub struct Parts {
    pub store: Store,
    pub tokens: TokenService,
    pub hasher: PasswordHasher,
    pub revocations: Revocations,
    pub audit: AuditLog,
    pub clock: Arc<dyn Clock>,
    /// The outbox sender (mail off when mail is not configured).
    pub mail: crate::mail::Sender,
}

/// The server's services: every event on the audit trail, and one revoker ending sessions
/// for all of them.
pub struct Services {
    pub sessions: Sessions,
    pub accounts: Accounts,
    pub audit_trail: AuditTrail,
    pub denials: Denials,
    pub mfa: Mfa,
    pub lifecycle: Lifecycle,
}

impl Services {
    pub fn new(
        parts: Parts,
        times: SessionTimes,
        passwords: PasswordSettings,
        rules: AccountRules,
        mfa_required_roles: &[crate::domain::Role],
    ) -> Self {
        let Parts {
            store,
            tokens,
            hasher,
            revocations,
            audit,
            clock,
            mail,
        } = parts;
        // Derived from the audit key, which every instance of a deployment shares: a token
        // rotated on two instances at once still has one successor.
        let successors = SuccessorKey::new(audit.derivation_key().derive(SUCCESSOR_KEY_LABEL));
        let recorder =
            Recorder::new(audit).with_notices(Notifier::new(store.clone(), mail.clone()));
        let revoker = Revoker::new(
            store.clone(),
            revocations,
            recorder.clone(),
            clock.clone(),
            rules.step_up,
        );
        let sessions = Sessions::new(
            store.clone(),
            TokenMakers {
                access: tokens,
                successors,
            },
            hasher.clone(),
            revoker.clone(),
            recorder.clone(),
            clock.clone(),
            times,
        );
        let mfa = Mfa::new(
            MfaParts {
                store: store.clone(),
                sessions: sessions.clone(),
                hasher: hasher.clone(),
                recorder: recorder.clone(),
                clock: clock.clone(),
            },
            mfa_required_roles,
        );
        let lifecycle = Lifecycle::new(
            store.clone(),
            hasher.clone(),
            revoker.clone(),
            recorder.clone(),
            clock.clone(),
            passwords,
            mail,
        );
        Self {
            sessions,
            mfa,
            accounts: Accounts::new(
                store.clone(),
                hasher,
                revoker,
                recorder.clone(),
                clock.clone(),
                passwords,
                rules,
            )
            .with_lifecycle(lifecycle.clone()),
            lifecycle,
            audit_trail: AuditTrail::new(store, recorder.clone()),
            denials: Denials::new(recorder, clock),
        }
    }
}

/// A signed-in user acting through the API: the account, the session its access token
/// names, and where the request came from.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub user_id: i64,
    pub session_id: &'a str,
    /// The last password authentication the access token vouches for (its `auth_time`).
    pub authenticated_at: UnixMillis,
    pub request: &'a RequestContext,
}

impl Caller<'_> {
    /// An event the caller caused, on their own account and session, with the request.
    fn own_event(&self, kind: crate::audit::EventType) -> AuditEvent {
        AuditEvent::new(kind)
            .actor(self.user_id)
            .subject(self.user_id)
            .session(self.session_id)
            .from_request(self.request)
    }
}

/// The operator at the command line. They have no account (the first administrator is
/// made there), so the OS account that ran the command stands for them on the trail: the
/// login name the shell gave (`$USER`, `$LOGNAME`) and the process's uid, which the shell
/// cannot make up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub os_user: String,
    pub uid: Option<u32>,
}

impl Operator {
    /// What every event the operator causes says about them:
    /// `{"by": "cli", "osUser": "root", "uid": 0}`.
    pub fn detail(&self) -> Map<String, Value> {
        let mut detail = Map::new();
        detail.insert("by".into(), "cli".into());
        detail.insert("osUser".into(), self.os_user.clone().into());
        if let Some(uid) = self.uid {
            detail.insert("uid".into(), uid.into());
        }
        detail
    }
}

/// Who performs an administrative action: an administrator through the admin API, or the
/// operator at the command line.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    Admin(Caller<'a>),
    Operator(&'a Operator),
}

impl Actor<'_> {
    /// The administrator's account, if the actor has one.
    fn user_id(&self) -> Option<i64> {
        match self {
            Actor::Admin(caller) => Some(caller.user_id),
            Actor::Operator(_) => None,
        }
    }

    /// An event naming the actor, with `detail`: the administrator (`"by": "admin"`), their
    /// session and request; or the operator (`"by": "cli"` and the OS user), with no account
    /// and no request.
    fn event(&self, kind: crate::audit::EventType, detail: Value) -> AuditEvent {
        let mut detail = match detail {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        match self {
            Actor::Admin(caller) => {
                detail.insert("by".into(), "admin".into());
                AuditEvent::new(kind)
                    .actor(caller.user_id)
                    .session(caller.session_id)
                    .from_request(caller.request)
                    .detail(Value::Object(detail))
            }
            Actor::Operator(operator) => {
                detail.extend(operator.detail());
                AuditEvent::new(kind).detail(Value::Object(detail))
            }
        }
    }
}

/// Where the services' audit events go: the hash-chained trail, for the server and for the
/// CLI's commands alike. There is no way to build one that records nothing.
#[derive(Clone)]
pub struct Recorder {
    audit: AuditLog,
    /// Mails the account a security notice for the events that call for one (server only).
    notices: Option<Notifier>,
}

impl Recorder {
    pub fn new(audit: AuditLog) -> Self {
        Self {
            audit,
            notices: None,
        }
    }

    /// Also mails security notices: password changed, MFA on or off, a new device, sessions
    /// ended by an administrator.
    pub fn with_notices(mut self, notifier: Notifier) -> Self {
        self.notices = Some(notifier);
        self
    }

    /// Stores the event; an event that cannot be stored fails the action, since an
    /// unrecorded security action is worse than a refused one. Its notice, if any, is
    /// queued after (best effort: the action stands if the notice cannot be queued).
    pub async fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        let notice = self.notices.as_ref().and_then(|n| {
            let notice = Notice::for_event(&event)?;
            Some((n, event.subject.or(event.actor)?, notice))
        });
        self.audit.record(event).await?;
        if let Some((notifier, user_id, notice)) = notice {
            notifier.notify(user_id, notice).await;
        }
        Ok(())
    }
}
