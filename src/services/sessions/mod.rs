//! The session lifecycle: log in, start a session, refresh it, end it.
//!
//! Guards against account enumeration at login (one answer, [`SessionError::Unauthenticated`],
//! whether the account is unknown, disabled or the password wrong, after the same argon2
//! work; the reason stays in the audit trail), session fixation (a session is always opened
//! here, never adopted from the client), stolen refresh tokens (single use: see
//! [`refresh`]) and endless sessions (idle timeout and absolute lifetime, [`SessionTimes`]).
//! Ending sessions is [`revoke`]'s job, which the CLI shares.

mod refresh;
pub mod revoke;

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

pub use refresh::Refreshed;
pub use revoke::{RevokedBecause, Revoker};

use super::devices::{self, DeviceError};
use super::{Caller, Recorder};
use crate::audit::{AuditError, AuditEvent, EventType};
use crate::auth::SessionTimes;
use crate::auth::password::{HashError, PasswordHasher};
use crate::auth::refresh::{NewRefreshToken, SuccessorKey};
use crate::auth::tokens::TokenService;
use crate::clock::{Clock, UnixMillis};
use crate::domain::{Role, email_key, password_within_limits};
use crate::request_context::RequestContext;
use crate::store::{LiveCap, NewSession, SessionRow, Store, UserRow};

/// Why a session failed to start, refresh or end.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Wrong credentials, a disabled account, an unknown, expired, revoked or reused refresh
    /// token: one answer, so the caller cannot tell which.
    #[error("authentication failed")]
    Unauthenticated,
    /// No session of the caller's has this id (someone else's counts as none).
    #[error("no such session")]
    UnknownSession,
    /// No account has this username.
    #[error("no such user")]
    UnknownUser,
    /// A change that needs a recent password authentication, without one.
    #[error("re-authentication required")]
    StepUpRequired,
    /// A signed-in caller's step-up with the wrong password.
    #[error("password: is incorrect")]
    WrongPassword,
    #[error(transparent)]
    Store(#[from] sqlx::Error),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Hash(#[from] HashError),
}

/// A session's access token and its freshly minted refresh token.
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

/// A session just opened, for `user`.
pub struct Started {
    pub user: UserRow,
    pub session_id: String,
    pub tokens: Tokens,
}

/// A step-up done: the caller's account and an access token carrying the fresh
/// authentication (the refresh token is unchanged).
pub struct SteppedUp {
    pub user: UserRow,
    pub access: String,
}

/// Why a session opens, as its audit event names it.
#[derive(Debug, Clone, Copy)]
pub enum Opening {
    /// The account was just registered (`user_registered`).
    Registration,
    /// Correct credentials (`login_succeeded`).
    Login,
}

/// What a session's tokens are made with: the access-token signer, and the key that derives
/// each refresh token's one successor.
#[derive(Clone)]
pub struct TokenMakers {
    pub access: TokenService,
    pub successors: SuccessorKey,
}

/// Opens, refreshes and ends sessions. Cheap to clone: everything inside is shared.
#[derive(Clone)]
pub struct Sessions {
    store: Store,
    tokens: TokenMakers,
    hasher: PasswordHasher,
    revoker: Revoker,
    recorder: Recorder,
    clock: Arc<dyn Clock>,
    times: SessionTimes,
}

impl Sessions {
    pub fn new(
        store: Store,
        tokens: TokenMakers,
        hasher: PasswordHasher,
        revoker: Revoker,
        recorder: Recorder,
        clock: Arc<dyn Clock>,
        times: SessionTimes,
    ) -> Self {
        Self {
            store,
            tokens,
            hasher,
            revoker,
            recorder,
            clock,
            times,
        }
    }

    /// Ending sessions: the caller's own, a user's, everyone's.
    pub fn revoker(&self) -> &Revoker {
        &self.revoker
    }

    /// Checks the credentials and opens a session. The caller has already applied the
    /// per-account rate limit (a defence, above this layer).
    pub async fn log_in(
        &self,
        email: &str,
        password: &SecretString,
        request: &RequestContext,
    ) -> Result<Started, SessionError> {
        let row = self.check_credentials(email, password, request).await?;
        self.start(row, request, Opening::Login).await
    }

