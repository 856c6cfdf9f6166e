//! `aerie backup create | verify | restore`: the operator's side of [`crate::backup`]:
//! options, progress on standard error, the result on standard output (`--json` for
//! machines), and each run recorded on the audit trail.

#![expect(clippy::print_stdout, reason = "the CLI's output is its interface")]

use std::io::{IsTerminal as _, Write as _};
use std::path::Path;

use serde_json::{Map, Value, json};

use super::args::{BackupCommand, OpeningArgs};
use super::audit::ChainBroken;
use super::trail::{CommandTrail, operator};
use crate::audit::{AuditEvent, AuditKeys, EventType};
use crate::backup::{self, Manifest, Opening, Progress, Sealing};
use crate::config::Config;
use crate::store::Store;

pub async fn run(config: Config, command: BackupCommand) -> anyhow::Result<()> {
    match command {
        BackupCommand::Create { out, sealing, json } => {
            let sealing = Sealing::from_options(
                sealing.recipient.as_deref(),
                sealing.passphrase_file.as_deref(),
            )?;
            create(&config, &sealing, &out, json).await
        }
        BackupCommand::Verify {
            file,
            opening,
            json,
        } => verify(&config, &opening_of(&opening)?, &file, json).await,
        BackupCommand::Restore {
            file,
            opening,
            json,
        } => restore(&config, &opening_of(&opening)?, &file, json).await,
    }
}

fn opening_of(args: &OpeningArgs) -> anyhow::Result<Opening> {
    Opening::from_options(args.identity.as_deref(), args.passphrase_file.as_deref())
}

async fn create(config: &Config, sealing: &Sealing, out: &Path, json: bool) -> anyhow::Result<()> {
    let store = Store::connect(&config.database).await?;
    let made = backup::create(&store, sealing, out, &mut Lines::new()).await;
    let outcome = match made {
        Ok(manifest) => {
            let mut detail = describe(&manifest, out);
            detail.insert("encryption".into(), sealing.kind().into());
            record(config, &store, EventType::BackupCreated, detail).await?;
            show(json, &manifest, out, "backup written");
            Ok(())
        }
        Err(error) => Err(error),
    };
    store.close().await;
    outcome
}

async fn verify(config: &Config, opening: &Opening, file: &Path, json: bool) -> anyhow::Result<()> {
    let checked = backup::verify(opening, file, &mut Lines::new()).await;
    let store = Store::connect(&config.database).await?;
    let recorded = match &checked {
        Ok(manifest) => {
            show(json, manifest, file, "backup intact");
            let detail = describe(manifest, file);
            record(config, &store, EventType::BackupVerified, detail).await
        }
        Err(error) => {
            if json {
                println!(
                    "{}",
                    json!({"intact": false, "file": file.display().to_string(), "error": format!("{error:#}")})
                );
            }
            let mut detail = Map::new();
            detail.insert("file".into(), file.display().to_string().into());
            detail.insert("error".into(), format!("{error:#}").into());
            record(config, &store, EventType::BackupVerificationFailed, detail).await
        }
    };
    store.close().await;
    recorded?;
    checked.map(drop)
}

async fn restore(
    config: &Config,
    opening: &Opening,
    file: &Path,
    json: bool,
) -> anyhow::Result<()> {
    // Loaded first: without the deployment's audit key the restored trail cannot be
    // checked, and it is better to stop before writing anything.
    let key = AuditKeys::load_or_generate(&config.audit.key_file, false).map_err(|error| {
        anyhow::anyhow!("{error}: a restore verifies the restored audit trail with the deployment's audit key (AERIE_AUDIT_KEY_FILE)")
    })?;
    let store = Store::connect(&config.database).await?;
    let outcome = restore_into(config, &store, &key, opening, file, json).await;
    store.close().await;
    outcome
}

