//! Account administration from the command line (`aerie user ...`, `aerie sessions ...`):
//! how the first administrator comes to exist, since a fresh database has none and no
//! default credentials. Each command opens the configured database and calls the same
//! services as the admin API ([`crate::services`]), with the operator as the actor, so the
//! validation and the session revocation cannot differ; then it closes the database.

// What these commands print is the CLI's answer to its operator, not a log line.
#![expect(clippy::print_stdout, reason = "the CLI's output is its interface")]

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use secrecy::SecretString;

use crate::auth::password::{PasswordHasher, PasswordSettings};
use crate::auth::revocations::Revocations;
use crate::clock::{Clock, SystemClock};
use crate::domain::Role;
use crate::services::accounts::{AccountError, AccountRules, Accounts, NewAccount};
use crate::services::sessions::{Revoker, SessionError};
use crate::services::{Actor, Recorder};
use crate::store::{DatabaseSettings, Store};

/// Whose sessions to revoke.
pub enum SessionTarget {
    User(String),
    Everyone,
}

/// What the account commands need of the configuration.
pub struct AccountSettings<'a> {
    pub database: &'a DatabaseSettings,
    pub passwords: &'a PasswordSettings,
    pub rules: &'a AccountRules,
}

/// The services a command needs, on the configured database.
struct Console {
    store: Store,
    revoker: Revoker,
    clock: Arc<dyn Clock>,
}

impl Console {
    async fn open(database: &DatabaseSettings) -> anyhow::Result<Self> {
        let store = Store::connect(database).await?;
        if database.auto_migrate {
            store.migrate().await?;
        }
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        // This process's own set of revoked sessions, which no request reads (hence no
        // retention): what matters is the announcement to the running servers (PostgreSQL
        // NOTIFY; an SQLite server reloads revocations from the database when it starts).
        let revocations = Revocations::new(Duration::ZERO, clock.clone());
        let revoker = Revoker::new(store.clone(), revocations, recorder(), clock.clone());
        Ok(Self {
            store,
            revoker,
            clock,
        })
    }

    fn accounts(&self, settings: &AccountSettings<'_>) -> anyhow::Result<Accounts> {
        let hasher = PasswordHasher::new(settings.passwords.hash_concurrency)?;
        Ok(Accounts::new(
            self.store.clone(),
            hasher,
            self.revoker.clone(),
            recorder(),
            self.clock.clone(),
            *settings.passwords,
            *settings.rules,
        ))
    }
}

/// The operator's actions are not on the audit trail yet (issue 13 hands the commands the
/// trail here, and the services then record them as they record an administrator's).
fn recorder() -> Recorder {
    Recorder::unrecorded()
}

/// A username nobody has reads as the operator typed it.
fn unknown_user(username: &str) -> anyhow::Error {
    anyhow::anyhow!("no user named '{username}'")
}

pub async fn create(
    settings: &AccountSettings<'_>,
    username: String,
    email: String,
    password: SecretString,
    role: Role,
) -> anyhow::Result<()> {
    let console = Console::open(settings.database).await?;
    let new = NewAccount {
        username: Some(username),
        email: Some(email),
        password: Some(password),
    };
    let user = console
        .accounts(settings)?
        .create(Actor::Operator, new, role)
        .await?;
    tracing::warn!(
        subject = user.id,
        role = role.as_str(),
        "account created from the command line"
    );
    println!("created {} ({})", user.username, role.as_str());
    console.store.close().await;
    Ok(())
}

pub async fn set_role(
    settings: &AccountSettings<'_>,
    username: &str,
    role: Role,
) -> anyhow::Result<()> {
    let console = Console::open(settings.database).await?;
    let changed = console
        .accounts(settings)?
        .set_role(Actor::Operator, username, role)
        .await
        .map_err(|error| match error {
            AccountError::UnknownUser => unknown_user(username),
            other => other.into(),
        })?;
    tracing::warn!(
        subject = changed.user.id,
        role = role.as_str(),
        "role changed from the command line"
    );
    println!(
        "{} is now {}; {} session(s) revoked",
        changed.user.username,
        role.as_str(),
        changed.revoked
    );
    console.store.close().await;
    Ok(())
}

pub async fn set_disabled(
    settings: &AccountSettings<'_>,
    username: &str,
    disabled: bool,
) -> anyhow::Result<()> {
    let console = Console::open(settings.database).await?;
    let changed = console
        .accounts(settings)?
        .set_disabled(Actor::Operator, username, disabled)
        .await
        .map_err(|error| match error {
            AccountError::UnknownUser => unknown_user(username),
            other => other.into(),
        })?;
    let state = if disabled { "disabled" } else { "enabled" };
    tracing::warn!(
        subject = changed.user.id,
        disabled,
        "account disabled flag changed from the command line"
    );
    println!(
        "{} {state}; {} session(s) revoked",
        changed.user.username, changed.revoked
    );
    console.store.close().await;
    Ok(())
}

pub async fn revoke_sessions(
    database: &DatabaseSettings,
    target: SessionTarget,
) -> anyhow::Result<()> {
    let console = Console::open(database).await?;
    let revoked = match target {
        SessionTarget::User(username) => console
            .revoker
            .revoke_all_of(Actor::Operator, &username)
            .await
            .map_err(|error| match error {
                SessionError::UnknownUser => unknown_user(&username),
                other => other.into(),
            })?,
        SessionTarget::Everyone => console.revoker.revoke_everyone(Actor::Operator).await?,
    };
    tracing::warn!(revoked, "sessions revoked from the command line");
    println!("{revoked} session(s) revoked");
    console.store.close().await;
    Ok(())
}

/// Reads a password without echo from the terminal, or one line from standard input when
/// it is not a terminal (scripts). Never from the command line, where `ps` and shell
/// history would show it.
pub fn read_password() -> anyhow::Result<SecretString> {
    use std::io::IsTerminal;
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Repeat password: ")?;
        if first != second {
            bail!("the passwords differ");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        line.strip_suffix('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .unwrap_or(&line)
            .to_owned()
    };
    Ok(SecretString::from(password))
}
