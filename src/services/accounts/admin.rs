//! Administering accounts: list them, change a role, disable and enable, delete, reset a
//! password (the operator only, from the command line); the same functions
//! for the admin API (an administrator acting) and the CLI (the operator acting).
//!
//! Guards against privilege escalation and stale privilege. Granting the admin role needs a
//! recent password authentication ([`crate::services::StepUp`]), so a stolen long-lived
//! session cannot mint new admins. Changing a role or disabling an account ends
//! all of that account's sessions at once, so no token carries a role the account no longer
//! has. Administrators cannot change their own role or disable themselves (no accidental
//! lock-out of the last admin). Every action, and every read of account data, is an audit
//! event naming the administrator.

use secrecy::SecretString;
use serde_json::{Value, json};

use super::{AccountError, Accounts};
use crate::audit::EventType;
use crate::domain::{Invalid, InvalidFields, NewPassword, Role, username_key};
use crate::services::Actor;
use crate::store::{AccountRow, UserChanges, UserRow};

/// An account changed by an administrator or the operator.
pub struct Changed {
    /// The account as it was before the change.
    pub user: UserRow,
    /// How many of its sessions the change ended.
    pub revoked: usize,
}

impl Accounts {
    /// A page of accounts, optionally only those whose username or email contains `query`,
    /// with the total count; the read is recorded.
    pub async fn list(
        &self,
        actor: Actor<'_>,
        query: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<AccountRow>, i64), AccountError> {
        let (rows, count) = self.store.list_accounts(query, limit, offset).await?;
        let detail = json!({ "resource": "users", "results": rows.len() });
        self.record(actor, EventType::AdminReadUserData, None, detail)
            .await?;
        Ok((rows, count))
    }

    /// The account as the admin list shows it.
    pub async fn as_listed(&self, user: &UserRow) -> Result<AccountRow, AccountError> {
        let (rows, _) = self
            .store
            .list_accounts(Some(&user.username), 100, 0)
            .await?;
        rows.into_iter()
            .find(|r| r.username == user.username)
            .ok_or(AccountError::UnknownUser)
    }

    /// Gives the account named `username` a role and ends its sessions (their tokens carry
    /// the old one).
    pub async fn set_role(
        &self,
        actor: Actor<'_>,
        username: &str,
        role: Role,
    ) -> Result<Changed, AccountError> {
        let user = self.target(actor, username).await?;
        let now = self.clock.now();
        // The operator at the command line has no session whose token could be stolen.
        if role == Role::Admin
            && let Actor::Admin(caller) = actor
        {
            self.check_step_up(caller)?;
        }
        self.store.set_role(user.id, role.as_str(), now).await?;
        let revoked = self.revoker.end_user_sessions(user.id, None).await?;
        let detail = json!({ "from": user.role, "to": role.as_str() });
        self.record(actor, EventType::RoleChanged, Some(user.id), detail)
            .await?;
        Ok(Changed {
            user,
            revoked: revoked.len(),
        })
    }

    /// Disables (or enables again) the account named `username`, ending its sessions.
    pub async fn set_disabled(
        &self,
        actor: Actor<'_>,
        username: &str,
        disabled: bool,
    ) -> Result<Changed, AccountError> {
        let user = self.target(actor, username).await?;
        let now = self.clock.now();
        self.store
            .set_disabled(user.id, disabled.then_some(now), now)
            .await?;
        let revoked = self.revoker.end_user_sessions(user.id, None).await?;
        let kind = if disabled {
            EventType::UserDisabled
        } else {
            EventType::UserEnabled
        };
        self.record(actor, kind, Some(user.id), json!({})).await?;
        Ok(Changed {
            user,
            revoked: revoked.len(),
        })
    }

    /// Sets a new password for the account named `username` (`aerie user set-password`, the
    /// operator's reset), judged by the same rules as a user's own, and ends every session
    /// of the account: whoever held one may have known the old password.
    pub async fn set_password(
        &self,
        actor: Actor<'_>,
        username: &str,
        password: SecretString,
    ) -> Result<Changed, AccountError> {
        let user = self.target(actor, username).await?;
        let related = [user.username.as_str(), user.email.as_str()];
        let password = NewPassword::parse(password, self.passwords.min_score, &related)
            .map_err(|Invalid(message)| InvalidFields::one("password", message))?;
        let changes = UserChanges {
            password_hash: Some(self.hasher.hash(password.secret()).await?),
            ..UserChanges::default()
        };
        self.store
            .update_user(user.id, changes, self.clock.now())
            .await?
            .ok_or(AccountError::UnknownUser)?;
        let revoked = self.revoker.end_user_sessions(user.id, None).await?;
        self.record(actor, EventType::PasswordChanged, Some(user.id), json!({}))
            .await?;
        Ok(Changed {
            user,
            revoked: revoked.len(),
        })
    }

    /// Deletes the account named `username` (`DELETE /api/admin/users/:username`, `aerie user
    /// delete`) as its owner could: sessions ended, then anonymised or removed as
    /// `AERIE_ACCOUNT_DELETION` says. An administrator needs a recent password
    /// authentication, as for granting admin: erasing an account cannot be undone, so a
    /// stolen admin session must not be enough.
    pub async fn delete(&self, actor: Actor<'_>, username: &str) -> Result<(), AccountError> {
        let user = self.target(actor, username).await?;
        if let Actor::Admin(caller) = actor {
            self.check_step_up(caller)?;
        }
        let mode = self
            .erase(user.id)
            .await?
            .ok_or(AccountError::UnknownUser)?;
        let detail = json!({ "mode": mode.as_str() });
        self.record(actor, EventType::AccountDeleted, Some(user.id), detail)
            .await
    }

    /// The account named `username`; never the acting administrator's own.
    async fn target(&self, actor: Actor<'_>, username: &str) -> Result<UserRow, AccountError> {
        let user = self
            .store
            .user_by_username_key(&username_key(username))
            .await?
            .ok_or(AccountError::UnknownUser)?;
        if actor.user_id() == Some(user.id) {
            return Err(AccountError::OwnAccount);
        }
        Ok(user)
    }

    /// Records an administrative action (or read) before its answer leaves.
    async fn record(
        &self,
        actor: Actor<'_>,
        kind: EventType,
        subject: Option<i64>,
        detail: Value,
    ) -> Result<(), AccountError> {
        let mut event = actor.event(kind, detail);
        event.subject = subject;
        self.recorder.record(event).await?;
        Ok(())
    }
}
