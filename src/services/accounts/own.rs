//! A signed-in user changing their own account: profile, email, password.
//!
//! Guards against account takeover through a stolen access token: a new email or password
//! needs a recent password authentication (step-up), a new password also the current one,
//! and it ends every other session of the account, so whoever else held it is
//! locked out at once (the device that changed it stays signed in). Email and password
//! changes are recorded on the audit trail.

use secrecy::{ExposeSecret, SecretString};

use super::registration::taken_or_store;
use super::{AccountDeletion, AccountError, Accounts};
use crate::audit::EventType;
use crate::domain::{
    Bio, Email, FieldErrors, ImageUrl, InvalidFields, NewPassword, Username, email_key,
    password_within_limits,
};
use crate::services::Caller;
use crate::services::sessions::RevokedBecause;
use crate::store::{ExportRows, UserChanges, UserRow};

/// A change to one's own account, as submitted: `None` leaves a field as it is. `bio` and
/// `image` distinguish absent (unchanged) from `Some(None)` or `Some(Some(""))` (cleared).
#[derive(Default)]
pub struct ProfileChanges {
    pub email: Option<String>,
    pub username: Option<String>,
    /// A new password; empty means unchanged (RealWorld front ends send an empty field).
    pub password: Option<SecretString>,
    pub current_password: Option<SecretString>,
    pub bio: Option<Option<String>>,
    pub image: Option<Option<String>>,
}

impl Accounts {
    /// The caller's account, re-read so a disabled or deleted account stops at once.
    pub async fn active(&self, user_id: i64) -> Result<UserRow, AccountError> {
        match self.store.user_by_id(user_id).await? {
            Some(row) if row.disabled_at.is_none() => Ok(row),
            _ => Err(AccountError::Unauthenticated),
        }
    }

    /// Applies the caller's changes to their own account; a new password ends their other
    /// sessions. Answers the account as it now is.
    pub async fn update_profile(
        &self,
        caller: Caller<'_>,
        changes: ProfileChanges,
    ) -> Result<UserRow, AccountError> {
        let current = self.active(caller.user_id).await?;
        let mut errors = FieldErrors::default();
        let mut update = UserChanges::default();
        let username = changes
            .username
            .and_then(|v| errors.check("username", Username::parse(v)));
        let email = changes
            .email
            .and_then(|v| errors.check("email", Email::parse(v)));
        if let Some(bio) = changes.bio {
            let bio = bio.filter(|b| !b.is_empty());
            update.bio =
                Some(bio.and_then(|b| errors.check("bio", Bio::parse(b)).map(Bio::into_inner)));
        }
        if let Some(image) = changes.image {
            let allow_http = self.rules.allow_http_images;
            let image = image.filter(|i| !i.is_empty());
            update.image = Some(image.and_then(|i| {
                errors
                    .check("image", ImageUrl::parse(i, allow_http))
                    .map(ImageUrl::into_inner)
            }));
        }
        let new_password = changes.password.filter(|p| !p.expose_secret().is_empty());
        let new_password = match new_password {
            Some(value) => {
                let name = username
                    .as_ref()
                    .map_or(current.username.as_str(), Username::as_str);
                let mail = email.as_ref().map_or(current.email.as_str(), Email::as_str);
                let min_score = self.passwords.min_score;
                errors.check(
                    "password",
                    NewPassword::parse(value, min_score, &[name, mail]),
                )
            }
            None => None,
        };
        errors.finish()?;
        let email_changes = email
            .as_ref()
            .is_some_and(|e| e.key() != email_key(&current.email));
        if email_changes || new_password.is_some() {
            self.check_step_up(caller)?;
        }
        if let Some(password) = &new_password {
            self.check_current_password(caller, &current, changes.current_password)
                .await?;
            update.password_hash = Some(self.hasher.hash(password.secret()).await?);
        }
        update.username = username.map(|u| (u.as_str().to_owned(), u.key()));
        // With mail on, a new address takes effect only when it confirms (a link to it, a
        // notice to the old one); an unchanged one stays a no-op.
        let confirm_by_mail = match (&email, self.mail()) {
            (Some(new), Some(_)) if email_changes => Some(new.clone()),
            _ => None,
        };
        if confirm_by_mail.is_none() {
            update.email = email.map(|e| (e.as_str().to_owned(), e.key()));
        }
        if let (Some(_), Some(mail)) = (&confirm_by_mail, self.mail()) {
            mail.check_email_change_budget(current.id).await?;
        }
        let password_changed = update.password_hash.is_some();
        let email_changed = update
            .email
            .as_ref()
            .is_some_and(|(_, key)| *key != email_key(&current.email));
        let row = self
            .store
            .update_user(current.id, update, self.clock.now())
            .await
            .map_err(taken_or_store)?
            .ok_or(AccountError::Unauthenticated)?;
        if password_changed {
            self.revoker
                .revoke_own(caller, RevokedBecause::PasswordChanged)
                .await?;
        }
        let changed = [
            (password_changed, EventType::PasswordChanged),
            (email_changed, EventType::EmailChanged),
        ];
        for (_, kind) in changed.into_iter().filter(|(happened, _)| *happened) {
            let mut event = caller.own_event(kind);
            event.subject = Some(row.id);
            self.recorder.record(event).await?;
        }
        if let (Some(new_email), Some(mail)) = (&confirm_by_mail, self.mail()) {
            mail.request_email_change(caller, new_email).await?;
        }
        Ok(row)
    }

