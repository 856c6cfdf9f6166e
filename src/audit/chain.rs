//! Sealing and verifying the hash chain. Each row's MAC is an HMAC-SHA256 over a canonical
//! encoding of all its fields, its own sequence number and the previous row's MAC included.
//! So editing a row breaks its MAC; deleting, inserting or reordering rows breaks the
//! sequence or the link to the previous MAC; cutting off the tail is caught by comparing
//! with the chain head and with checkpoints that went to the log.

use hmac::Mac;

use super::event::{AuditEvent, EventType};
use super::key::{AuditKey, AuditKeys};
use crate::clock::UnixMillis;
use crate::store::{ArchiveCheckpoint, AuditRow, ChainHead, Store};

/// Bumped if the canonical encoding ever changes, so old and new rows cannot be confused.
const FORMAT: &str = "aerie-audit-v1";

/// The bytes the MAC covers: a JSON array of every field but the MAC, in a fixed order.
/// Serializing an array of scalars and strings is deterministic, and the detail is sealed as
/// the exact text stored, never re-serialized.
fn canonical(row: &AuditRow) -> Vec<u8> {
    serde_json::json!([
        FORMAT,
        row.seq,
        row.at,
        row.event_type,
        row.severity,
        row.actor_id,
        row.subject_id,
        row.session_id,
        row.client_ip,
        row.user_agent,
        row.request_id,
        row.detail,
        row.prev_mac,
    ])
    .to_string()
    .into_bytes()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The row that follows `head`, sealed.
pub fn seal(key: &AuditKey, head: &ChainHead, at: UnixMillis, event: &AuditEvent) -> AuditRow {
    let mut row = AuditRow {
        seq: head.seq + 1,
        at,
        event_type: event.kind.as_str().to_owned(),
        severity: event.kind.severity().as_str().to_owned(),
        actor_id: event.actor,
        subject_id: event.subject,
        session_id: event.session.clone(),
        client_ip: event.client_ip.clone(),
        user_agent: event.user_agent.clone(),
        request_id: event.request_id.clone(),
        detail: event.detail_text(),
        prev_mac: head.mac.clone(),
        mac: String::new(),
    };
    let mut mac = key.mac();
    mac.update(&canonical(&row));
    row.mac = hex(&mac.finalize().into_bytes());
    row
}

/// The archive checkpoint's format tag: bumped if its encoding ever changes, and distinct
/// from [`FORMAT`], so a checkpoint's MAC can never pass for a row's.
const ARCHIVE_FORMAT: &str = "aerie-audit-archive-v1";

fn canonical_checkpoint(c: &ArchiveCheckpoint) -> Vec<u8> {
    serde_json::json!([
        ARCHIVE_FORMAT,
        c.through_seq,
        c.through_mac,
        c.from_seq,
        c.from_mac,
        c.pruned,
        c.at,
    ])
    .to_string()
    .into_bytes()
}

/// The checkpoint for archiving the rows after `from` through `through`, sealed.
pub fn seal_checkpoint(
    key: &AuditKey,
    from: &ChainHead,
    through: &ChainHead,
    at: UnixMillis,
) -> ArchiveCheckpoint {
    let mut checkpoint = ArchiveCheckpoint {
        through_seq: through.seq,
        through_mac: through.mac.clone(),
        from_seq: from.seq,
        from_mac: from.mac.clone(),
        pruned: through.seq - from.seq,
        at,
        mac: String::new(),
    };
    let mut mac = key.mac();
    mac.update(&canonical_checkpoint(&checkpoint));
    checkpoint.mac = hex(&mac.finalize().into_bytes());
    checkpoint
}

/// Whether the checkpoint is sealed by `key` (compared in constant time).
pub fn checkpoint_matches(key: &AuditKey, checkpoint: &ArchiveCheckpoint) -> bool {
    let Some(claimed) = unhex(&checkpoint.mac) else {
        return false;
    };
    let mut mac = key.mac();
    mac.update(&canonical_checkpoint(checkpoint));
    mac.verify_slice(&claimed).is_ok()
}

/// Whether `row.mac` is the MAC of its content (compared in constant time).
fn mac_matches(key: &AuditKey, row: &AuditRow) -> bool {
    let Some(claimed) = unhex(&row.mac) else {
        return false;
    };
    let mut mac = key.mac();
    mac.update(&canonical(row));
    mac.verify_slice(&claimed).is_ok()
}

/// Why the chain is broken at a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Break {
    /// The row with this number is missing (deleted), or another number stands in its place
    /// (inserted or renumbered).
    Missing { found: Option<i64> },
    /// The row does not point at its predecessor's MAC (a row before it was removed or
    /// replaced, or rows were swapped).
    Unlinked,
    /// The row's content does not match its MAC (edited, or forged without the key).
    Altered,
    /// The chain ends before the head or a checkpoint says it should (tail cut off).
    Truncated { expected_at_least: i64 },
    /// The row a checkpoint names carries a different MAC (rewritten since).
    CheckpointMismatch,
    /// The archive checkpoint the walk starts from is not sealed by the key (forged or
    /// edited to hide pruned rows).
    ArchiveCheckpointForged,
    /// The row starts a segment under a key the key file does not hold.
    UnknownKey { id: String },
    /// The tail is sealed by an older key than the newest in the key file: a rotation was
    /// not finished, or someone holding an older key extended the chain.
    StaleKey,
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Break::Missing { found: Some(seq) } => {
                write!(f, "row missing (found seq {seq} in its place)")
            }
            Break::Missing { found: None } => write!(f, "row missing"),
            Break::Unlinked => write!(f, "does not link to the previous row's MAC"),
            Break::Altered => write!(f, "content does not match its MAC"),
            Break::Truncated { expected_at_least } => {
                write!(
                    f,
                    "chain ends early: expected rows up to seq {expected_at_least}"
                )
            }
            Break::CheckpointMismatch => write!(f, "MAC differs from the checkpoint"),
            Break::ArchiveCheckpointForged => {
                write!(f, "the archive checkpoint is not sealed by the audit key")
            }
            Break::UnknownKey { id } => write!(
                f,
                "the chain continues under audit key {id}, which AERIE_AUDIT_KEY_FILE does not hold"
            ),
            Break::StaleKey => write!(
                f,
                "the tail is not sealed by the newest key in AERIE_AUDIT_KEY_FILE (finish the rotation with `aerie keys rotate-audit`; otherwise an older key extended the chain)"
            ),
        }
    }
}

