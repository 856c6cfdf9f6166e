//! Password reset by mail.

use secrecy::SecretString;
use serde_json::json;

use super::tokens::hash_of;
use super::{Lifecycle, LifecycleError, Purpose};
use crate::audit::{AuditEvent, EventType};
use crate::domain::{FieldErrors, InvalidFields, NewPassword, email_key, username_key};
use crate::mail::Kind;
use crate::request_context::RequestContext;
use crate::services::Actor;

impl Lifecycle {
    /// `POST /api/auth/password-reset`, after the answer has gone: mails a reset link if the
    /// address has an active account and its hourly budget allows, and records the request
    /// either way (what happened stays in the detail, never in the response).
    pub async fn request_reset(
        &self,
        email: &str,
        request: &RequestContext,
    ) -> Result<(), LifecycleError> {
        self.ensure_enabled()?;
        let account = self.store.user_by_email_key(&email_key(email)).await?;
        let outcome = match account {
            Some(user) if user.disabled_at.is_none() => {
                let (_, token, mail) = self.tokened_mail(
                    Purpose::PasswordReset,
                    Kind::PasswordReset,
                    user.id,
                    &user.username,
                    &user.email,
                );
                if self.queue_within_budget(&token, &[mail], false).await? {
                    (Some(user.id), "mailed")
                } else {
                    (Some(user.id), "rate_limited")
                }
            }
            Some(user) => (Some(user.id), "disabled"),
            None => (None, "unknown_account"),
        };
        let mut event = AuditEvent::new(EventType::PasswordResetRequested)
            .from_request(request)
            .detail(json!({ "outcome": outcome.1 }));
        event.subject = outcome.0;
        self.recorder.record(event).await?;
        Ok(())
    }

    /// `POST /api/auth/password-reset/confirm`: the mailed token sets a new password (the
    /// password policy applies); every session of the account ends; MFA stays as it was.
    pub async fn confirm_reset(
        &self,
        token: Option<String>,
        new_password: Option<SecretString>,
        request: &RequestContext,
    ) -> Result<(), LifecycleError> {
        self.ensure_enabled()?;
        let mut errors = FieldErrors::default();
        let token = errors.required("token", token, Ok::<String, crate::domain::Invalid>);
        errors.finish()?;
        let hash = hash_of(&token.unwrap_or_default());
        let purpose = Purpose::PasswordReset.as_str();
        let now = self.clock.now();
        let user_id = self
            .store
            .peek_mail_token(&hash, purpose, now)
            .await?
            .ok_or(LifecycleError::InvalidToken)?;
        let user = self
            .store
            .user_by_id(user_id)
            .await?
            .filter(|u| u.disabled_at.is_none())
            .ok_or(LifecycleError::InvalidToken)?;
        let min_score = self.passwords.min_score;
        let related = [user.username.as_str(), user.email.as_str()];
        let mut errors = FieldErrors::default();
        let password = errors.required("newPassword", new_password, |p| {
            NewPassword::parse(p, min_score, &related)
        });
        errors.finish()?;
        let password =
            password.ok_or_else(|| InvalidFields::one("newPassword", "can't be blank"))?;
        let password_hash = self.hasher.hash(password.secret()).await?;
        // Spent only now, atomically: of two requests racing with one token, one wins.
        let ended_sessions = self
            .store
            .reset_password_by_token(&hash, purpose, user.id, &password_hash, self.clock.now())
            .await?
            .ok_or(LifecycleError::InvalidToken)?;
        self.revoker.announce(&ended_sessions).await?;
        let event = AuditEvent::new(EventType::PasswordResetCompleted)
            .subject(user.id)
            .from_request(request);
        self.recorder.record(event).await?;
        Ok(())
    }
}

impl Lifecycle {
    /// `aerie user reset-link USERNAME`: a reset link for the operator to hand over (no mail
    /// is sent), valid like a mailed one; recorded as `password_reset_requested` by the CLI.
    pub async fn reset_link_for(
        &self,
        actor: Actor<'_>,
        username: &str,
    ) -> Result<String, LifecycleError> {
        let user = self
            .store
            .user_by_username_key(&username_key(username))
            .await?
            .filter(|u| u.disabled_at.is_none())
            .ok_or(LifecycleError::UnknownUser)?;
        let (token, record, _) = self.tokened_mail(
            Purpose::PasswordReset,
            Kind::PasswordReset,
            user.id,
            &user.username,
            &user.email,
        );
        self.store
            .queue_mail(Some(&record), &[], self.clock.now())
            .await?;
        let mut event = actor.event(
            EventType::PasswordResetRequested,
            json!({ "outcome": "link_printed" }),
        );
        event.subject = Some(user.id);
        self.recorder.record(event).await?;
        self.sender
            .link(Kind::PasswordReset, token.expose())
            .ok_or(LifecycleError::MailOff)
    }
}
