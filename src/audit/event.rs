//! The security event catalogue: every kind of event the audit trail knows, with its
//! severity. One list, so an operator's SIEM rules and docs/operations.md can name them all,
//! and a new kind of event is a deliberate change here rather than a free-form string.

use serde::Serialize;
use serde_json::Value;

use crate::request_context::RequestContext;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Declares the catalogue once: variant, stored name, severity.
macro_rules! catalogue {
    ($($(#[$doc:meta])* $variant:ident => $name:literal, $severity:ident;)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum EventType {
            $($(#[$doc])* $variant,)*
        }

        impl EventType {
            /// Every event type, in catalogue order.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)*];

            /// The stable name stored in the audit table and shown in logs and exports.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $name,)*
                }
            }

            pub fn severity(self) -> Severity {
                match self {
                    $(EventType::$variant => Severity::$severity,)*
                }
            }
        }
    };
}

catalogue! {
    /// Correct credentials; a session was opened.
    LoginSucceeded => "login_succeeded", Info;
    /// Wrong credentials; the reason (unknown account, wrong password, disabled) stays in
    /// the detail, never in the response.
    LoginFailed => "login_failed", Warning;
    /// A new account was created.
    UserRegistered => "user_registered", Info;
    /// The caller ended their own session.
    Logout => "logout", Info;
    /// A session was revoked (detail says by whom: the user, an admin, a reuse detection).
    SessionRevoked => "session_revoked", Info;
    /// A refresh token was exchanged for a new one.
    RefreshRotated => "refresh_rotated", Info;
    /// A rotated-out refresh token came back: likely stolen; the family is revoked.
    RefreshReuseDetected => "refresh_reuse_detected", Critical;
    PasswordChanged => "password_changed", Warning;
    /// A signed-in caller gave a wrong current password to change their password: a guess
    /// with a stolen session, counted against the account's login budget like a failed login.
    PasswordChangeFailed => "password_change_failed", Warning;
    /// A signed-in caller re-authenticated with their password (`POST /api/auth/step-up`).
    StepUpSucceeded => "step_up_succeeded", Info;
    /// A step-up with a wrong password: a guess, counted like a failed login.
    StepUpFailed => "step_up_failed", Warning;
    EmailChanged => "email_changed", Warning;
    /// A password reset was asked for (detail: whether a mail was queued, or why not: no
    /// such account, rate limited). Recorded for unknown addresses too.
    PasswordResetRequested => "password_reset_requested", Info;
    /// A mailed reset link set a new password; every session of the account ended.
    PasswordResetCompleted => "password_reset_completed", Warning;
    /// A mailed link proved the account's address.
    EmailVerified => "email_verified", Info;
    /// A change of address was asked for; it waits for the new address to confirm.
    EmailChangeRequested => "email_change_requested", Warning;
    /// Mail has been failing to leave for longer than `AERIE_MAIL_ALERT_AFTER_SECS` (detail:
    /// the outbox depth and how long). Raised once per run of failures.
    MailDeliveryFailing => "mail_delivery_failing", Critical;
    /// TOTP enrolment began (a new secret was issued); MFA stays off until confirmed.
    MfaEnrolmentStarted => "mfa_enrolment_started", Info;
    /// A code confirmed the enrolment: MFA is on (detail: method, recovery codes issued).
    MfaEnabled => "mfa_enabled", Info;
    /// MFA was turned off (detail: whether the password or a code proved it).
    MfaDisabled => "mfa_disabled", Warning;
    /// A recovery code was spent (detail: how many are left).
    MfaRecoveryCodeUsed => "mfa_recovery_code_used", Warning;
    /// A wrong, replayed or spent code, a wrong password on an MFA route, or a refused login
    /// challenge (unknown, expired, from another client); detail: step and reason.
    MfaFailed => "mfa_failed", Warning;
    /// An account's role changed (detail: from, to).
    RoleChanged => "role_changed", Warning;
    UserDisabled => "user_disabled", Warning;
    UserEnabled => "user_enabled", Info;
    /// Too many failures: an account was locked (detail: the policy — `login-account` for the
    /// account as a whole, `login-pair`/`login-pair-slow` for one address or device on it).
    AccountLocked => "account_locked", Warning;
    /// Too many failures: a client address was blocked (detail: the policy — `login-ip`,
    /// `login-fail-ip` for credential stuffing, `login-fail-prefix` for an IPv6 /48).
    IpBlocked => "ip_blocked", Warning;
    /// A login from a device and network the account has not used before (detail: coarse
    /// device family and network prefix). Raises the `login_new_device` alert.
    LoginNewDevice => "login_new_device", Warning;
    /// A refresh came from another address family or network than the session's previous
    /// request (detail: fromNetwork, toNetwork).
    SessionIpChanged => "session_ip_changed", Info;
    /// A rate limit refused requests (sampled, not one event per refused request).
    RateLimitTripped => "rate_limit_tripped", Info;
    /// A signed-in user was refused a route their role lacks the permission for (detail:
    /// method, route, permission). Sampled per user.
    AccessDenied => "access_denied", Warning;
    /// An access token failed verification (detail: reason — malformed, algorithm, header,
    /// key_id, signature, claims, expired, not_yet_valid, lifetime, revoked; the role it
    /// claimed, if any). Sampled per client address.
    TokenRejected => "token_rejected", Info;
    /// A user deleted their own account (`DELETE /api/user`; `mode`: anonymise or remove).
    AccountDeleted => "account_deleted", Warning;
    /// A user downloaded everything held about them (`GET /api/user/export`).
    UserDataExported => "user_data_exported", Info;
    /// An administrator read another user's data.
    AdminReadUserData => "admin_read_user_data", Info;
    /// A signing or encryption key was rotated.
    KeyRotated => "key_rotated", Warning;
    /// A production server started with a signing key set the deployment had not published (the
    /// first start on this database, or the first after a rotation or a removed key); detail:
    /// `active` kid and every `kids` it verifies with. What later starts compare theirs with.
    SigningKeysPublished => "signing_keys_published", Info;
    /// `aerie keys rotate-audit`: the audit chain continues under a new key (detail:
    /// `next_key`, its id). Sealed by the key before, so only its holder can start a segment.
    AuditKeyRotated => "audit_key_rotated", Warning;
    /// `aerie keys rotate-data` finished a re-sealing pass (what each key still seals).
    DataResealed => "data_resealed", Info;
    /// Old field-encryption keys were dropped from the key file (`rotate-data --retire`).
    KeyRetired => "key_retired", Warning;
    /// `aerie backup create` wrote an encrypted backup.
    BackupCreated => "backup_created", Info;
    /// `aerie backup verify` found a backup intact.
    BackupVerified => "backup_verified", Info;
    /// `aerie backup verify` found a backup damaged, cut short or not openable.
    BackupVerificationFailed => "backup_verification_failed", Warning;
    /// `aerie backup restore` wrote a backup into this (empty) database.
    BackupRestored => "backup_restored", Critical;
    /// The server started with a setting that is unsafe or unusual.
    ConfigWarning => "config_warning", Warning;
    /// `aerie audit verify` found the chain broken.
    AuditVerificationFailed => "audit_verification_failed", Critical;
    /// Audit rows were exported to an archive file and pruned behind a signed checkpoint
    /// (`aerie audit archive`).
    AuditArchived => "audit_archived", Warning;
    /// A TLS certificate was issued over ACME and is now served (first or renewal).
    CertificateIssued => "certificate_issued", Info;
    /// An ACME order failed (CA refusal, rate limit, unreachable directory, cache
    /// permissions); the previous certificate, if any, is still served. Raises an alert.
    CertificateRenewalFailed => "certificate_renewal_failed", Warning;
}

/// The largest detail kept; a larger one is replaced by a marker, so a bug or hostile input
/// cannot bloat every row.
const MAX_DETAIL_BYTES: usize = 2048;

/// One security event, before it is sealed. Build it with [`AuditEvent::new`] and the
/// setters, then hand it to [`super::AuditLog::record`].
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub kind: EventType,
    /// Who did it (a user id); `None` for anonymous callers and the system.
    pub actor: Option<i64>,
    /// Whom it concerns (a user id), when not the actor.
    pub subject: Option<i64>,
    pub session: Option<String>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub detail: Value,
}

