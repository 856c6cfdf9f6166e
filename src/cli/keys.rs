//! `aerie keys generate | rotate`: the access-token signing key; `aerie keys rotate-audit`:
//! the audit chain's key.

#![expect(clippy::print_stdout, reason = "the CLI's output is its interface")]

use std::path::Path;

use anyhow::Context as _;

use crate::audit::{AuditEvent, AuditKeys, EventType};
use crate::auth::keys::{Keyring, SigningKey, previous_keys_dir};
use crate::clock::{Clock as _, SystemClock};
use crate::config::Config;
use crate::store::Store;

use super::trail::{CommandTrail, operator};

pub async fn rotate(config: &Config) -> anyhow::Result<()> {
    let active = &config.tokens.key_file;
    let now = SystemClock.now();
    let kid = Keyring::rotate_at(active, now)?;
    println!(
        "new active signing key {} (kid {kid}); the previous key keeps verifying from {}",
        active.display(),
        previous_keys_dir(active).display()
    );
    let pruned = Keyring::prune(
        active,
        now,
        Keyring::retention(config.tokens.access_token_ttl),
    )?;
    for kid in &pruned {
        println!("deleted previous key {kid}: every token it signed has expired");
    }
    // The set left behind, which restarting instances compare theirs with
    // (`server::signing_keys`).
    let kids: Vec<String> = Keyring::load(active, false)?
        .public_keys()
        .into_iter()
        .map(|key| key.kid)
        .collect();
    // On the trail like any other security event; the key is already in force, so a
    // failure here is reported, not undone.
    record_key_rotation(config, &kid, &pruned, &kids)
        .await
        .with_context(|| {
            format!("key {kid} is active, but the key_rotated audit event was not recorded")
        })
}

async fn record_key_rotation(
    config: &Config,
    kid: &str,
    pruned: &[String],
    kids: &[String],
) -> anyhow::Result<()> {
    let store = Store::connect(&config.database).await?;
    let recorded = async {
        let trail = CommandTrail::open(&store, &config.audit, &config.alerts)?;
        let mut detail = operator().detail();
        detail.insert("key".into(), "signing".into());
        detail.insert("kid".into(), kid.into());
        detail.insert("pruned".into(), pruned.into());
        detail.insert("kids".into(), kids.into());
        let event = AuditEvent::new(EventType::KeyRotated).detail(detail.into());
        trail.audit.record(event).await?;
        trail.finish().await;
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    recorded
}

/// `aerie keys rotate-audit`: see [`super::args::KeysCommand::RotateAudit`].
pub async fn rotate_audit(config: &Config) -> anyhow::Result<()> {
    let path = &config.audit.key_file;
    // Never generated: a fresh ring could not continue the chain.
    let ring = AuditKeys::load_or_generate(path, false)?;
    let store = Store::connect(&config.database).await?;
    let rotated = async {
        let in_use = store.audit_chain_key_id().await?;
        let current = ring.by_id(&in_use).ok_or_else(|| {
            anyhow::anyhow!(
                "the audit chain is sealed with key {in_use}, which {} does not hold",
                path.display()
            )
        })?;
        // A key added by an interrupted run, not yet in use, is started rather than skipped.
        let next = if current.id() == ring.newest().id() {
            AuditKeys::append_new(path)?
        } else {
            ring.newest().clone()
        };
        let trail = CommandTrail::open(&store, &config.audit, &config.alerts)?;
        let mut detail = operator().detail();
        detail.insert("next_key".into(), next.id().into());
        let event = AuditEvent::new(EventType::AuditKeyRotated).detail(detail.into());
        let row = trail.audit.record(event).await.with_context(|| {
            format!(
                "key {} is in {}, but the chain does not use it yet: run the command again",
                next.id(),
                path.display()
            )
        })?;
        trail.finish().await;
        anyhow::Ok((next.id().to_owned(), row.seq))
    }
    .await;
    store.close().await;
    let (id, seq) = rotated?;
    println!(
        "the audit chain continues under key {id} after seq {seq}; older keys stay in {} to verify their segments",
        path.display()
    );
    Ok(())
}

pub fn generate(out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        anyhow::bail!(
            "{} already exists; refusing to overwrite a key",
            out.display()
        );
    }
    let key = SigningKey::load_or_generate(out, true)?;
    println!("wrote signing key {} (kid {})", out.display(), key.kid());
    Ok(())
}