    /// The password step of a login: the account, if the credentials are right and it is
    /// enabled. Opens nothing: [`crate::services::mfa`] decides whether a second step follows.
    pub async fn check_credentials(
        &self,
        email: &str,
        password: &SecretString,
        request: &RequestContext,
    ) -> Result<UserRow, SessionError> {
        if !password_within_limits(password) {
            return Err(self
                .login_failed(request, None, "password_out_of_limits")
                .await);
        }
        let row = self.store.user_by_email_key(&email_key(email)).await?;
        let matches = self
            .hasher
            .verify(password, row.as_ref().map(|r| r.password_hash.as_str()))
            .await?;
        let row = match row {
            Some(row) if matches && row.disabled_at.is_none() => row,
            Some(row) => {
                let reason = if matches {
                    "disabled"
                } else {
                    "wrong_password"
                };
                return Err(self.login_failed(request, Some(row.id), reason).await);
            }
            None => return Err(self.login_failed(request, None, "unknown_account").await),
        };
        Ok(row)
    }

    /// Records a failed login and returns the one answer every failure gets. The reason
    /// stays in the audit trail: telling the caller would confirm which accounts exist.
    async fn login_failed(
        &self,
        request: &RequestContext,
        account: Option<i64>,
        reason: &'static str,
    ) -> SessionError {
        let mut event = AuditEvent::new(EventType::LoginFailed)
            .from_request(request)
            .detail(serde_json::json!({ "reason": reason }));
        event.subject = account;
        match self.recorder.record(event).await {
            Ok(()) => SessionError::Unauthenticated,
            Err(error) => error.into(),
        }
    }

    /// Opens a new session for `user` (never adopts one the client offers), issues its first
    /// tokens and records why it opened.
    pub async fn start(
        &self,
        user: UserRow,
        request: &RequestContext,
        opening: Opening,
    ) -> Result<Started, SessionError> {
        let session_id = uuid::Uuid::new_v4().simple().to_string();
        // The first refresh token of the session's family: only its hash is stored.
        let refresh = crate::auth::refresh::mint();
        let now = self.clock.now();
        let opened = self
            .store
            .open_session(NewSession {
                id: &session_id,
                user_id: user.id,
                now,
                client_ip: request.client.ip.as_deref(),
                user_agent: request.client.user_agent.as_deref(),
                refresh_hash: &refresh.hash,
                device: &devices::fingerprint_of(request),
                devices_kept: devices::DEVICES_KEPT,
                cap: self.live_cap(now),
            })
            .await?;
        // The password was just checked: the access token carries it as the authentication.
        let tokens = self.tokens_with(&user, &session_id, now, refresh, now);
        let kind = match opening {
            Opening::Registration => EventType::UserRegistered,
            Opening::Login => EventType::LoginSucceeded,
        };
        let event = AuditEvent::new(kind)
            .actor(user.id)
            .subject(user.id)
            .session(session_id.as_str())
            .from_request(request);
        self.recorder.record(event).await?;
        let login = matches!(opening, Opening::Login);
        devices::note_session_opened(
            &self.recorder,
            user.id,
            &session_id,
            request,
            opened.device,
            login,
        )
        .await?;
        self.end_beyond_cap(user.id, &session_id, opened.beyond_cap)
            .await?;
        Ok(Started {
            user,
            session_id,
            tokens,
        })
    }

    /// Ends the user's oldest live sessions beyond the cap (`beyond_cap`, which never holds
    /// the one just `opened`), and records each as revoked by the system. Without a cap a
    /// script that logs in forever grows the sessions table (and the memory of every device
    /// list) without bound.
    async fn end_beyond_cap(
        &self,
        user_id: i64,
        opened: &str,
        beyond_cap: Vec<String>,
    ) -> Result<(), SessionError> {
        let now = self.clock.now();
        for session in beyond_cap {
            let revoked = self.revoker.end_session(&session, user_id, now).await?;
            if revoked.is_empty() {
                continue;
            }
            let event = AuditEvent::new(EventType::SessionRevoked)
                .subject(user_id)
                .session(session.as_str())
                .detail(serde_json::json!({
                    "by": "system",
                    "reason": "session_limit",
                    "limit": self.times.max_live_per_user,
                    "newSession": opened,
                }));
            self.recorder.record(event).await?;
        }
        Ok(())
    }

