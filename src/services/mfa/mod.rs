//! TOTP multi-factor authentication: enrolment, the login's second step, step-up with a
//! code, turning MFA off, and the roles that must have it.
//!
//! Guards against a stolen or guessed password being enough to take an account over. With
//! MFA on, a correct password earns only a challenge: single-use (taken by deleting it),
//! short-lived (5 minutes), bound to the client that logged in (address and user agent,
//! digested), stored as a digest, and spent after five wrong codes. A code is accepted once:
//! only for a later 30-second step than the last accepted one (RFC 6238 §5.2), so a code read
//! over a shoulder or from a phishing proxy cannot be replayed. Recovery codes (ten, 80 bits
//! each, stored as digests keyed by the field-encryption keyring) are each usable once. TOTP
//! secrets are sealed at rest by the store ([`crate::field_keys`]). Every change (enrolment started, MFA on, MFA off, a
//! recovery code spent) is on the audit trail, and turning MFA on or off ends the account's
//! other sessions, which were opened under the old rule. Roles named in
//! `AERIE_MFA_REQUIRED_ROLES` keep their permissions withheld until their holder enrols.

mod factors;

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::json;

use super::sessions::{Opening, RevokedBecause, SessionError, Sessions, Started, SteppedUp};
use super::{Caller, Recorder};
use crate::audit::{AuditError, AuditEvent, EventType};
use crate::auth::password::{HashError, PasswordHasher};
use crate::clock::{Clock, UnixMillis};
use crate::domain::{Role, password_within_limits};
use crate::request_context::RequestContext;
use crate::store::{NewChallenge, Store, UserRow};

pub use factors::RECOVERY_CODES;

/// How long a login challenge can be answered.
pub const CHALLENGE_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// Wrong codes one challenge takes before it is spent (the password must be typed again).
pub const CHALLENGE_MAX_FAILURES: i64 = 5;

/// What MFA is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaSettings {
    /// Roles whose permissions are withheld until their holder has MFA on.
    pub required_roles: Vec<Role>,
}

/// Why an MFA action failed.
#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    /// Unknown, expired, used, spent or foreign challenge: one answer, like a failed login.
    #[error("authentication failed")]
    Unauthenticated,
    #[error("password: is incorrect")]
    WrongPassword,
    /// A wrong, reused or already spent code.
    #[error("code: is incorrect")]
    WrongCode,
    #[error("mfa: is already on; turn it off first to enrol again")]
    AlreadyOn,
    #[error("mfa: no enrolment is waiting for a code; start one with POST /api/auth/mfa/totp")]
    NotEnrolling,
    #[error("mfa: is not on for this account")]
    NotOn,
    /// A step-up with the password by an account that has MFA on.
    #[error("code: is required: this account has MFA on")]
    CodeRequired,
    /// The authenticator URI could not be built from a new secret (never for our lengths).
    #[error("the TOTP enrolment could not be built")]
    Enrolment,
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Store(#[from] sqlx::Error),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Hash(#[from] HashError),
}

/// A proof of identity given with a sensitive MFA action.
pub enum Proof {
    Password(SecretString),
    /// A TOTP code or a recovery code.
    Code(String),
}

/// What the login's password step led to.
pub enum LoginStep {
    /// No MFA: the session is open.
    Session(Box<Started>),
    /// MFA on: answer this challenge with a code at `POST /api/users/login/mfa`.
    Challenge {
        challenge: String,
        expires_in: Duration,
    },
}

/// A started enrolment: what the authenticator app needs.
pub struct Enrolment {
    pub secret: String,
    pub otpauth_uri: String,
}

/// A challenge taken from the store (so no one else can answer it), not yet answered.
pub struct TakenChallenge {
    pub user_id: i64,
    challenge_hash: String,
    client_hash: String,
    expires_at: UnixMillis,
    failures: i64,
}

/// Which kind of code was accepted.
enum Accepted {
    Totp,
    Recovery,
}

/// The MFA use cases. Cheap to clone: everything inside is shared.
#[derive(Clone)]
pub struct Mfa {
    store: Store,
    sessions: Sessions,
    hasher: PasswordHasher,
    recorder: Recorder,
    clock: Arc<dyn Clock>,
    required_roles: Arc<[Role]>,
}

/// What [`Mfa`] is built from.
pub struct MfaParts {
    pub store: Store,
    pub sessions: Sessions,
    pub hasher: PasswordHasher,
    pub recorder: Recorder,
    pub clock: Arc<dyn Clock>,
}

