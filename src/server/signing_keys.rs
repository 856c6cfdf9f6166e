//! At start: does this instance's signing key set agree with the one the other instances
//! publish? Every instance loads its keys from its own files, so a host left with an old key
//! file, a freshly generated key, or a key deleted everywhere else after a leak would
//! otherwise only show as tokens one instance issues and the others refuse (or accept).
//!
//! Where keys are published: `/.well-known/jwks.json` serves each instance's own set, but an
//! instance does not know the others' addresses. The deployment's shared record is the audit
//! chain in the database: a start whose key set the deployment has not published yet records
//! a `signing_keys_published` event (`active` kid, every `kids` it verifies with), and
//! `aerie keys rotate` records the set it leaves in its `key_rotated` event (`kids`). The
//! newest of these is what a start compares with. The check can only refuse or warn; it
//! never adds a key to what an instance trusts, so a forged row could stop a start but not
//! make a foreign key verify (and a row inserted outside the writer breaks the chain, which
//! `aerie audit verify` reports).
//!
//! The rules, for this instance's set M and the newest published set P:
//! 1. M holds P's active key: the tokens the others sign verify here.
//! 2. The others know M's active key (it is in P). After `aerie keys rotate` P is the
//!    rotated set, so the rolling restart with the new files agrees; a key put in place by
//!    hand, unpublished, does not, since the running instances cannot verify it.
//! 3. M holds no key that P lacks other than its active one: a previous key the deployment
//!    removed (pruned, or deleted after a leak) must not verify here.
//!
//! In production a disagreement stops the start, and a start that agrees and brings a set not
//! yet published (the first start, or the first after keys were pruned or deleted) publishes
//! it. In development a disagreement is logged as an error and nothing is published: a
//! development instance (keys generated per data folder) is not a deployment's word on its
//! keys, and leaves the trail as it found it.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::audit::{AuditEvent, AuditLog, EventType};
use crate::auth::keys::PublicKey;
use crate::store::Store;

/// How many of the newest candidate rows are read: older `key_rotated` rows of data keys
/// (or of releases that did not record the set) are skipped.
const CANDIDATES: i64 = 50;

/// A published signing key set: the kid that signs and every kid that verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySet {
    pub active: String,
    pub kids: BTreeSet<String>,
}

impl KeySet {
    /// The set of a keyring's public keys (active first, as [`crate::auth::keys::Keyring`]
    /// lists them).
    pub fn of(keys: &[PublicKey]) -> Option<Self> {
        let active = keys.first()?.kid.clone();
        Some(Self {
            active,
            kids: keys.iter().map(|key| key.kid.clone()).collect(),
        })
    }

    /// The detail of a `signing_keys_published` event.
    pub fn detail(&self) -> Value {
        json!({ "active": self.active, "kids": self.kids.iter().collect::<Vec<_>>() })
    }

    /// The set a row publishes: a `signing_keys_published` event, or a signing key's
    /// `key_rotated` event that records the set it left.
    fn from_row(event_type: &str, detail: &str) -> Option<Self> {
        let detail: Value = serde_json::from_str(detail).ok()?;
        let field = |name: &str| detail.get(name).and_then(Value::as_str);
        let active = if event_type == EventType::SigningKeysPublished.as_str() {
            field("active")?
        } else if field("key") == Some("signing") {
            field("kid")?
        } else {
            return None;
        };
        let kids: BTreeSet<String> = detail
            .get("kids")?
            .as_array()?
            .iter()
            .filter_map(|kid| kid.as_str().map(str::to_owned))
            .collect();
        kids.contains(active).then(|| Self {
            active: active.to_owned(),
            kids,
        })
    }
}

/// The newest set the deployment published, if any (none before the first start, or once
/// `aerie audit archive` pruned every row that held one).
pub async fn published(store: &Store) -> Result<Option<KeySet>, sqlx::Error> {
    let rows = store
        .newest_audit_rows_of(
            EventType::SigningKeysPublished.as_str(),
            EventType::KeyRotated.as_str(),
            CANDIDATES,
        )
        .await?;
    Ok(rows
        .iter()
        .find_map(|row| KeySet::from_row(&row.event_type, &row.detail)))
}

