//! `aerie user …`, `aerie accounts dormant` and `aerie sessions revoke`: account administration from a shell, through
//! the same services as the admin API ([`crate::accounts`]), each change audited.

use crate::accounts::{self, AccountSettings, SessionTarget};
use crate::config::Config;

use super::args::{AccountsCommand, MailCommand, SessionsCommand, UserCommand};

/// The sections the account and session commands need.
fn account_settings(config: &Config) -> AccountSettings<'_> {
    AccountSettings {
        database: &config.database,
        passwords: &config.passwords,
        rules: &config.accounts,
        audit: &config.audit,
        alerts: &config.alerts,
        mail: &config.mail,
    }
}

pub async fn user(config: Config, command: UserCommand) -> anyhow::Result<()> {
    let settings = account_settings(&config);
    match command {
        UserCommand::Create {
            username,
            email,
            role,
        } => {
            let password = accounts::read_password()?;
            accounts::create(&settings, username, email, password, role).await
        }
        UserCommand::SetRole { username, role } => {
            accounts::set_role(&settings, &username, role).await
        }
        UserCommand::SetPassword { username } => {
            let password = accounts::read_password()?;
            accounts::set_password(&settings, &username, password).await
        }
        UserCommand::Disable { username } => {
            accounts::set_disabled(&settings, &username, true).await
        }
        UserCommand::Enable { username } => {
            accounts::set_disabled(&settings, &username, false).await
        }
        UserCommand::Delete { username } => accounts::delete(&settings, &username).await,
        UserCommand::ResetLink { username } => accounts::reset_link(&settings, &username).await,
    }
}

pub async fn sessions(config: Config, command: SessionsCommand) -> anyhow::Result<()> {
    let SessionsCommand::Revoke { user, all: _ } = command;
    let target = user.map_or(SessionTarget::Everyone, SessionTarget::User);
    accounts::revoke_sessions(&account_settings(&config), target).await
}

pub async fn accounts(config: Config, command: AccountsCommand) -> anyhow::Result<()> {
    let AccountsCommand::Dormant { days, disable } = command;
    accounts::dormant(&account_settings(&config), days, disable).await
}

pub async fn mail(config: Config, command: MailCommand) -> anyhow::Result<()> {
    let MailCommand::Test { to } = command;
    accounts::mail_test(&config.mail, &to).await
}