impl Mfa {
    pub fn new(parts: MfaParts, required_roles: &[Role]) -> Self {
        Self {
            store: parts.store,
            sessions: parts.sessions,
            hasher: parts.hasher,
            recorder: parts.recorder,
            clock: parts.clock,
            required_roles: Arc::from(required_roles),
        }
    }

    /// Whether `role` may use its permissions only with MFA on.
    pub fn required_for(&self, role: Role) -> bool {
        self.required_roles.contains(&role)
    }

    /// Whether the account must enrol before its role's permissions count: its role requires
    /// MFA and it has none. Reads the database only for such roles.
    pub async fn enrolment_missing(&self, user_id: i64, role: Role) -> Result<bool, MfaError> {
        if !self.required_for(role) {
            return Ok(false);
        }
        Ok(!self.store.mfa_enabled(user_id).await?)
    }

    /// `POST /api/users/login`: checks the password; without MFA opens the session, with
    /// MFA hands out a challenge bound to this client instead.
    pub async fn log_in(
        &self,
        email: &str,
        password: &SecretString,
        request: &RequestContext,
    ) -> Result<LoginStep, MfaError> {
        let user = self
            .sessions
            .check_credentials(email, password, request)
            .await?;
        if !self.store.mfa_enabled(user.id).await? {
            let started = self.sessions.start(user, request, Opening::Login).await?;
            return Ok(LoginStep::Session(Box::new(started)));
        }
        let challenge = factors::new_challenge();
        let now = self.clock.now();
        self.store
            .insert_challenge(
                NewChallenge {
                    challenge_hash: &factors::challenge_hash(&challenge),
                    user_id: user.id,
                    client_hash: &factors::client_fingerprint(request),
                    expires_at: now + millis(CHALLENGE_LIFETIME),
                    failures: 0,
                },
                now,
            )
            .await?;
        Ok(LoginStep::Challenge {
            challenge,
            expires_in: CHALLENGE_LIFETIME,
        })
    }

    /// Takes a challenge so no other request can answer it, and checks that it is live and
    /// presented by the client it was issued to. Any failure is one answer.
    pub async fn take_challenge(
        &self,
        challenge: &str,
        request: &RequestContext,
    ) -> Result<TakenChallenge, MfaError> {
        let challenge_hash = factors::challenge_hash(challenge);
        let Some(row) = self.store.take_challenge(&challenge_hash).await? else {
            return Err(self.challenge_refused(request, None, "unknown").await);
        };
        let reason = if row.expires_at <= self.clock.now() {
            Some("expired")
        } else if row.client_hash != factors::client_fingerprint(request) {
            Some("other_client")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(self
                .challenge_refused(request, Some(row.user_id), reason)
                .await);
        }
        Ok(TakenChallenge {
            user_id: row.user_id,
            challenge_hash,
            client_hash: row.client_hash,
            expires_at: row.expires_at,
            failures: row.failures,
        })
    }

    /// `POST /api/users/login/mfa`: answers a taken challenge with a TOTP or recovery code
    /// and opens the session. A wrong code puts the challenge back with one more failure
    /// (until it is spent) and is recorded.
    pub async fn answer_challenge(
        &self,
        taken: TakenChallenge,
        code: &str,
        request: &RequestContext,
    ) -> Result<Started, MfaError> {
        let user = match self.store.user_by_id(taken.user_id).await? {
            Some(user) if user.disabled_at.is_none() => user,
            _ => {
                let refused = self.challenge_refused(request, Some(taken.user_id), "disabled");
                return Err(refused.await);
            }
        };
        let accepted = match self.accept_code(&user, code).await? {
            Some(accepted) => accepted,
            None => {
                self.put_back(&taken).await?;
                let event = AuditEvent::new(EventType::MfaFailed)
                    .subject(user.id)
                    .from_request(request)
                    .detail(json!({ "step": "login", "failures": taken.failures + 1 }));
                self.recorder.record(event).await?;
                return Err(MfaError::WrongCode);
            }
        };
        let started = self.sessions.start(user, request, Opening::Login).await?;
        if let Accepted::Recovery = accepted {
            self.record_recovery_use(started.user.id, Some(&started.session_id), request)
                .await?;
        }
        Ok(started)
    }

    /// Puts a challenge answered wrongly back, unless that was its last allowed failure.
    async fn put_back(&self, taken: &TakenChallenge) -> Result<(), MfaError> {
        let failures = taken.failures + 1;
        if failures >= CHALLENGE_MAX_FAILURES {
            return Ok(());
        }
        self.store
            .insert_challenge(
                NewChallenge {
                    challenge_hash: &taken.challenge_hash,
                    user_id: taken.user_id,
                    client_hash: &taken.client_hash,
                    expires_at: taken.expires_at,
                    failures,
                },
                self.clock.now(),
            )
            .await?;
        Ok(())
    }

