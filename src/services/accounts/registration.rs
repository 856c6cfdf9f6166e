//! New accounts: the one set of rules for the API's registration, `aerie user create` and the
//! fuzz targets. A username and an email are taken at most once (the store's unique indexes
//! decide, so two concurrent registrations cannot both win); the password is judged against
//! the account's own name and email, so `jacob` cannot register with `jacob2026!!!!`.

use secrecy::SecretString;
use serde_json::json;

use super::{AccountError, Accounts};
use crate::audit::EventType;
use crate::domain::{Email, FieldErrors, InvalidFields, NewPassword, Role, Username};
use crate::services::Actor;
use crate::store::{NewUser, UserRow, is_unique_violation};

/// A registration as submitted. Fields are `Option` so that each missing one is reported by
/// name ("can't be blank") together with every other problem.
pub struct NewAccount {
    pub username: Option<String>,
    pub email: Option<String>,
    pub password: Option<SecretString>,
}

/// A registration whose fields passed their rules.
pub struct ValidAccount {
    pub username: Username,
    pub email: Email,
    pub password: NewPassword,
}

/// The field rules of a registration, before any store or hashing work.
pub fn validate_registration(
    new: NewAccount,
    min_score: u8,
) -> Result<ValidAccount, InvalidFields> {
    let mut errors = FieldErrors::default();
    let username = errors.required("username", new.username, Username::parse);
    let email = errors.required("email", new.email, Email::parse);
    let related: Vec<&str> = username
        .iter()
        .map(Username::as_str)
        .chain(email.iter().map(Email::as_str))
        .collect();
    let password = errors.required("password", new.password, |p| {
        NewPassword::parse(p, min_score, &related)
    });
    errors.finish()?;
    match (username, email, password) {
        (Some(username), Some(email), Some(password)) => Ok(ValidAccount {
            username,
            email,
            password,
        }),
        // `finish` reported every missing field; kept as a plain refusal, not a panic.
        _ => Err(InvalidFields::one("body", "is incomplete")),
    }
}

impl Accounts {
    /// Someone registers (`POST /api/users`): a new account with the `user` role. Its first
    /// session, and the `user_registered` event naming it, are
    /// [`crate::services::sessions::Sessions::start`]'s.
    pub async fn register(&self, new: NewAccount) -> Result<UserRow, AccountError> {
        let user = self.insert(new, true).await?;
        if let Some(mail) = self.mail() {
            mail.wake();
        }
        Ok(user)
    }

    /// The operator creates an account (`aerie user create`), with any role: how the first
    /// administrator comes to exist, since a fresh database has none and no route can
    /// grant the first one.
    pub async fn create(
        &self,
        actor: Actor<'_>,
        new: NewAccount,
        role: Role,
    ) -> Result<UserRow, AccountError> {
        let user = self.insert(new, false).await?;
        if role != Role::User {
            self.store
                .set_role(user.id, role.as_str(), self.clock.now())
                .await?;
        }
        let mut event = actor.event(EventType::UserRegistered, json!({ "role": role.as_str() }));
        event.subject = Some(user.id);
        self.recorder.record(event).await?;
        Ok(user)
    }

    /// Validates and stores a new account (role `user`).
    /// With `verify`, the verification mail is queued with the account (when mail is on).
    async fn insert(&self, new: NewAccount, verify: bool) -> Result<UserRow, AccountError> {
        let now = self.clock.now();
        let valid = validate_registration(new, self.passwords.min_score)?;
        let password_hash = self.hasher.hash(valid.password.secret()).await?;
        let username = valid.username;
        let email = valid.email;
        self.store
            .insert_user(NewUser {
                username: username.as_str(),
                username_key: &username.key(),
                email: email.as_str(),
                email_key: &email.key(),
                password_hash: &password_hash,
                now,
                verification: self.mail().filter(|_| verify).and_then(|m| {
                    m.verification_for_new_account(username.as_str(), email.as_str())
                }),
            })
            .await
            .map_err(taken_or_store)
    }
}

/// A unique-index violation on username or email is that field taken.
pub(super) fn taken_or_store(error: sqlx::Error) -> AccountError {
    for (field, column) in [("username", "username_key"), ("email", "email_index")] {
        if is_unique_violation(&error, "users", column) {
            return AccountError::Taken(field);
        }
    }
    error.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(username: Option<&str>, email: Option<&str>, password: Option<&str>) -> NewAccount {
        NewAccount {
            username: username.map(str::to_owned),
            email: email.map(str::to_owned),
            password: password.map(|p| SecretString::from(p.to_owned())),
        }
    }

    #[test]
    fn every_missing_field_is_named_at_once() {
        let Err(InvalidFields(fields)) = validate_registration(new(None, None, None), 3) else {
            panic!("an empty registration was accepted");
        };
        assert_eq!(
            fields.keys().copied().collect::<Vec<_>>(),
            ["email", "password", "username"]
        );
    }

    #[test]
    fn the_password_is_judged_against_the_accounts_own_name() {
        let own_name = new(
            Some("jacobsmith"),
            Some("jacob@example.com"),
            Some("jacobsmith2026"),
        );
        let Err(InvalidFields(fields)) = validate_registration(own_name, 3) else {
            panic!("a password made of the username was accepted");
        };
        assert!(fields.contains_key("password"), "{fields:?}");
        let strong = new(
            Some("jacobsmith"),
            Some("jacob@example.com"),
            Some("correct horse battery staple 42"),
        );
        assert!(validate_registration(strong, 3).is_ok());
    }
}
