//! The `aerie` command line: [`args`] says what each command takes, one module per group of
//! subcommands carries it out, and [`main`] ties them together. `src/main.rs` only calls
//! [`main`].
//!
//! Every command reads the configuration the server would (environment, `aerie.toml`, `.env`
//! in development) and acts on the database and key files directly; the ones that change
//! accounts, roles, sessions or keys record their event on the audit trail ([`trail`]).

mod args;
mod audit;
mod backup;
mod data_keys;
mod db;
mod keys;
mod server;
pub mod trail;
mod users;

use std::process::ExitCode;

use clap::Parser as _;

use self::args::{Cli, Command, KeysCommand, MaintenanceCommand};
use crate::config::Config;

/// Parses the arguments, loads the configuration and runs the command; the exit code is 0 on
/// success, 2 for a configuration error, 3 for a broken audit chain, 1 for anything else.
#[expect(clippy::print_stderr, reason = "the CLI's output is its interface")]
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Doctor { live } = command {
        // Reads the settings itself: a configuration that does not load is a finding.
        return crate::doctor::run(live);
    }
    let config = match Config::load() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("aerie: {error}");
            return ExitCode::from(2);
        }
    };
    crate::telemetry::init(&config.log);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("aerie: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match command {
            Command::Serve => server::serve(config).await,
            Command::Migrate => server::migrate(config).await,
            Command::Maintenance {
                command: MaintenanceCommand::Prune,
            } => server::prune(config).await,
            Command::DevCert { out } => server::dev_cert(&out),
            Command::Keys {
                command: KeysCommand::Generate { out },
            } => keys::generate(&out),
            Command::Keys {
                command: KeysCommand::Rotate,
            } => keys::rotate(&config).await,
            Command::Keys {
                command: KeysCommand::GenerateData { out },
            } => data_keys::generate_data(&out),
            Command::Keys {
                command:
                    KeysCommand::RotateData {
                        resume,
                        retire,
                        batch,
                    },
            } => {
                if retire {
                    data_keys::retire_data(&config).await
                } else {
                    data_keys::rotate_data(&config, !resume, batch).await
                }
            }
            Command::Keys {
                command: KeysCommand::RotateAudit,
            } => keys::rotate_audit(&config).await,
            Command::User { command } => users::user(config, command).await,
            Command::Sessions { command } => users::sessions(config, command).await,
            Command::Accounts { command } => users::accounts(config, command).await,
            Command::Mail { command } => users::mail(config, command).await,
            Command::Audit { command } => audit::run(config, command).await,
            Command::Backup { command } => backup::run(config, command).await,
            Command::Db { command } => db::run(config, command).await,
            Command::Doctor { .. } => Ok(()), // handled above, before the configuration is loaded
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is::<audit::ChainBroken>() => ExitCode::from(3),
        Err(error) => {
            eprintln!("aerie: {error:#}");
            ExitCode::FAILURE
        }
    }
}
