//! Ending sessions: the caller's own, every session of a user, everyone's.
//!
//! Guards against a revoked session living on: a revocation is written to the database (the
//! source of truth), added to this instance's in-memory set and announced to every other
//! instance at once ([`crate::auth::revocations`]), so the session's access tokens fail on
//! their very next request anywhere. Ending sessions needs no signing key, so the CLI
//! (`aerie sessions revoke`, and the account commands that revoke) builds a [`Revoker`] of
//! its own.

use std::sync::Arc;

use serde_json::json;

use super::SessionError;
use crate::audit::EventType;
use crate::auth::revocations::Revocations;
use crate::clock::{Clock, UnixMillis};
use crate::domain::username_key;
use crate::services::{Actor, Caller, Recorder, StepUp};
use crate::store::Store;

/// Why the caller's own action revoked sessions, as the `session_revoked` event names it.
#[derive(Debug, Clone, Copy)]
pub enum RevokedBecause {
    /// `POST /api/auth/logout-all`.
    LogoutAll,
    /// `DELETE /api/auth/sessions/:id`.
    SessionDeleted,
    /// A password change ended the caller's other sessions.
    PasswordChanged,
    /// Turning MFA on or off ended the caller's other sessions.
    MfaChanged,
}

impl RevokedBecause {
    fn as_str(self) -> &'static str {
        match self {
            Self::LogoutAll => "logout_all",
            Self::SessionDeleted => "session_deleted",
            Self::PasswordChanged => "password_changed",
            Self::MfaChanged => "mfa_changed",
        }
    }
}

/// Ends sessions, everywhere at once. Cheap to clone: everything inside is shared.
#[derive(Clone)]
pub struct Revoker {
    store: Store,
    revocations: Revocations,
    recorder: Recorder,
    clock: Arc<dyn Clock>,
    /// Ending another session (one's own other device, or an administrator ending someone's)
    /// needs a recent password authentication.
    step_up: StepUp,
}

impl Revoker {
    pub fn new(
        store: Store,
        revocations: Revocations,
        recorder: Recorder,
        clock: Arc<dyn Clock>,
        step_up: StepUp,
    ) -> Self {
        Self {
            store,
            revocations,
            recorder,
            clock,
            step_up,
        }
    }

    /// Refuses unless the caller authenticated recently.
    fn check_step_up(&self, caller: Caller<'_>) -> Result<(), SessionError> {
        if self.step_up.is_recent(caller, self.clock.now()) {
            Ok(())
        } else {
            Err(SessionError::StepUpRequired)
        }
    }

    /// Tells this instance and the others of sessions ended; the database already says so.
    pub async fn announce(&self, revoked: &[String]) -> Result<(), SessionError> {
        self.revocations.announce(&self.store, revoked).await?;
        Ok(())
    }

    /// Ends one session of `user_id` (nothing when it is not theirs); answers the ids ended.
    pub(super) async fn end_session(
        &self,
        session_id: &str,
        user_id: i64,
        now: UnixMillis,
    ) -> Result<Vec<String>, SessionError> {
        let revoked = self.store.revoke_session(session_id, user_id, now).await?;
        self.announce(&revoked).await?;
        Ok(revoked)
    }

    /// Ends every session of the user but `keep`; answers the ids ended. No event: the
    /// action that needed it (a role change, a disabled account) records its own.
    pub async fn end_user_sessions(
        &self,
        user_id: i64,
        keep: Option<&str>,
    ) -> Result<Vec<String>, SessionError> {
        let revoked = self
            .store
            .revoke_user_sessions(user_id, keep, self.clock.now())
            .await?;
        self.announce(&revoked).await?;
        Ok(revoked)
    }

    /// Ends the caller's sessions (all, or all but the current one after a password
    /// change) and records it.
    pub async fn revoke_own(
        &self,
        caller: Caller<'_>,
        because: RevokedBecause,
    ) -> Result<(), SessionError> {
        let keep = match because {
            RevokedBecause::PasswordChanged | RevokedBecause::MfaChanged => Some(caller.session_id),
            RevokedBecause::LogoutAll | RevokedBecause::SessionDeleted => None,
        };
        let revoked = self.end_user_sessions(caller.user_id, keep).await?;
        self.record_own(caller, because, caller.session_id, &revoked)
            .await
    }

    /// Ends one of the caller's sessions, by id; someone else's id is answered exactly like
    /// an unknown one. Ending another than the current one needs a recent authentication.
    pub async fn revoke_one(&self, caller: Caller<'_>, id: &str) -> Result<(), SessionError> {
        if id != caller.session_id {
            self.check_step_up(caller)?;
        }
        let revoked = self
            .store
            .revoke_session(id, caller.user_id, self.clock.now())
            .await?;
        if revoked.is_empty() {
            return Err(SessionError::UnknownSession);
        }
        self.announce(&revoked).await?;
        self.record_own(caller, RevokedBecause::SessionDeleted, id, &revoked)
            .await
    }

    /// Records one `session_revoked` event for the caller's own action: `session` is the one
    /// the event is about (the revoked one, or the caller's own when several were), `revoked`
    /// every session id that ended. Nothing revoked, nothing recorded.
    async fn record_own(
        &self,
        caller: Caller<'_>,
        because: RevokedBecause,
        session: &str,
        revoked: &[String],
    ) -> Result<(), SessionError> {
        if revoked.is_empty() {
            return Ok(());
        }
        let event = caller
            .own_event(EventType::SessionRevoked)
            .session(session)
            .detail(json!({
                "by": "user",
                "reason": because.as_str(),
                "callerSession": caller.session_id,
                "revoked": revoked.len(),
            }));
        self.recorder.record(event).await?;
        Ok(())
    }

    /// Ends every session of the account named `username` (`DELETE
    /// /api/admin/users/:username/sessions`, `aerie sessions revoke --user`); answers how
    /// many ended.
    pub async fn revoke_all_of(
        &self,
        actor: Actor<'_>,
        username: &str,
    ) -> Result<usize, SessionError> {
        if let Actor::Admin(caller) = actor {
            self.check_step_up(caller)?;
        }
        let user = self
            .store
            .user_by_username_key(&username_key(username))
            .await?
            .ok_or(SessionError::UnknownUser)?;
        let revoked = self.end_user_sessions(user.id, None).await?;
        let mut event = actor.event(EventType::SessionRevoked, json!({ "scope": "all" }));
        event.subject = Some(user.id);
        self.recorder.record(event).await?;
        Ok(revoked.len())
    }

    /// Ends every session of every account (`aerie sessions revoke --all`); answers how many
    /// ended.
    pub async fn revoke_everyone(&self, actor: Actor<'_>) -> Result<usize, SessionError> {
        let revoked = self.store.revoke_every_session(self.clock.now()).await?;
        self.announce(&revoked).await?;
        let event = actor.event(EventType::SessionRevoked, json!({ "scope": "everyone" }));
        self.recorder.record(event).await?;
        Ok(revoked.len())
    }
}