    /// `refresh` (already stored) beside a new access token carrying the user's current role
    /// and the session's last password authentication.
    fn tokens_with(
        &self,
        user: &UserRow,
        session_id: &str,
        session_created_at: UnixMillis,
        refresh: NewRefreshToken,
        authenticated_at: UnixMillis,
    ) -> Tokens {
        Tokens {
            access: self.access_token(user, session_id, session_created_at, authenticated_at),
            refresh: refresh.value,
        }
    }

    /// An access token that expires with its session at the latest (see
    /// [`crate::auth::tokens::TokenService::issue_within`]).
    fn access_token(
        &self,
        user: &UserRow,
        session_id: &str,
        session_created_at: UnixMillis,
        authenticated_at: UnixMillis,
    ) -> String {
        let role = Role::parse(&user.role).unwrap_or(Role::User);
        let session_ends_at = session_created_at.saturating_add(millis(self.times.max_lifetime));
        self.tokens.access.issue_within(
            user.id,
            session_id,
            role,
            authenticated_at,
            session_ends_at,
        )
    }

    /// `POST /api/auth/step-up`: the caller proves who they are again with their password;
    /// the session records it (so refreshes keep it) and a new access token carries it. A
    /// wrong password is recorded (`step_up_failed`, counted by the failed-login alerts) and
    /// changes nothing; the HTTP layer has already charged it to the account's login budget.
    /// `user` is the caller's own account, which the caller has read and found active
    /// ([`crate::services::mfa::Mfa::step_up`] decides between password and code by it).
    pub async fn step_up(
        &self,
        caller: Caller<'_>,
        user: UserRow,
        password: &SecretString,
    ) -> Result<SteppedUp, SessionError> {
        let matches = password_within_limits(password)
            && self
                .hasher
                .verify(password, Some(&user.password_hash))
                .await?;
        if !matches {
            let event = caller
                .own_event(EventType::StepUpFailed)
                .detail(serde_json::json!({ "reason": "wrong_password" }));
            self.recorder.record(event).await?;
            return Err(SessionError::WrongPassword);
        }
        self.step_up_verified(caller, user).await
    }

    /// A step-up whose proof (the password, or an MFA code) has been checked: the session
    /// records the fresh authentication and a new access token carries it. A session
    /// revoked meanwhile (the account disabled, a logout elsewhere) records nothing.
    pub async fn step_up_verified(
        &self,
        caller: Caller<'_>,
        user: UserRow,
    ) -> Result<SteppedUp, SessionError> {
        let now = self.clock.now();
        let Some(session_created_at) = self
            .store
            .mark_session_authenticated(caller.session_id, user.id, now)
            .await?
        else {
            return Err(SessionError::Unauthenticated);
        };
        self.recorder
            .record(caller.own_event(EventType::StepUpSucceeded))
            .await?;
        let access = self.access_token(&user, caller.session_id, session_created_at, now);
        Ok(SteppedUp { user, access })
    }

    /// Ends the caller's current session (`logout`).
    pub async fn log_out(&self, caller: Caller<'_>) -> Result<(), SessionError> {
        self.revoker
            .end_session(caller.session_id, caller.user_id, self.clock.now())
            .await?;
        let event = caller.own_event(EventType::Logout);
        self.recorder.record(event).await?;
        Ok(())
    }

    /// The user's sessions that are neither idle too long nor too old, newest first.
    pub async fn live(&self, user_id: i64) -> Result<Vec<SessionRow>, SessionError> {
        let cap = self.live_cap(self.clock.now());
        let rows = self
            .store
            .live_sessions(user_id, cap.seen_since, cap.created_since)
            .await?;
        Ok(rows)
    }

    /// What makes a session live at `now`, and how many one account may hold.
    fn live_cap(&self, now: UnixMillis) -> LiveCap {
        LiveCap {
            seen_since: now - millis(self.times.idle_timeout),
            created_since: now - millis(self.times.max_lifetime),
            max_live: i64::try_from(self.times.max_live_per_user).unwrap_or(i64::MAX),
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl From<DeviceError> for SessionError {
    fn from(error: DeviceError) -> Self {
        match error {
            DeviceError::Store(error) => Self::Store(error),
            DeviceError::Audit(error) => Self::Audit(error),
        }
    }
}
