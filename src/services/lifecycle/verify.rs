//! Address verification and confirmed address changes.

use serde_json::json;

use super::tokens::hash_of;
use super::{Lifecycle, LifecycleError, MailToken, Purpose, TOKEN_LIFETIME, millis};
use crate::audit::{AuditEvent, EventType};
use crate::domain::{Email, FieldErrors};
use crate::mail::Kind;
use crate::request_context::RequestContext;
use crate::services::Caller;
use crate::store::{EmailChangeByToken, NewMailToken, OutgoingMail};

impl Lifecycle {
    /// `POST /api/auth/email/verify`: the mailed token proves the account's address (404 with
    /// mail off, like every mail route).
    pub async fn verify_email(
        &self,
        token: Option<String>,
        request: &RequestContext,
    ) -> Result<(), LifecycleError> {
        self.ensure_enabled()?;
        let hash = required_token(token)?;
        let user_id = self
            .store
            .verify_email_by_token(&hash, Purpose::VerifyEmail.as_str(), self.clock.now())
            .await?
            .ok_or(LifecycleError::InvalidToken)?;
        let event = AuditEvent::new(EventType::EmailVerified)
            .subject(user_id)
            .from_request(request);
        self.recorder.record(event).await?;
        Ok(())
    }

    /// `POST /api/auth/email/verify/resend`: a new verification mail (earlier links stop
    /// working). Nothing is sent for a verified address or past the hourly budget; the
    /// answer is the same.
    pub async fn resend_verification(&self, caller: Caller<'_>) -> Result<(), LifecycleError> {
        self.ensure_enabled()?;
        let user = self
            .store
            .user_by_id(caller.user_id)
            .await?
            .filter(|u| u.disabled_at.is_none())
            .ok_or(LifecycleError::Unauthenticated)?;
        if user.email_verified_at.is_some() {
            return Ok(());
        }
        let (_, token, mail) = self.tokened_mail(
            Purpose::VerifyEmail,
            Kind::VerifyEmail,
            user.id,
            &user.username,
            &user.email,
        );
        self.queue_within_budget(&token, &[mail], true).await?;
        Ok(())
    }

    /// Refuses, before anything is saved, an email change the account's hourly budget has
    /// no room for (its links would reach an address that is not yet the account's: the
    /// budget keeps the change form from mailing anyone at will).
    pub async fn check_email_change_budget(&self, user_id: i64) -> Result<(), LifecycleError> {
        if self
            .within_account_budget(user_id, Purpose::EmailChange)
            .await?
        {
            Ok(())
        } else {
            Err(LifecycleError::TooManyEmailChanges)
        }
    }

    /// A signed-in user asked to move to `new_email` (after the step-up rule): a link to
    /// the new address, a notice to the old one; the account keeps its address until the
    /// link is followed.
    pub async fn request_email_change(
        &self,
        caller: Caller<'_>,
        new_email: &Email,
    ) -> Result<(), LifecycleError> {
        self.ensure_enabled()?;
        let user = self
            .store
            .user_by_id(caller.user_id)
            .await?
            .ok_or(LifecycleError::Unauthenticated)?;
        if self
            .store
            .user_by_email_key(&new_email.key())
            .await?
            .is_some()
        {
            return Err(LifecycleError::EmailTaken);
        }
        let purpose = Purpose::EmailChange.as_str();
        let token = MailToken::generate();
        let record = NewMailToken {
            hash: token.hash(),
            purpose,
            user_id: user.id,
            new_email: Some((new_email.as_str().to_owned(), new_email.key())),
            expires_at: self.clock.now() + millis(TOKEN_LIFETIME),
        };
        let username = &user.username;
        let mails = [
            OutgoingMail {
                kind: Kind::EmailChangeConfirm.as_str(),
                to: new_email.as_str().to_owned(),
                payload: json!({ "username": username, "token": token.expose() }).to_string(),
            },
            OutgoingMail {
                kind: Kind::EmailChangeNotice.as_str(),
                to: user.email.clone(),
                payload: json!({ "username": username }).to_string(),
            },
        ];
        if !self.queue_within_budget(&record, &mails, true).await? {
            return Err(LifecycleError::TooManyEmailChanges);
        }
        let mut event = AuditEvent::new(EventType::EmailChangeRequested)
            .actor(caller.user_id)
            .subject(caller.user_id)
            .session(caller.session_id)
            .from_request(caller.request);
        event.subject = Some(user.id);
        self.recorder.record(event).await?;
        Ok(())
    }

    /// `POST /api/auth/email/confirm`: the new address's link makes the change (and proves
    /// the address).
    pub async fn confirm_email_change(
        &self,
        token: Option<String>,
        request: &RequestContext,
    ) -> Result<(), LifecycleError> {
        // With mail off an address change applies at once; a link mailed before must not
        // undo a later one.
        self.ensure_enabled()?;
        let hash = required_token(token)?;
        // The old address's verification links prove nothing about the new one.
        let (change, voids) = (Purpose::EmailChange.as_str(), Purpose::VerifyEmail.as_str());
        let changed = self
            .store
            .change_email_by_token(&hash, change, voids, self.clock.now())
            .await?;
        let user_id = match changed {
            EmailChangeByToken::Changed { user_id } => user_id,
            EmailChangeByToken::NoLiveToken => return Err(LifecycleError::InvalidToken),
            EmailChangeByToken::Taken => return Err(LifecycleError::EmailTaken),
        };
        let event = AuditEvent::new(EventType::EmailChanged)
            .subject(user_id)
            .from_request(request)
            .detail(json!({ "confirmedBy": "mail" }));
        self.recorder.record(event).await?;
        Ok(())
    }
}

/// The hash of a presented token, or `token: can't be blank`.
fn required_token(token: Option<String>) -> Result<String, LifecycleError> {
    let mut errors = FieldErrors::default();
    let token = errors.required("token", token, Ok::<String, crate::domain::Invalid>);
    errors.finish()?;
    Ok(hash_of(&token.unwrap_or_default()))
}
