//! Account administration from the command line (`aerie user ...`, `aerie sessions ...`):
//! how the first administrator comes to exist, since a fresh database has none and no
//! default credentials. Each command opens the configured database, applies the same
//! validation and the same session revocation as the admin API, and closes it.

// What these commands print is the CLI's answer to its operator, not a log line.
#![expect(clippy::print_stdout, reason = "the CLI's output is its interface")]

use anyhow::{Context, bail};
use secrecy::SecretString;

use crate::auth::password::{PasswordHasher, PasswordSettings};
use crate::clock::{Clock, SystemClock};
use crate::domain::{Role, username_key};
use crate::http::error::Error;
use crate::http::users::{Registration, create_account};
use crate::store::{DatabaseSettings, Store, UserRow};

/// Whose sessions to revoke.
pub enum SessionTarget {
    User(String),
    Everyone,
}

async fn open(database: &DatabaseSettings) -> anyhow::Result<Store> {
    let store = Store::connect(database).await?;
    if database.auto_migrate {
        store.migrate().await?;
    }
    Ok(store)
}

async fn find(store: &Store, username: &str) -> anyhow::Result<UserRow> {
    store
        .user_by_username_key(&username_key(username))
        .await?
        .with_context(|| format!("no user named '{username}'"))
}

/// Turns a validation error into a readable message (`password: is too short ...`).
fn describe(error: Error) -> anyhow::Error {
    match error {
        Error::Unprocessable(fields) => {
            let lines: Vec<String> = fields
                .iter()
                .map(|(field, messages)| format!("{field}: {}", messages.join(", ")))
                .collect();
            anyhow::anyhow!("{}", lines.join("; "))
        }
        other => anyhow::anyhow!("{other}"),
    }
}

pub async fn create(
    database: &DatabaseSettings,
    passwords: &PasswordSettings,
    username: String,
    email: String,
    password: SecretString,
    role: Role,
) -> anyhow::Result<()> {
    let store = open(database).await?;
    let hasher = PasswordHasher::new(passwords.hash_concurrency)?;
    let now = SystemClock.now();
    let registration = Registration {
        username: Some(username),
        email: Some(email),
        password: Some(password),
    };
    let user = create_account(&store, &hasher, passwords.min_score, now, registration)
        .await
        .map_err(describe)?;
    if role != Role::User {
        store.set_role(user.id, role.as_str(), now).await?;
    }
    tracing::warn!(
        subject = user.id,
        role = role.as_str(),
        "account created from the command line"
    );
    println!("created {} ({})", user.username, role.as_str());
    store.close().await;
    Ok(())
}

pub async fn set_role(
    database: &DatabaseSettings,
    username: &str,
    role: Role,
) -> anyhow::Result<()> {
    let store = open(database).await?;
    let user = find(&store, username).await?;
    let now = SystemClock.now();
    store.set_role(user.id, role.as_str(), now).await?;
    let revoked = revoke(
        &store,
        store.revoke_user_sessions(user.id, None, now).await?,
    )
    .await?;
    tracing::warn!(
        subject = user.id,
        role = role.as_str(),
        "role changed from the command line"
    );
    println!(
        "{} is now {}; {revoked} session(s) revoked",
        user.username,
        role.as_str()
    );
    store.close().await;
    Ok(())
}

pub async fn set_disabled(
    database: &DatabaseSettings,
    username: &str,
    disabled: bool,
) -> anyhow::Result<()> {
    let store = open(database).await?;
    let user = find(&store, username).await?;
    let now = SystemClock.now();
    store
        .set_disabled(user.id, disabled.then_some(now), now)
        .await?;
    let revoked = revoke(
        &store,
        store.revoke_user_sessions(user.id, None, now).await?,
    )
    .await?;
    let state = if disabled { "disabled" } else { "enabled" };
    tracing::warn!(
        subject = user.id,
        disabled,
        "account disabled flag changed from the command line"
    );
    println!("{} {state}; {revoked} session(s) revoked", user.username);
    store.close().await;
    Ok(())
}

pub async fn revoke_sessions(
    database: &DatabaseSettings,
    target: SessionTarget,
) -> anyhow::Result<()> {
    let store = open(database).await?;
    let now = SystemClock.now();
    let ids = match target {
        SessionTarget::User(username) => {
            let user = find(&store, &username).await?;
            store.revoke_user_sessions(user.id, None, now).await?
        }
        SessionTarget::Everyone => store.revoke_every_session(now).await?,
    };
    let revoked = revoke(&store, ids).await?;
    tracing::warn!(revoked, "sessions revoked from the command line");
    println!("{revoked} session(s) revoked");
    store.close().await;
    Ok(())
}

/// Tells running instances about revoked sessions (PostgreSQL NOTIFY; an SQLite server
/// reloads revocations from the database when it starts). Returns how many there were.
async fn revoke(store: &Store, ids: Vec<String>) -> anyhow::Result<usize> {
    store.notify_revoked(&ids).await?;
    Ok(ids.len())
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
