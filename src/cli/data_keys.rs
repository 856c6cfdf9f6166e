//! `aerie keys generate-data | rotate-data [--resume | --retire]`: the field-encryption keys
//! (`crate::field_keys`).
//!
//! Guards against a key that can never be replaced: a data key suspected of having leaked is
//! rotated while the servers keep serving. The new key is appended to the file first (so a
//! server meeting a value sealed under it can load it), then every sealed value is re-sealed
//! in batches of short statements; an interrupted pass is finished by `--resume`, which skips
//! what is already under the new key. Old keys stay in the file, still opening, until
//! `--retire` finds that no stored value uses them. Each step is on the audit trail.

#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the CLI's output is its interface"
)]

use std::io::{IsTerminal as _, Write as _};
use std::path::Path;

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::audit::{AuditEvent, EventType};
use crate::config::Config;
use crate::field_keys::{Field, KeyFile};
use crate::store::{KeyUse, SEALED_FIELDS, SHORT_LIVED_SEALED_FIELDS, Store};

use super::trail::{CommandTrail, operator};

pub fn generate_data(out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        anyhow::bail!(
            "{} already exists; refusing to overwrite keys that may seal data",
            out.display()
        );
    }
    KeyFile::fresh()
        .create(out)
        .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "wrote field-encryption keys {} (data key 1 and the index key); set AERIE_DATA_KEYS_FILE to it and keep a copy with the backups' keys",
        out.display()
    );
    Ok(())
}

/// Adds a new active key (unless `resuming`) and re-seals every sealed value under it.
pub async fn rotate_data(config: &Config, new_key: bool, batch: i64) -> anyhow::Result<()> {
    let path = &config.database.field_keys.file;
    let mut file = KeyFile::read(path)
        .map_err(|problem| anyhow::anyhow!("AERIE_DATA_KEYS_FILE {}: {problem}", path.display()))?;
    if new_key {
        let kid = file.add_key();
        file.replace(path)
            .with_context(|| format!("writing {}", path.display()))?;
        println!(
            "data key {kid} added to {} and now seals new values",
            path.display()
        );
        let detail = json!({ "key": "data", "kid": kid, "keys": file.key_ids() });
        record(config, EventType::KeyRotated, detail)
            .await
            .with_context(|| {
                format!("data key {kid} is active, but the key_rotated event was not recorded")
            })?;
    }
    // Connected after the file changed, so this keyring seals under the new key.
    let store = Store::connect(&config.database).await?;
    let result = reseal_all(&store, batch).await;
    store.close().await;
    let (active, uses) = result?;
    let left: i64 = uses.iter().map(|used| used.not_under(active)).sum();
    let detail =
        json!({ "key": "data", "active": active, "left": left, "fields": uses_detail(&uses) });
    record(config, EventType::DataResealed, detail).await?;
    println!("{}", pass_report(active, left, &file.key_ids()));
    Ok(())
}

/// What a finished pass tells the operator: how many values are left under older keys
/// (written by a server that had not yet seen the new key: a race the pass cannot close),
/// or else which of the file's keys (`held`) nothing uses any more.
fn pass_report(active: u32, left: i64, held: &[u32]) -> String {
    if left > 0 {
        return format!(
            "{left} value(s) still sealed under older keys (written by a server that had not yet seen key {active}): run `aerie keys rotate-data --resume`"
        );
    }
    let old: Vec<u32> = held.iter().copied().filter(|kid| *kid != active).collect();
    if old.is_empty() {
        format!("every value is sealed under key {active}")
    } else {
        format!(
            "every value is sealed under key {active}; no value uses key(s) {old:?}: `aerie keys rotate-data --retire` drops them"
        )
    }
}

/// Re-seals every field, then counts what each key seals.
async fn reseal_all(store: &Store, batch: i64) -> anyhow::Result<(u32, Vec<KeyUse>)> {
    let sealed = store.finish_field_encryption().await?;
    if sealed > 0 {
        println!("sealed {sealed} row(s) an upgrade had left in clear");
    }
    let active = store.field_keys().active_key_id();
    let mut uses = Vec::new();
    for field in SEALED_FIELDS {
        reseal_field(store, field, batch).await?;
        uses.push(store.key_use(field).await?);
    }
    Ok((active, uses))
}

async fn reseal_field(store: &Store, field: Field, batch: i64) -> anyhow::Result<()> {
    let total = store.sealed_rows(field).await?;
    let mut progress = Progress::new(field.name(), total);
    let mut after = 0;
    loop {
        let done = store
            .reseal_batch(field, after, batch)
            .await
            .with_context(|| {
                format!(
                    "re-sealing {} (resume with `aerie keys rotate-data --resume`)",
                    field.name()
                )
            })?;
        progress.advance(done.scanned, done.resealed);
        match done.next {
            Some(next) => after = next,
            None => break,
        }
    }
    progress.finish();
    Ok(())
}

