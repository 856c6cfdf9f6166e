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

pub mod accounts;
pub mod audit_trail;
pub mod sessions;

use std::sync::Arc;

use self::accounts::{AccountRules, Accounts};
use self::audit_trail::AuditTrail;
use self::sessions::{Revoker, Sessions, TokenMakers};
use crate::audit::{AuditError, AuditEvent, AuditLog};
use crate::auth::SessionTimes;
use crate::auth::password::{PasswordHasher, PasswordSettings};
use crate::auth::refresh::{SUCCESSOR_KEY_LABEL, SuccessorKey};
use crate::auth::revocations::Revocations;
use crate::auth::tokens::TokenService;
use crate::clock::Clock;
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
}

/// The server's services: every event on the audit trail, and one revoker ending sessions
/// for all of them.
pub struct Services {
    pub sessions: Sessions,
    pub accounts: Accounts,
    pub audit_trail: AuditTrail,
}

impl Services {
    pub fn new(
        parts: Parts,
        times: SessionTimes,
        passwords: PasswordSettings,
        rules: AccountRules,
    ) -> Self {
        let Parts {
            store,
            tokens,
            hasher,
            revocations,
            audit,
            clock,
        } = parts;
        // Derived from the audit key, which every instance of a deployment shares: a token
        // rotated on two instances at once still has one successor.
        let successors = SuccessorKey::new(audit.key().derive(SUCCESSOR_KEY_LABEL));
        let recorder = Recorder::new(audit);
        let revoker = Revoker::new(store.clone(), revocations, recorder.clone(), clock.clone());
        Self {
            sessions: Sessions::new(
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
            ),
            accounts: Accounts::new(
                store.clone(),
                hasher,
                revoker,
                recorder.clone(),
                clock,
                passwords,
                rules,
            ),
            audit_trail: AuditTrail::new(store, recorder),
        }
    }
}

/// A signed-in user acting through the API: the account, the session its access token
/// names, and where the request came from.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub user_id: i64,
    pub session_id: &'a str,
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

/// Who performs an administrative action: an administrator through the admin API, or the
/// operator at the command line, who has no account (the first administrator is made there).
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    Admin(Caller<'a>),
    Operator,
}

impl Actor<'_> {
    /// The administrator's account, if the actor has one.
    fn user_id(&self) -> Option<i64> {
        match self {
            Actor::Admin(caller) => Some(caller.user_id),
            Actor::Operator => None,
        }
    }

    /// Who did it, as an event's detail says (`"by": "admin"`).
    fn by(&self) -> &'static str {
        match self {
            Actor::Admin(_) => "admin",
            Actor::Operator => "operator",
        }
    }

    /// An event naming the actor: the administrator, their session and request; or, for the
    /// operator, no account and no request.
    fn event(&self, kind: crate::audit::EventType) -> AuditEvent {
        match self {
            Actor::Admin(caller) => AuditEvent::new(kind)
                .actor(caller.user_id)
                .session(caller.session_id)
                .from_request(caller.request),
            Actor::Operator => AuditEvent::new(kind),
        }
    }
}

/// Where the services' audit events go. The server always records them on the
/// hash-chained trail; the CLI's account commands record none yet (issue 13 hands them the
/// trail, and then the operator's actions are recorded like an administrator's).
#[derive(Clone)]
pub struct Recorder(Option<AuditLog>);

impl Recorder {
    /// Every event is sealed and stored before the action's answer leaves.
    pub fn new(audit: AuditLog) -> Self {
        Self(Some(audit))
    }

    /// Records nothing: for the CLI's account commands until they get the trail.
    pub fn unrecorded() -> Self {
        Self(None)
    }

    /// Stores the event; an event that cannot be stored fails the action, since an
    /// unrecorded security action is worse than a refused one.
    pub async fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        match &self.0 {
            Some(audit) => audit.record(event).await.map(drop),
            None => Ok(()),
        }
    }
}