/// A known-good point of the chain, from a checkpoint log line: `SEQ:MAC`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: i64,
    pub mac: String,
}

impl std::str::FromStr for Checkpoint {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (seq, mac) = text
            .split_once(':')
            .ok_or_else(|| "expected SEQ:MAC".to_owned())?;
        let seq = seq
            .parse::<i64>()
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| format!("'{seq}' is not a positive sequence number"))?;
        if mac.len() != 64 || unhex(mac).is_none() {
            return Err("the MAC must be 64 hex digits".into());
        }
        Ok(Self {
            seq,
            mac: mac.to_ascii_lowercase(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// The last row archived and pruned (`aerie audit archive`): the walk starts after it,
    /// from its sealed checkpoint. `0` when nothing was archived.
    pub archived_through: i64,
    /// The last intact row (`0` and `""` for an empty chain).
    pub last: ChainHead,
    /// The first broken sequence number and why, if any.
    pub broken: Option<(i64, Break)>,
}

impl Verification {
    /// Rows checked and found intact, in order, before any break (after the archived ones).
    pub fn intact_rows(&self) -> i64 {
        self.last.seq - self.archived_through
    }
}

const PAGE: i64 = 1000;

/// Why `row` cannot follow `last` in the chain under `key`, if it cannot.
fn link_break(key: &AuditKey, last: &ChainHead, row: &AuditRow) -> Option<Break> {
    if row.seq != last.seq + 1 {
        Some(Break::Missing {
            found: Some(row.seq),
        })
    } else if !mac_matches(key, row) {
        Some(Break::Altered)
    } else if row.prev_mac != last.mac {
        Some(Break::Unlinked)
    } else {
        None
    }
}

/// The key a row names for the rows after it, when it starts a new segment
/// (`audit_key_rotated`, `{"next_key": ID}`).
pub fn next_key(row: &AuditRow) -> Option<String> {
    if row.event_type != EventType::AuditKeyRotated.as_str() {
        return None;
    }
    let detail: serde_json::Value = serde_json::from_str(&row.detail).ok()?;
    detail.get("next_key")?.as_str().map(str::to_owned)
}

/// Whether `row`, the chain's newest, is sealed as the head's `key_id` says: by that key, or,
/// when the row is the rotation that named it, by a key of the ring.
pub fn seals(keys: &AuditKeys, key_id: &str, row: &AuditRow) -> bool {
    if next_key(row).as_deref() == Some(key_id) {
        return keys.iter().any(|key| mac_matches(key, row));
    }
    keys.by_id(key_id).is_some_and(|key| mac_matches(key, row))
}

/// A walk along the chain that knows which key seals the next row: the one in force where
/// it starts, then the one each `audit_key_rotated` row names (that row itself sealed by the
/// key before, so only a holder of the current key can move the chain to another).
pub(super) struct Segments<'k> {
    keys: &'k AuditKeys,
    key: &'k AuditKey,
}

impl<'k> Segments<'k> {
    /// From the chain's first row, under the first key.
    pub(super) fn from_start(keys: &'k AuditKeys) -> Self {
        Self {
            keys,
            key: keys.first(),
        }
    }

    /// After an archive checkpoint, under the key that sealed it (the one in force after its
    /// last row); `None` when no key did.
    pub(super) fn after_checkpoint(
        keys: &'k AuditKeys,
        checkpoint: &ArchiveCheckpoint,
    ) -> Option<Self> {
        let key = keys.iter().find(|k| checkpoint_matches(k, checkpoint))?;
        Some(Self { keys, key })
    }

    /// From `row`, under whichever key sealed it (an archive file read on its own).
    pub(super) fn from_row(keys: &'k AuditKeys, row: &AuditRow) -> Option<Self> {
        let key = keys.iter().find(|k| mac_matches(k, row))?;
        Some(Self { keys, key })
    }

    /// The key in force for the next row.
    pub(super) fn key(&self) -> &'k AuditKey {
        self.key
    }

    /// Why `row` cannot follow `last`, if it cannot; otherwise steps past it, into the next
    /// segment when it starts one.
    pub(super) fn step(&mut self, last: &ChainHead, row: &AuditRow) -> Option<Break> {
        if let Some(why) = link_break(self.key, last, row) {
            return Some(why);
        }
        if let Some(id) = next_key(row) {
            match self.keys.by_id(&id) {
                Some(key) => self.key = key,
                None => return Some(Break::UnknownKey { id }),
            }
        }
        None
    }

    /// Whether the walk has reached the newest key's segment.
    pub(super) fn at_newest(&self) -> bool {
        self.key.id() == self.keys.newest().id()
    }
}