    /// `PUT /api/user/password`: needs the current password; every other session of the
    /// caller ends (their own keeps working).
    pub async fn change_password(
        &self,
        caller: Caller<'_>,
        current_password: Option<SecretString>,
        new_password: Option<SecretString>,
    ) -> Result<(), AccountError> {
        let current = self.active(caller.user_id).await?;
        let mut errors = FieldErrors::default();
        let min_score = self.passwords.min_score;
        let related = [current.username.as_str(), current.email.as_str()];
        let new_password = errors.required("newPassword", new_password, |p| {
            NewPassword::parse(p, min_score, &related)
        });
        errors.finish()?;
        let Some(new_password) = new_password else {
            // `finish` reported it missing; kept as a plain refusal, not a panic.
            return Err(InvalidFields::one("newPassword", "can't be blank").into());
        };
        self.check_step_up(caller)?;
        self.check_current_password(caller, &current, current_password)
            .await?;
        let changes = UserChanges {
            password_hash: Some(self.hasher.hash(new_password.secret()).await?),
            ..UserChanges::default()
        };
        self.store
            .update_user(current.id, changes, self.clock.now())
            .await?
            .ok_or(AccountError::Unauthenticated)?;
        self.revoker
            .revoke_own(caller, RevokedBecause::PasswordChanged)
            .await?;
        let mut event = caller.own_event(EventType::PasswordChanged);
        event.subject = Some(current.id);
        self.recorder.record(event).await?;
        Ok(())
    }

    /// Everything held about the caller (`GET /api/user/export`). Needs a recent password
    /// authentication like a change of credentials: a stolen access token must not carry
    /// the account's whole history away in one request. Recorded as `user_data_exported`.
    pub async fn export(&self, caller: Caller<'_>) -> Result<(UserRow, ExportRows), AccountError> {
        let user = self.active(caller.user_id).await?;
        self.check_step_up(caller)?;
        let rows = self.store.export_rows(user.id).await?;
        self.recorder
            .record(caller.own_event(EventType::UserDataExported))
            .await?;
        Ok((user, rows))
    }

    /// `DELETE /api/user`: the caller deletes their own account, after a recent password
    /// authentication (a stolen token must not be able to erase an account and its
    /// history). Every session ends first (so other instances refuse its tokens too), then
    /// the account is anonymised or removed as `AERIE_ACCOUNT_DELETION` says, and
    /// `account_deleted` is recorded (the trail keeps the account's id, nothing personal).
    pub async fn delete_own(&self, caller: Caller<'_>) -> Result<(), AccountError> {
        let user = self.active(caller.user_id).await?;
        self.check_step_up(caller)?;
        let mode = self
            .erase(user.id)
            .await?
            .ok_or(AccountError::Unauthenticated)?;
        let event = caller
            .own_event(EventType::AccountDeleted)
            .detail(serde_json::json!({ "mode": mode.as_str() }));
        self.recorder.record(event).await?;
        Ok(())
    }

    /// Ends every session of the account (so other instances refuse its tokens too), then
    /// anonymises or removes it as `AERIE_ACCOUNT_DELETION` says. `None` when the account
    /// was already gone.
    pub(super) async fn erase(
        &self,
        user_id: i64,
    ) -> Result<Option<AccountDeletion>, AccountError> {
        self.revoker.end_user_sessions(user_id, None).await?;
        let mode = self.rules.deletion;
        let deleted = match mode {
            AccountDeletion::Remove => self.store.remove_account(user_id).await?,
            AccountDeletion::Anonymise => {
                let suffix: u64 = rand::random();
                let placeholder = format!("deleted-{suffix:016x}");
                self.store
                    .anonymise_account(user_id, &placeholder, self.clock.now())
                    .await?
            }
        };
        Ok(deleted.then_some(mode))
    }

    /// Refuses a change of credentials unless the caller authenticated recently.
    pub(super) fn check_step_up(&self, caller: Caller<'_>) -> Result<(), AccountError> {
        if self.rules.step_up.is_recent(caller, self.clock.now()) {
            Ok(())
        } else {
            Err(AccountError::StepUpRequired)
        }
    }

    /// Refuses unless the current password is given and right. A wrong one is a guess made
    /// with the caller's session: it is recorded (`password_change_failed`, which the
    /// failed-login alert counts); the HTTP layer has already charged it to the account's
    /// login budget.
    async fn check_current_password(
        &self,
        caller: Caller<'_>,
        account: &UserRow,
        current_password: Option<SecretString>,
    ) -> Result<(), AccountError> {
        let current_password = current_password.ok_or(AccountError::CurrentPasswordMissing)?;
        if password_within_limits(&current_password)
            && self
                .hasher
                .verify(&current_password, Some(&account.password_hash))
                .await?
        {
            return Ok(());
        }
        let mut event = caller
            .own_event(EventType::PasswordChangeFailed)
            .detail(serde_json::json!({ "reason": "wrong_password" }));
        event.subject = Some(account.id);
        self.recorder.record(event).await?;
        Err(AccountError::CurrentPasswordWrong)
    }
}
