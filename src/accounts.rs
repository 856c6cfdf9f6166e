//! Account administration from the command line (`aerie user ...`, `aerie sessions ...`):
//! how the first administrator comes to exist, since a fresh database has none and no
//! default credentials. Each command opens the configured database and calls the same
//! services as the admin API ([`crate::services`]), with the operator as the actor, so the
//! validation, the session revocation and the audit events cannot differ: every change is
//! recorded on the audit trail naming the OS user who ran it ([`crate::cli::trail`]), and an admin
//! grant raises the same alert as through the API. Then it closes the database.

// What these commands print is the CLI's answer to its operator, not a log line.
#![expect(clippy::print_stdout, reason = "the CLI's output is its interface")]

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use secrecy::SecretString;

use crate::audit::{AlertSettings, AuditSettings};
use crate::auth::password::{PasswordHasher, PasswordSettings};
use crate::auth::revocations::Revocations;
use crate::cli::trail::{CommandTrail, operator};
use crate::clock::{Clock, SystemClock, rfc3339};
use crate::domain::Role;
use crate::mail::MailSettings;
use crate::services::accounts::{AccountError, AccountRules, Accounts, NewAccount};
use crate::services::lifecycle::{Lifecycle, LifecycleError};
use crate::services::sessions::{Revoker, SessionError};
use crate::services::{Actor, Operator, Recorder};
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
    pub audit: &'a AuditSettings,
    pub alerts: &'a AlertSettings,
    pub mail: &'a MailSettings,
}

/// The services a command needs, on the configured database.
struct Console {
    store: Store,
    trail: CommandTrail,
    operator: Operator,
    revoker: Revoker,
    clock: Arc<dyn Clock>,
}

impl Console {
    async fn open(settings: &AccountSettings<'_>) -> anyhow::Result<Self> {
        let store = Store::connect(settings.database).await?;
        if settings.database.auto_migrate {
            store.migrate().await?;
        }
        let trail = CommandTrail::open(&store, settings.audit, settings.alerts)?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        // This process's own set of revoked sessions, which no request reads (hence no
        // retention): what matters is that the running servers hear of it (PostgreSQL NOTIFY;
        // on SQLite they poll the revocation log the database's trigger fills).
        let revocations = Revocations::new(Duration::ZERO, clock.clone());
        let recorder = Recorder::new(trail.audit.clone());
        // The operator has no session whose authentication could be stale: step-up rules
        // apply to API callers only.
        let revoker = Revoker::new(
            store.clone(),
            revocations,
            recorder,
            clock.clone(),
            settings.rules.step_up,
        );
        Ok(Self {
            store,
            trail,
            operator: operator(),
            revoker,
            clock,
        })
    }

    /// The operator, as the services' actor.
    fn actor(&self) -> Actor<'_> {
        Actor::Operator(&self.operator)
    }

    /// Posts the alerts the command raised, then closes the database.
    async fn close(self) {
        self.trail.finish().await;
        self.store.close().await;
    }

    fn accounts(&self, settings: &AccountSettings<'_>) -> anyhow::Result<Accounts> {
        let hasher = PasswordHasher::new(settings.passwords.hash_concurrency)?;
        Ok(Accounts::new(
            self.store.clone(),
            hasher,
            self.revoker.clone(),
            Recorder::new(self.trail.audit.clone()),
            self.clock.clone(),
            *settings.passwords,
            *settings.rules,
        ))
    }
}

impl Console {
    fn lifecycle(&self, settings: &AccountSettings<'_>) -> anyhow::Result<Lifecycle> {
        let hasher = PasswordHasher::new(settings.passwords.hash_concurrency)?;
        let sender = crate::mail::Sender::new(
            self.store.clone(),
            settings.mail.clone(),
            self.trail.audit.clone(),
        )?;
        Ok(Lifecycle::new(
            self.store.clone(),
            hasher,
            self.revoker.clone(),
            Recorder::new(self.trail.audit.clone()),
            self.clock.clone(),
            *settings.passwords,
            sender,
        ))
    }
}

/// A username nobody has reads as the operator typed it.
fn unknown_user(username: &str) -> anyhow::Error {
    anyhow::anyhow!("no user named '{username}'")
}

/// The error of a command on `username`, the unknown account said in the operator's terms.
fn naming(username: &str) -> impl FnOnce(AccountError) -> anyhow::Error + '_ {
    move |error| match error {
        AccountError::UnknownUser => unknown_user(username),
        other => other.into(),
    }
}

pub async fn create(
    settings: &AccountSettings<'_>,
    username: String,
    email: String,
    password: SecretString,
    role: Role,
) -> anyhow::Result<()> {
    let console = Console::open(settings).await?;
    let new = NewAccount {
        username: Some(username),
        email: Some(email),
        password: Some(password),
    };
    let user = console
        .accounts(settings)?
        .create(console.actor(), new, role)
        .await?;
    tracing::warn!(
        subject = user.id,
        role = role.as_str(),
        "account created from the command line"
    );
    println!("created {} ({})", user.username, role.as_str());
    console.close().await;
    Ok(())
}