/// Drops every key but the active one, if no stored value uses them.
pub async fn retire_data(config: &Config) -> anyhow::Result<()> {
    let path = &config.database.field_keys.file;
    let mut file = KeyFile::read(path)
        .map_err(|problem| anyhow::anyhow!("AERIE_DATA_KEYS_FILE {}: {problem}", path.display()))?;
    let active = file.active();
    let store = Store::connect(&config.database).await?;
    let mut uses = Vec::new();
    for field in SEALED_FIELDS.into_iter().chain(SHORT_LIVED_SEALED_FIELDS) {
        match store.key_use(field).await {
            Ok(used) => uses.push(used),
            Err(error) => {
                store.close().await;
                return Err(error.into());
            }
        }
    }
    store.close().await;
    let left: i64 = uses.iter().map(|used| used.not_under(active)).sum();
    if left > 0 {
        for used in &uses {
            eprintln!("{}: {}", used.field.name(), describe(used));
        }
        anyhow::bail!(
            "{left} value(s) are not sealed under the active key {active}; nothing was retired: run `aerie keys rotate-data --resume` first (an email change waiting for confirmation is not re-sealed: wait for its link to expire, 30 minutes at most)"
        );
    }
    let retired = file.retire_old_keys();
    if retired.is_empty() {
        println!(
            "only key {active} is in {}: nothing to retire",
            path.display()
        );
        return Ok(());
    }
    file.replace(path)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("retired data key(s) {retired:?}; key {active} seals every value");
    let detail = json!({ "key": "data", "active": active, "retired": retired });
    record(config, EventType::KeyRetired, detail)
        .await
        .context("the keys are retired, but the key_retired event was not recorded")
}

fn describe(used: &KeyUse) -> String {
    let mut parts: Vec<String> = used
        .by_key
        .iter()
        .map(|(kid, count)| format!("key {kid}: {count}"))
        .collect();
    if used.other > 0 {
        parts.push(format!("unknown key or not sealed: {}", used.other));
    }
    parts.join(", ")
}

fn uses_detail(uses: &[KeyUse]) -> Value {
    uses.iter()
        .map(|used| {
            let by_key: serde_json::Map<String, Value> = used
                .by_key
                .iter()
                .map(|(kid, count)| (kid.to_string(), json!(count)))
                .collect();
            (
                used.field.name().to_owned(),
                json!({ "byKey": by_key, "other": used.other }),
            )
        })
        .collect::<serde_json::Map<String, Value>>()
        .into()
}

async fn record(config: &Config, event: EventType, mut detail: Value) -> anyhow::Result<()> {
    let store = Store::connect(&config.database).await?;
    let recorded = async {
        let trail = CommandTrail::open(&store, &config.audit, &config.alerts)?;
        if let Some(detail) = detail.as_object_mut() {
            detail.extend(operator().detail());
        }
        trail
            .audit
            .record(AuditEvent::new(event).detail(detail))
            .await?;
        trail.finish().await;
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    recorded
}

/// Progress of one field's pass: a line rewritten in place on a terminal, a plain line every
/// few thousand rows (and at the end) when the output is a log.
struct Progress {
    field: &'static str,
    total: i64,
    scanned: u64,
    resealed: u64,
    reported: u64,
    terminal: bool,
}

impl Progress {
    const LOG_EVERY: u64 = 10_000;

    fn new(field: &'static str, total: i64) -> Self {
        Self {
            field,
            total,
            scanned: 0,
            resealed: 0,
            reported: 0,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn line(&self) -> String {
        format!(
            "{}: {}/{} rows read, {} re-sealed",
            self.field, self.scanned, self.total, self.resealed
        )
    }

    fn advance(&mut self, scanned: u64, resealed: u64) {
        self.scanned += scanned;
        self.resealed += resealed;
        if self.terminal {
            eprint!("\r{}", self.line());
            let _ = std::io::stderr().flush();
        } else if self.scanned - self.reported >= Self::LOG_EVERY {
            self.reported = self.scanned;
            eprintln!("{}", self.line());
        }
    }

    fn finish(&self) {
        if self.terminal {
            eprintln!();
        }
        println!("{}", self.line());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that had not yet seen the new key may seal a value during the pass; the
    /// report must say so rather than claim every value moved (retiring then would lose it).
    #[test]
    fn the_report_names_values_left_under_older_keys_before_retirable_ones() {
        let left = pass_report(2, 3, &[1, 2]);
        assert!(
            left.starts_with("3 value(s) still sealed under older keys")
                && left.contains("--resume"),
            "{left}"
        );
        let retirable = pass_report(2, 0, &[1, 2]);
        assert!(
            retirable.starts_with("every value is sealed under key 2; no value uses key(s) [1]"),
            "{retirable}"
        );
        assert_eq!(pass_report(2, 0, &[2]), "every value is sealed under key 2");
    }
}