async fn restore_into(
    config: &Config,
    store: &Store,
    key: &AuditKeys,
    opening: &Opening,
    file: &Path,
    json: bool,
) -> anyhow::Result<()> {
    let manifest = backup::restore(store, opening, file, &mut Lines::new()).await?;
    let report = crate::audit::verify(store, key, None).await?;
    let mut detail = describe(&manifest, file);
    detail.insert("into".into(), store.engine().into());
    detail.insert("chainIntact".into(), report.broken.is_none().into());
    record(config, store, EventType::BackupRestored, detail).await?;
    let chain = match &report.broken {
        None => {
            json!({"intact": true, "rows": report.intact_rows(), "head": format!("{}:{}", report.last.seq, report.last.mac)})
        }
        Some((seq, why)) => json!({"intact": false, "brokenAt": seq, "why": why.to_string()}),
    };
    if json {
        let mut out = manifest_json(&manifest, file);
        out.insert("into".into(), store.engine().into());
        out.insert("auditChain".into(), chain);
        println!("{}", Value::Object(out));
    } else {
        show(false, &manifest, file, "backup restored");
        match &report.broken {
            None => println!(
                "audit chain intact: {} rows; head {}:{}",
                report.intact_rows(),
                report.last.seq,
                report.last.mac
            ),
            Some((seq, why)) => println!("audit chain broken at seq {seq}: {why}"),
        }
    }
    match report.broken {
        None => Ok(()),
        Some(_) => Err(ChainBroken.into()),
    }
}

/// The event detail: which backup, and what it held.
fn describe(manifest: &Manifest, file: &Path) -> Map<String, Value> {
    let mut detail = Map::new();
    detail.insert("file".into(), file.display().to_string().into());
    detail.insert("engine".into(), manifest.header.engine.clone().into());
    detail.insert(
        "schemaVersion".into(),
        manifest.header.schema_version.into(),
    );
    detail.insert(
        "createdAt".into(),
        manifest.header.created_at.clone().into(),
    );
    detail.insert("rows".into(), manifest.rows.into());
    detail.insert("sha256".into(), manifest.sha256.clone().into());
    detail
}

fn manifest_json(manifest: &Manifest, file: &Path) -> Map<String, Value> {
    let mut out = match serde_json::to_value(manifest) {
        Ok(Value::Object(object)) => object,
        _ => Map::new(),
    };
    out.insert("file".into(), file.display().to_string().into());
    out
}

fn show(json: bool, manifest: &Manifest, file: &Path, what: &str) {
    if json {
        let mut out = manifest_json(manifest, file);
        out.insert("intact".into(), true.into());
        println!("{}", Value::Object(out));
        return;
    }
    let h = &manifest.header;
    println!(
        "{what}: {} ({} backup of {}, schema version {}): {} rows in {} tables, sha256 {}",
        file.display(),
        h.engine,
        h.created_at,
        h.schema_version,
        manifest.rows,
        manifest.tables.len(),
        manifest.sha256
    );
}

async fn record(
    config: &Config,
    store: &Store,
    kind: EventType,
    detail: Map<String, Value>,
) -> anyhow::Result<()> {
    let trail = CommandTrail::open(store, &config.audit, &config.alerts)?;
    let mut full = operator().detail();
    full.extend(detail);
    trail
        .audit
        .record(AuditEvent::new(kind).detail(full.into()))
        .await?;
    trail.finish().await;
    Ok(())
}

/// Progress on standard error: one line redrawn per table on a terminal, a line per
/// finished table otherwise (logs and pipes get no carriage returns).
struct Lines {
    terminal: bool,
}

impl Lines {
    fn new() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
        }
    }
}

impl Progress for Lines {
    fn rows(&mut self, table: &str, rows: u64, done: bool) {
        let mut err = std::io::stderr().lock();
        let _ = match (self.terminal, done) {
            (true, false) => write!(err, "\r  {table}: {rows} rows…"),
            (true, true) => writeln!(err, "\r  {table}: {rows} rows   "),
            (false, true) => writeln!(err, "  {table}: {rows} rows"),
            (false, false) => Ok(()),
        };
    }
}
