//! `aerie db roles`: the least-privilege roles for PostgreSQL ([`crate::store::RolePlan`]).
//! Prints the SQL; with `--apply`, runs it in one transaction. Passwords come from files
//! and are never printed.

#![expect(clippy::print_stdout, reason = "the CLI's output is its interface")]

use super::args::DbCommand;
use crate::config::Config;
use crate::store::{RolePlan, Store};

pub async fn run(config: Config, command: DbCommand) -> anyhow::Result<()> {
    let DbCommand::Roles {
        owner,
        app,
        owner_password_file,
        app_password_file,
        apply,
    } = command;
    let plan = RolePlan {
        owner,
        app,
        owner_password: owner_password_file.as_deref().map(password).transpose()?,
        app_password: app_password_file.as_deref().map(password).transpose()?,
    };
    let store = Store::connect(&config.database).await?;
    let outcome = roles(&store, &plan, apply).await;
    store.close().await;
    outcome
}

async fn roles(store: &Store, plan: &RolePlan, apply: bool) -> anyhow::Result<()> {
    let statements = store.role_statements(plan).await?;
    if !apply {
        println!(
            "-- the roles for this database; run with --apply, or feed to psql as a superuser"
        );
    }
    for statement in &statements {
        println!("{};", statement.shown);
    }
    if apply {
        store.apply_statements(&statements).await?;
        println!(
            "-- applied: run migrations as {} and the server as {}",
            plan.owner, plan.app
        );
    } else if plan.owner_password.is_none() || plan.app_password.is_none() {
        println!("-- a role without a password file gets none: set one with \\password in psql");
    }
    Ok(())
}

/// A role's password: the file's first line; the file must be private to its owner.
fn password(file: &std::path::Path) -> anyhow::Result<secrecy::SecretString> {
    crate::keyfile::read_secret_line(file).map_err(|e| anyhow::anyhow!("password file {e}"))
}