/// Walks the chain in order, a page at a time, from the newest archive checkpoint (the
/// start when nothing was archived), and stops at the first broken row. Then checks the tail
/// against the chain head and `checkpoint`, if given.
pub async fn verify(
    store: &Store,
    keys: &AuditKeys,
    checkpoint: Option<&Checkpoint>,
) -> Result<Verification, sqlx::Error> {
    let archived = store.latest_archive_checkpoint().await?;
    let start = ChainHead {
        seq: archived.as_ref().map_or(0, |c| c.through_seq),
        mac: archived
            .as_ref()
            .map_or_else(String::new, |c| c.through_mac.clone()),
    };
    let archived_through = start.seq;
    let segments = match &archived {
        None => Some(Segments::from_start(keys)),
        Some(c) => Segments::after_checkpoint(keys, c),
    };
    let Some(mut segments) = segments else {
        return Ok(Verification {
            archived_through,
            broken: Some((start.seq, Break::ArchiveCheckpointForged)),
            last: start,
        });
    };
    let mut last = start;
    loop {
        let rows = store.audit_rows_after(last.seq, PAGE).await?;
        let page_len = rows.len();
        for row in rows {
            let expected = last.seq + 1;
            let broken = segments.step(&last, &row).or_else(|| {
                checkpoint
                    .filter(|c| c.seq == row.seq && c.mac != row.mac)
                    .map(|_| Break::CheckpointMismatch)
            });
            if let Some(why) = broken {
                return Ok(Verification {
                    archived_through,
                    last,
                    broken: Some((expected, why)),
                });
            }
            last = ChainHead {
                seq: row.seq,
                mac: row.mac,
            };
        }
        if usize::try_from(PAGE).is_ok_and(|page| page_len < page) {
            break;
        }
    }
    let head = store.audit_chain_head().await?;
    // A checkpoint among the rows walked is at most `last.seq`, so only one beyond them
    // (rows cut off with the head rewound) moves the expectation.
    let expected_at_least = checkpoint.map_or(head.seq, |c| head.seq.max(c.seq));
    let broken = if expected_at_least > last.seq {
        Some((last.seq + 1, Break::Truncated { expected_at_least }))
    } else if head.seq == last.seq && head.mac != last.mac {
        // The head names the last row but with another MAC: the tail was rewritten.
        Some((last.seq, Break::Altered))
    } else if !segments.at_newest() {
        Some((last.seq, Break::StaleKey))
    } else {
        None
    };
    Ok(Verification {
        archived_through,
        last,
        broken,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::EventType;

    #[test]
    fn any_change_to_a_sealed_field_breaks_its_mac() {
        let key = AuditKey::from_bytes([7; 32]);
        let head = ChainHead {
            seq: 4,
            mac: "ab".repeat(32),
        };
        let row = seal(
            &key,
            &head,
            1_000,
            &AuditEvent::new(EventType::LoginFailed).subject(3),
        );
        assert_eq!(row.seq, 5);
        assert!(mac_matches(&key, &row));
        let edits: [fn(&mut AuditRow); 5] = [
            |r| r.seq += 1,
            |r| r.at += 1,
            |r| r.subject_id = Some(4),
            |r| r.detail = "{\"reason\":\"x\"}".into(),
            |r| r.prev_mac = "cd".repeat(32),
        ];
        for edit in edits {
            let mut edited = row.clone();
            edit(&mut edited);
            assert!(!mac_matches(&key, &edited), "{edited:?}");
        }
        assert!(!mac_matches(&AuditKey::from_bytes([8; 32]), &row));
    }

    #[test]
    fn checkpoints_parse_only_as_seq_colon_mac() {
        let mac = "0f".repeat(32);
        assert_eq!(
            format!("12:{mac}").parse::<Checkpoint>(),
            Ok(Checkpoint {
                seq: 12,
                mac: mac.clone()
            })
        );
        // No row 0 or below; a MAC of 64 characters that are not hex, or of hex one byte
        // short, is no MAC.
        let refused = [
            "12".to_owned(),
            format!("0:{mac}"),
            format!("-1:{mac}"),
            format!("x:{mac}"),
            format!("3:{}", "z".repeat(64)),
            format!("3:{}", "0f".repeat(31)),
            "3:zz".to_owned(),
        ];
        for bad in refused {
            assert!(bad.parse::<Checkpoint>().is_err(), "{bad}");
        }
    }
}
