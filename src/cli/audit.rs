//! `aerie audit verify | archive | export`: checking and exporting the tamper-evident trail.

#![expect(clippy::print_stdout, reason = "the CLI's output is its interface")]

use std::io::Write as _;
use std::path::Path;

use crate::archiving::{self, Archived};
use crate::audit::alerts::Alert;
use crate::audit::{AuditKeys, Checkpoint, Severity};
use crate::clock::{Clock as _, SystemClock};
use crate::config::Config;
use crate::store::Store;

use super::args::AuditCommand;

/// The chain failed verification (exit code 3; the details are already printed).
#[derive(Debug, thiserror::Error)]
#[error("audit chain verification failed")]
pub struct ChainBroken;

pub async fn run(config: Config, command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify {
            archive: Some(file),
            ..
        } => verify_archive(&config, &file),
        AuditCommand::Verify {
            expect_at_least,
            archive: None,
        } => verify(config, expect_at_least).await,
        AuditCommand::Archive { before, out } => {
            archive(config, before.map(|b| b.timestamp_millis()), &out).await
        }
        AuditCommand::Export { since } => export(config, since.timestamp_millis()).await,
    }
}

async fn verify(config: Config, checkpoint: Option<Checkpoint>) -> anyhow::Result<()> {
    // Never generated here: verifying with a fresh key would only report a forgery.
    let key = AuditKeys::load_or_generate(&config.audit.key_file, false)?;
    let store = Store::connect(&config.database).await?;
    let report = crate::audit::verify(&store, &key, checkpoint.as_ref()).await;
    store.close().await;
    let report = report?;
    match report.broken {
        None => {
            let archived = match report.archived_through {
                0 => String::new(),
                seq => format!(" after the archive through seq {seq}"),
            };
            println!(
                "audit chain intact: {} rows{archived}; head {}:{}",
                report.intact_rows(),
                report.last.seq,
                report.last.mac
            );
            Ok(())
        }
        Some((seq, why)) => {
            println!("audit chain broken at seq {seq}: {why}");
            println!(
                "rows {}..{} verified intact",
                report.archived_through + 1,
                report.last.seq
            );
            let alert = Alert {
                rule: "audit_verification_failed",
                severity: Severity::Critical,
                time: crate::clock::rfc3339(SystemClock.now()),
                message: format!("the audit chain is broken at seq {seq}: {why}"),
                seq: Some(seq),
                subject: None,
                client_ip: None,
            };
            // Logged here; posted synchronously, since the process exits right after.
            tracing::error!(target: "aerie::alert", rule = alert.rule, seq, "ALERT: {}", alert.message);
            if let Some(url) = &config.alerts.webhook {
                crate::audit::webhook::send_now(url, &alert).await;
            }
            Err(ChainBroken.into())
        }
    }
}

fn verify_archive(config: &Config, file: &Path) -> anyhow::Result<()> {
    match archiving::verify_file(&config.audit, file) {
        Ok(checkpoint) => {
            println!(
                "audit archive intact: {} rows, seq {} to {}; checkpoint {}:{}",
                checkpoint.pruned,
                checkpoint.from_seq + 1,
                checkpoint.through_seq,
                checkpoint.through_seq,
                checkpoint.through_mac
            );
            Ok(())
        }
        Err(error) => {
            println!("audit archive broken: {error:#}");
            Err(ChainBroken.into())
        }
    }
}

async fn archive(config: Config, before: Option<i64>, out: &Path) -> anyhow::Result<()> {
    let store = Store::connect(&config.database).await?;
    let archived = archiving::archive(&store, &config.audit, &config.alerts, before, out).await;
    store.close().await;
    match archived? {
        Archived::Nothing => println!("no audit rows old enough to archive; nothing written"),
        Archived::Rows(checkpoint) => println!(
            "archived and pruned {} audit rows (seq {} to {}) into {}",
            checkpoint.pruned,
            checkpoint.from_seq + 1,
            checkpoint.through_seq,
            out.display()
        ),
    }
    Ok(())
}

async fn export(config: Config, since: i64) -> anyhow::Result<()> {
    let store = Store::connect(&config.database).await?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut after = 0;
    loop {
        let rows = store.audit_rows_since(since, after, 1000).await?;
        let Some(last) = rows.last() else { break };
        after = last.seq;
        for row in &rows {
            serde_json::to_writer(&mut out, &crate::audit::export_line(row))?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    store.close().await;
    Ok(())
}