/// Why `mine` disagrees with `published` (rules 1–3 of the module doc), as a sentence for
/// the operator naming the setting to change; `None` when they agree.
pub fn disagreement(mine: &KeySet, published: &KeySet) -> Option<String> {
    let list = |kids: &BTreeSet<String>| kids.iter().cloned().collect::<Vec<_>>().join(", ");
    let fix = "give every instance the same AERIE_SIGNING_KEY_FILE and its `.previous` folder (after `aerie keys rotate`, the new ones); to make this set the deployment's on purpose, run `aerie keys rotate` with it (that publishes the result) and restart every instance";
    if !mine.kids.contains(&published.active) {
        return Some(format!(
            "AERIE_SIGNING_KEY_FILE: this instance's signing keys ({}) lack key {} that the other instances sign access tokens with: their tokens would be refused here; {fix}",
            list(&mine.kids),
            published.active
        ));
    }
    if !published.kids.contains(&mine.active) {
        return Some(format!(
            "AERIE_SIGNING_KEY_FILE: this instance would sign with key {}, which the other instances do not verify with ({}): they would refuse every token it issues; {fix}",
            mine.active,
            list(&published.kids)
        ));
    }
    let removed: BTreeSet<String> = mine
        .kids
        .iter()
        .filter(|kid| **kid != mine.active && !published.kids.contains(*kid))
        .cloned()
        .collect();
    if !removed.is_empty() {
        return Some(format!(
            "AERIE_SIGNING_KEY_FILE: this instance still verifies with key(s) {} that the other instances dropped (pruned, or deleted after a leak): delete them from the `.previous` folder beside the key file; {fix}",
            list(&removed)
        ));
    }
    None
}

/// The start-up check: refuses (production) or logs an error (development) on a
/// disagreement; in production, publishes this instance's set when it agrees and is new.
pub(super) async fn check(
    store: &Store,
    audit: &AuditLog,
    keys: &[PublicKey],
    production: bool,
) -> anyhow::Result<()> {
    let Some(mine) = KeySet::of(keys) else {
        return Ok(());
    };
    let published = published(store)
        .await
        .map_err(|e| anyhow::anyhow!("reading the signing keys the deployment published: {e}"))?;
    if let Some(published) = &published {
        if let Some(problem) = disagreement(&mine, published) {
            if production {
                anyhow::bail!(problem);
            }
            tracing::error!("{problem} (production refuses to start)");
            // Not published: the next instance must compare with the deployment's set.
            return Ok(());
        }
        if *published == mine {
            return Ok(());
        }
    }
    if !production {
        return Ok(());
    }
    audit
        .record(AuditEvent::new(EventType::SigningKeysPublished).detail(mine.detail()))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(active: &str, others: &[&str]) -> KeySet {
        KeySet {
            active: active.to_owned(),
            kids: std::iter::once(active)
                .chain(others.iter().copied())
                .map(str::to_owned)
                .collect(),
        }
    }

    #[test]
    fn the_same_set_agrees_and_a_rolling_restart_after_a_rotation_too() {
        assert_eq!(disagreement(&set("a", &["b"]), &set("a", &["b"])), None);
        // A previous key pruned or deleted here and not yet elsewhere: fewer keys is fine.
        assert_eq!(disagreement(&set("a", &[]), &set("a", &["b"])), None);
        // `aerie keys rotate` published {n, a}: a restart with the rotated files agrees.
        assert_eq!(disagreement(&set("n", &["a"]), &set("n", &["a"])), None);
    }

    #[test]
    fn a_stale_a_foreign_or_a_removed_key_disagrees_naming_the_setting() {
        // The others rotated to n; this host kept the old files.
        let stale = disagreement(&set("a", &["b"]), &set("n", &["a"])).expect("stale");
        assert!(stale.starts_with("AERIE_SIGNING_KEY_FILE: ") && stale.contains("lack key n"));
        // A key nobody else knows put in place by hand, the deployment's kept as previous:
        // the running instances cannot verify what it would sign.
        let foreign = disagreement(&set("x", &["a"]), &set("a", &[])).expect("foreign");
        assert!(foreign.contains("would sign with key x"), "{foreign}");
        // A key of its own only (generated, or another deployment's).
        let own = disagreement(&set("x", &[]), &set("a", &[])).expect("own");
        assert!(own.contains("lack key a"), "{own}");
        // A key the others deleted after a leak still verifies here.
        let removed = disagreement(&set("a", &["leaked"]), &set("a", &[])).expect("removed");
        assert!(removed.contains("leaked"), "{removed}");
    }

    #[test]
    fn rows_publish_sets_only_when_they_name_a_signing_set() {
        let published = KeySet::from_row(
            "signing_keys_published",
            r#"{"active":"a","kids":["a","b"]}"#,
        );
        assert_eq!(published, Some(set("a", &["b"])));
        let rotated = KeySet::from_row(
            "key_rotated",
            r#"{"key":"signing","kid":"n","kids":["n","a"],"pruned":[]}"#,
        );
        assert_eq!(rotated, Some(set("n", &["a"])));
        assert_eq!(
            KeySet::from_row("key_rotated", r#"{"key":"data","kid":"3","kids":["3"]}"#),
            None
        );
        // An older release's rotation did not record the set.
        assert_eq!(
            KeySet::from_row("key_rotated", r#"{"key":"signing","kid":"n"}"#),
            None
        );
    }
}