    /// Records a refused challenge and returns the one answer every refusal gets.
    async fn challenge_refused(
        &self,
        request: &RequestContext,
        user_id: Option<i64>,
        reason: &'static str,
    ) -> MfaError {
        let mut event = AuditEvent::new(EventType::MfaFailed)
            .from_request(request)
            .detail(json!({ "step": "login", "reason": reason }));
        event.subject = user_id;
        match self.recorder.record(event).await {
            Ok(()) => MfaError::Unauthenticated,
            Err(error) => error.into(),
        }
    }

    /// `POST /api/auth/mfa/totp`: with the password, starts (or restarts) an enrolment with
    /// a new secret. MFA stays off until a code confirms it.
    pub async fn begin_enrolment(
        &self,
        caller: Caller<'_>,
        password: &SecretString,
    ) -> Result<Enrolment, MfaError> {
        let user = self.active_user(caller).await?;
        self.check_password(caller, &user, password, "enrol")
            .await?;
        if self.store.mfa_enabled(user.id).await? {
            return Err(MfaError::AlreadyOn);
        }
        let secret = factors::new_secret();
        let (secret_base32, otpauth_uri) =
            factors::enrolment(&secret, &user.username).ok_or(MfaError::Enrolment)?;
        if !self
            .store
            .begin_totp(user.id, &secret, self.clock.now())
            .await?
        {
            return Err(MfaError::AlreadyOn);
        }
        self.recorder
            .record(caller.own_event(EventType::MfaEnrolmentStarted))
            .await?;
        Ok(Enrolment {
            secret: secret_base32,
            otpauth_uri,
        })
    }

    /// `POST /api/auth/mfa/totp/confirm`: a code from the app turns MFA on and answers the
    /// recovery codes, shown this once. A wrong code leaves MFA off; the step of the code
    /// used counts as used, so it cannot log in afterwards. The caller's other sessions end.
    pub async fn confirm_enrolment(
        &self,
        caller: Caller<'_>,
        code: &str,
    ) -> Result<Vec<String>, MfaError> {
        let user = self.active_user(caller).await?;
        let row = match self.store.totp(user.id).await? {
            Some(row) if row.confirmed_at.is_none() => row,
            Some(_) => return Err(MfaError::AlreadyOn),
            None => return Err(MfaError::NotEnrolling),
        };
        let Some(step) = factors::matched_step(&row.secret, code, self.clock.now()) else {
            self.record_wrong_code(caller, "confirm").await?;
            return Err(MfaError::WrongCode);
        };
        let codes = factors::new_recovery_codes();
        let keys = self.store.field_keys();
        let hashes: Vec<String> = codes
            .iter()
            .map(|code| keys.recovery_code_digest(&factors::normalized_recovery_code(code)))
            .collect();
        let now = self.clock.now();
        if !self.store.confirm_totp(user.id, step, &hashes, now).await? {
            return Err(MfaError::NotEnrolling);
        }
        let event = caller
            .own_event(EventType::MfaEnabled)
            .detail(json!({ "method": "totp", "recoveryCodes": codes.len() }));
        if let Err(error) = self.recorder.record(event).await {
            // Unrecorded, MFA must not stay on: enrolment that fails leaves MFA off.
            self.store.delete_mfa(user.id).await?;
            return Err(error.into());
        }
        self.sessions
            .revoker()
            .revoke_own(caller, RevokedBecause::MfaChanged)
            .await?;
        Ok(codes)
    }

    /// `DELETE /api/auth/mfa/totp`: with the password or a code, turns MFA off (and removes
    /// the recovery codes). The caller's other sessions end.
    pub async fn disable(&self, caller: Caller<'_>, proof: &Proof) -> Result<(), MfaError> {
        let user = self.active_user(caller).await?;
        if !self.store.mfa_enabled(user.id).await? {
            return Err(MfaError::NotOn);
        }
        match proof {
            Proof::Password(password) => {
                self.check_password(caller, &user, password, "disable")
                    .await?;
            }
            Proof::Code(code) => self.check_code(caller, &user, code, "disable").await?,
        }
        if !self.store.delete_mfa(user.id).await? {
            return Err(MfaError::NotOn);
        }
        let with = match proof {
            Proof::Password(_) => "password",
            Proof::Code(_) => "code",
        };
        let event = caller
            .own_event(EventType::MfaDisabled)
            .detail(json!({ "method": "totp", "provedWith": with }));
        self.recorder.record(event).await?;
        self.sessions
            .revoker()
            .revoke_own(caller, RevokedBecause::MfaChanged)
            .await?;
        Ok(())
    }