pub async fn set_role(
    settings: &AccountSettings<'_>,
    username: &str,
    role: Role,
) -> anyhow::Result<()> {
    let console = Console::open(settings).await?;
    let changed = console
        .accounts(settings)?
        .set_role(console.actor(), username, role)
        .await
        .map_err(naming(username))?;
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
    console.close().await;
    Ok(())
}

pub async fn set_disabled(
    settings: &AccountSettings<'_>,
    username: &str,
    disabled: bool,
) -> anyhow::Result<()> {
    let console = Console::open(settings).await?;
    let changed = console
        .accounts(settings)?
        .set_disabled(console.actor(), username, disabled)
        .await
        .map_err(naming(username))?;
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
    console.close().await;
    Ok(())
}

/// `aerie user delete`: the account's sessions end and it is anonymised or removed, as
/// `AERIE_ACCOUNT_DELETION` says.
pub async fn delete(settings: &AccountSettings<'_>, username: &str) -> anyhow::Result<()> {
    let console = Console::open(settings).await?;
    console
        .accounts(settings)?
        .delete(console.actor(), username)
        .await
        .map_err(naming(username))?;
    tracing::warn!("account deleted from the command line");
    println!("{username} deleted ({})", settings.rules.deletion.as_str());
    console.close().await;
    Ok(())
}

/// `aerie user set-password`: the operator's password reset. The password comes from
/// [`read_password`], never the command line; every session of the account ends.
pub async fn set_password(
    settings: &AccountSettings<'_>,
    username: &str,
    password: SecretString,
) -> anyhow::Result<()> {
    let console = Console::open(settings).await?;
    let changed = console
        .accounts(settings)?
        .set_password(console.actor(), username, password)
        .await
        .map_err(naming(username))?;
    tracing::warn!(
        subject = changed.user.id,
        "password set from the command line"
    );
    println!(
        "{}: password set; {} session(s) revoked",
        changed.user.username, changed.revoked
    );
    console.close().await;
    Ok(())
}

/// `aerie accounts dormant`: the enabled accounts without a login for `days` days, each
/// disabled through the same service as `aerie user disable` when `disable` (data
/// minimisation: an abandoned account is a takeover waiting for a reused password).
pub async fn dormant(
    settings: &AccountSettings<'_>,
    days: u32,
    disable: bool,
) -> anyhow::Result<()> {
    let console = Console::open(settings).await?;
    let cutoff = console.clock.now() - i64::from(days) * 24 * 60 * 60 * 1000;
    let dormant = console.store.dormant_accounts(cutoff).await?;
    let accounts = console.accounts(settings)?;
    for (username, last_login, created_at) in &dormant {
        let since = match last_login {
            Some(at) => format!("last login {}", rfc3339(*at)),
            None => format!("never logged in, created {}", rfc3339(*created_at)),
        };
        if disable {
            let changed = accounts
                .set_disabled(console.actor(), username, true)
                .await
                .map_err(naming(username))?;
            println!(
                "{username}: {since}; disabled, {} session(s) revoked",
                changed.revoked
            );
        } else {
            println!("{username}: {since}");
        }
    }
    let verb = if disable { "disabled" } else { "found" };
    println!(
        "{} dormant account(s) {verb} (no login for {days} days)",
        dormant.len()
    );
    console.close().await;
    Ok(())
}

pub async fn revoke_sessions(
    settings: &AccountSettings<'_>,
    target: SessionTarget,
) -> anyhow::Result<()> {
    let console = Console::open(settings).await?;
    let revoked = match target {
        SessionTarget::User(username) => console
            .revoker
            .revoke_all_of(console.actor(), &username)
            .await
            .map_err(|error| match error {
                SessionError::UnknownUser => unknown_user(&username),
                other => other.into(),
            })?,
        SessionTarget::Everyone => console.revoker.revoke_everyone(console.actor()).await?,
    };
    tracing::warn!(revoked, "sessions revoked from the command line");
    println!("{revoked} session(s) revoked");
    console.close().await;
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

/// `aerie user reset-link USERNAME`: prints a single-use reset link (30 minutes) built from
/// `AERIE_APP_URL`; the token is stored only as its hash, and the request is audited.
pub async fn reset_link(settings: &AccountSettings<'_>, username: &str) -> anyhow::Result<()> {
    let console = Console::open(settings).await?;
    let link = console
        .lifecycle(settings)?
        .reset_link_for(console.actor(), username)
        .await
        .map_err(|error| match error {
            LifecycleError::UnknownUser => unknown_user(username),
            other => other.into(),
        })?;
    println!("{link}");
    console.close().await;
    Ok(())
}

/// `aerie mail test --to ADDRESS`: one mail now, and what the relay answered.
pub async fn mail_test(settings: &MailSettings, to: &str) -> anyhow::Result<()> {
    let outcome = crate::mail::send_test(settings, to).await?;
    println!("test mail sent to {to}: {outcome}");
    Ok(())
}