impl AuditEvent {
    pub fn new(kind: EventType) -> Self {
        Self {
            kind,
            actor: None,
            subject: None,
            session: None,
            client_ip: None,
            user_agent: None,
            request_id: None,
            detail: Value::Object(Default::default()),
        }
    }

    pub fn actor(mut self, user_id: i64) -> Self {
        self.actor = Some(user_id);
        self
    }

    pub fn subject(mut self, user_id: i64) -> Self {
        self.subject = Some(user_id);
        self
    }

    pub fn session(mut self, session_id: impl Into<String>) -> Self {
        self.session = Some(session_id.into());
        self
    }

    /// Where the request came from: client IP, user agent and request id.
    pub fn from_request(mut self, context: &RequestContext) -> Self {
        self.client_ip.clone_from(&context.client.ip);
        self.user_agent.clone_from(&context.client.user_agent);
        self.request_id.clone_from(&context.request_id);
        self
    }

    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }

    /// The detail as stored: compact JSON, bounded in size.
    pub(crate) fn detail_text(&self) -> String {
        let text = self.detail.to_string();
        if text.len() <= MAX_DETAIL_BYTES {
            text
        } else {
            serde_json::json!({ "truncated": true, "bytes": text.len() }).to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_are_unique_snake_case() {
        let mut names: Vec<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
        for name in &names {
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
        }
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "duplicate event names");
    }

    #[test]
    fn serde_names_match_stored_names() {
        for kind in EventType::ALL {
            assert_eq!(
                serde_json::to_value(kind).ok(),
                Some(Value::String(kind.as_str().into()))
            );
        }
    }

    #[test]
    fn oversized_details_are_replaced_by_a_marker() {
        let event = AuditEvent::new(EventType::ConfigWarning)
            .detail(serde_json::json!({ "x": "y".repeat(10_000) }));
        assert!(event.detail_text().contains("truncated"));
    }

    #[test]
    fn operations_doc_lists_every_event_type() {
        let doc = include_str!("../../docs/operations.md");
        for kind in EventType::ALL {
            assert!(
                doc.contains(&format!("`{}`", kind.as_str())),
                "docs/operations.md does not list {}",
                kind.as_str()
            );
        }
    }
}