    /// `POST /api/auth/step-up`: an account with MFA on steps up with a code (its password
    /// alone is refused: that is the factor a thief is likeliest to have); one without steps
    /// up with its password.
    pub async fn step_up(&self, caller: Caller<'_>, proof: &Proof) -> Result<SteppedUp, MfaError> {
        let user = self.active_user(caller).await?;
        let enabled = self.store.mfa_enabled(user.id).await?;
        match (proof, enabled) {
            (Proof::Password(_), true) => Err(MfaError::CodeRequired),
            (Proof::Password(password), false) => {
                Ok(self.sessions.step_up(caller, user, password).await?)
            }
            (Proof::Code(_), false) => Err(MfaError::NotOn),
            (Proof::Code(code), true) => {
                self.check_code(caller, &user, code, "step_up").await?;
                Ok(self.sessions.step_up_verified(caller, user).await?)
            }
        }
    }

    async fn active_user(&self, caller: Caller<'_>) -> Result<UserRow, MfaError> {
        match self.store.user_by_id(caller.user_id).await? {
            Some(user) if user.disabled_at.is_none() => Ok(user),
            _ => Err(MfaError::Unauthenticated),
        }
    }

    /// Checks a signed-in caller's password; a wrong one is recorded and changes nothing.
    async fn check_password(
        &self,
        caller: Caller<'_>,
        user: &UserRow,
        password: &SecretString,
        step: &'static str,
    ) -> Result<(), MfaError> {
        let matches = password_within_limits(password)
            && self
                .hasher
                .verify(password, Some(&user.password_hash))
                .await?;
        if matches {
            return Ok(());
        }
        let event = caller
            .own_event(EventType::MfaFailed)
            .detail(json!({ "step": step, "reason": "wrong_password" }));
        self.recorder.record(event).await?;
        Err(MfaError::WrongPassword)
    }

    /// Checks a signed-in caller's code (TOTP or recovery); a wrong one is recorded.
    async fn check_code(
        &self,
        caller: Caller<'_>,
        user: &UserRow,
        code: &str,
        step: &'static str,
    ) -> Result<(), MfaError> {
        match self.accept_code(user, code).await? {
            Some(Accepted::Totp) => Ok(()),
            Some(Accepted::Recovery) => {
                self.record_recovery_use(user.id, Some(caller.session_id), caller.request)
                    .await
            }
            None => {
                self.record_wrong_code(caller, step).await?;
                Err(MfaError::WrongCode)
            }
        }
    }

    async fn record_wrong_code(
        &self,
        caller: Caller<'_>,
        step: &'static str,
    ) -> Result<(), MfaError> {
        let event = caller
            .own_event(EventType::MfaFailed)
            .detail(json!({ "step": step, "reason": "wrong_code" }));
        Ok(self.recorder.record(event).await?)
    }

    /// Accepts a TOTP code for a step later than any used before, or spends an unspent
    /// recovery code. `None`: wrong, replayed or spent.
    async fn accept_code(&self, user: &UserRow, code: &str) -> Result<Option<Accepted>, MfaError> {
        let code = code.trim();
        if !factors::is_totp_code(code) {
            let normalized = factors::normalized_recovery_code(code);
            let keyed = self.store.field_keys().recovery_code_digest(&normalized);
            let legacy = factors::legacy_recovery_code_hash(&normalized);
            let spent = self
                .store
                .spend_recovery_code(user.id, [&keyed, &legacy], self.clock.now())
                .await?;
            return Ok(spent.then_some(Accepted::Recovery));
        }
        let Some(row) = self.store.totp(user.id).await? else {
            return Ok(None);
        };
        let Some(step) = factors::matched_step(&row.secret, code, self.clock.now()) else {
            return Ok(None);
        };
        let fresh = self.store.accept_totp_step(user.id, step).await?;
        Ok(fresh.then_some(Accepted::Totp))
    }

    async fn record_recovery_use(
        &self,
        user_id: i64,
        session_id: Option<&str>,
        request: &RequestContext,
    ) -> Result<(), MfaError> {
        let left = self.store.recovery_codes_left(user_id).await?;
        let mut event = AuditEvent::new(EventType::MfaRecoveryCodeUsed)
            .actor(user_id)
            .subject(user_id)
            .from_request(request)
            .detail(json!({ "left": left }));
        if let Some(session) = session_id {
            event = event.session(session);
        }
        Ok(self.recorder.record(event).await?)
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
