//! The audit trail: who did what, when, from where, kept so that tampering shows.
//!
//! Guards against an intruder (or an insider) covering their tracks: every security event is
//! appended to an append-only table, each row sealed by an HMAC-SHA256 over its content and
//! the previous row's MAC ([`chain`]), with the key outside the database ([`key`]). Appends go
//! through one writer per process ([`writer`]: a bounded queue, group commit) and a row lock
//! on the chain head in the database, so the chain never forks. Events are written before the
//! response is sent: each request waits for its own committed row, and an action whose event
//! could not be stored fails rather than going unrecorded. Checkpoints (latest sequence number and MAC)
//! go to the structured log, off the database, so cutting off the tail shows too.
//!
//! Emitting an event is one line:
//! `state.audit.record(AuditEvent::new(EventType::Logout).actor(id).from_request(&ctx)).await?`

pub mod alerts;
pub mod archive;
pub mod chain;
pub mod event;
pub mod key;
pub mod webhook;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

pub use alerts::AlertSettings;
pub use chain::{Break, Checkpoint, Verification, verify};
pub use event::{AuditEvent, EventType, Severity};
pub use key::{AuditKey, AuditKeys, LiveKeys};
pub use writer::AppendError;

use crate::clock::Clock;
use crate::store::{AuditRow, Store};
use crate::telemetry::untrusted;

/// Where the chain's key lives, and how often its head is checkpointed to the log.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// 32 random bytes that key the audit chain's HMAC; never stored in the database.
    pub key_file: PathBuf,
    /// Generate the audit key when the file is missing (development only).
    pub generate_key: bool,
    /// How often the audit chain head is written to the log as a checkpoint.
    pub checkpoint_interval: Duration,
    /// How long rows stay in the database: `aerie audit archive` moves only older ones out.
    pub retention: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit trail: {0}")]
    Store(#[from] sqlx::Error),
    /// The batch this event was written in failed (the cause is logged once, by the writer).
    #[error("audit trail: the batch append failed: {0}")]
    Batch(Arc<writer::AppendError>),
    /// The writer task is gone (the runtime is shutting down).
    #[error("audit trail: the writer has stopped")]
    WriterStopped,
}

impl AuditError {
    /// Whether the event was not stored because the database is unavailable (down, cut
    /// off, out of disk): the request may be retried later (a 503), unlike a broken key.
    pub fn is_unavailable(&self) -> bool {
        let store = match self {
            Self::Store(error) => Some(error),
            Self::Batch(batch) => match batch.as_ref() {
                writer::AppendError::Store(error) => Some(error),
                writer::AppendError::Key(_) => None,
            },
            Self::WriterStopped => None,
        };
        store.is_some_and(|error| {
            crate::store::is_unavailable(error) || crate::store::is_budget_exceeded(error)
        })
    }
}

/// The audit trail's writer. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    store: Store,
    keys: Arc<LiveKeys>,
    /// The newest key when the log opened: what other keys are derived from
    /// ([`AuditKey::derive`]); after a rotation they move with the next restart.
    derivation: Arc<AuditKey>,
    clock: Arc<dyn Clock>,
    /// The one appender in this process, started on the first event; the database lock
    /// covers other processes.
    writer: writer::Writer,
    alerts: Option<alerts::Alerts>,
}

impl AuditLog {
    /// Opens the trail with the key ring in `key_file` (generated when missing only if
    /// `generate`, i.e. in development).
    pub fn open(
        store: Store,
        key_file: &Path,
        generate: bool,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, key::KeyError> {
        let ring = AuditKeys::load_or_generate(key_file, generate)?;
        let derivation = Arc::new(ring.newest().clone());
        Ok(Self {
            store,
            keys: Arc::new(LiveKeys::new(key_file.to_owned(), ring)),
            derivation,
            clock,
            writer: writer::Writer::default(),
            alerts: None,
        })
    }

    /// Runs the alert rules on every recorded event.
    pub fn with_alerts(mut self, alerts: alerts::Alerts) -> Self {
        self.alerts = Some(alerts);
        self
    }

    /// Seals and stores `event`, and writes it to the log at its severity. Returns once the
    /// row is committed (with the others of its batch).
    pub async fn record(&self, event: AuditEvent) -> Result<AuditRow, AuditError> {
        let kind = event.kind;
        let sealer = writer::Sealer {
            store: self.store.clone(),
            keys: self.keys.clone(),
            clock: self.clock.clone(),
        };
        let row = self.writer.append(sealer, event).await?;
        log_event(&row);
        count(kind);
        if let Some(alerts) = &self.alerts {
            alerts.observe(&row);
        }
        Ok(row)
    }

    /// Whether this log's keys seal the chain's newest row (true for an empty chain). An
    /// instance started with another key file would otherwise append rows under the wrong
    /// key, and `aerie audit verify` would fail from there on.
    pub async fn keys_seal_the_chain(&self) -> Result<bool, AuditError> {
        let head = self.store.audit_chain_head().await?;
        if head.seq == 0 {
            return Ok(true);
        }
        let key_id = self.store.audit_chain_key_id().await?;
        let newest = self.store.audit_rows_after(head.seq - 1, 1).await?;
        let Some(row) = newest.first() else {
            return Ok(true);
        };
        if self.keys.by_id(&key_id).is_err() {
            return Ok(false);
        }
        Ok(chain::seals(&self.keys.current(), &key_id, row))
    }

    /// The alert rules, when this log runs them.
    pub fn alerts(&self) -> Option<&alerts::Alerts> {
        self.alerts.as_ref()
    }

    /// The key other keys are derived from (device tokens, list cursors, refresh-token
    /// successors): the newest audit key when the log opened.
    pub fn derivation_key(&self) -> &AuditKey {
        &self.derivation
    }

    /// Writes the chain head to the log every `interval` when it moved, and once more when
    /// `stop` turns true. An intruder who cuts rows off the tail and rewinds the head is then
    /// contradicted by a log line already shipped elsewhere
    /// (`aerie audit verify --expect-at-least SEQ:MAC`).
    pub async fn write_checkpoints(self, interval: Duration, mut stop: watch::Receiver<bool>) {
        let mut logged = -1;
        loop {
            let stopping = tokio::select! {
                () = tokio::time::sleep(interval) => false,
                _ = stop.wait_for(|stop| *stop) => true,
            };
            match self.store.audit_chain_head().await {
                Ok(head) if head.seq != logged => {
                    tracing::info!(
                        target: "aerie::audit::checkpoint",
                        seq = head.seq,
                        mac = %head.mac,
                        checkpoint = %format!("{}:{}", head.seq, head.mac),
                        "audit checkpoint"
                    );
                    logged = head.seq;
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "audit checkpoint: cannot read the chain head")
                }
            }
            if stopping {
                return;
            }
        }
    }
}

/// Counts a recorded event in the metrics, and a login by its result.
fn count(kind: EventType) {
    crate::metrics::count_audit_event(kind.as_str());
    match kind {
        EventType::LoginSucceeded => crate::metrics::count_login("success"),
        EventType::LoginFailed => crate::metrics::count_login("failure"),
        _ => {}
    }
}

/// One exported event: the stored row with a readable time and the detail as JSON.
pub fn export_line(row: &AuditRow) -> serde_json::Value {
    let detail = serde_json::from_str(&row.detail)
        .unwrap_or_else(|_| serde_json::Value::String(row.detail.clone()));
    serde_json::json!({
        "seq": row.seq,
        "time": crate::clock::rfc3339(row.at),
        "type": row.event_type,
        "severity": row.severity,
        "actor": row.actor_id,
        "subject": row.subject_id,
        "session": row.session_id,
        "client_ip": row.client_ip,
        "user_agent": row.user_agent,
        "request_id": row.request_id,
        "detail": detail,
        "prev_mac": row.prev_mac,
        "mac": row.mac,
    })
}

/// One log line per event, at its severity. Identifiers only: no email, no username, no
/// secret; the user agent is escaped so it cannot forge log lines.
fn log_event(row: &AuditRow) {
    let user_agent = row.user_agent.as_deref().map(untrusted);
    macro_rules! emit {
        ($level:ident) => {
            tracing::$level!(
                target: "aerie::audit",
                seq = row.seq,
                event = %row.event_type,
                severity = %row.severity,
                actor = row.actor_id,
                subject = row.subject_id,
                client_ip = row.client_ip.as_deref(),
                user_agent = user_agent.as_deref(),
                request_id = row.request_id.as_deref(),
                "audit event"
            )
        };
    }
    match row.severity.as_str() {
        "critical" => emit!(error),
        "warning" => emit!(warn),
        _ => emit!(info),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_logins_are_counted_by_result() {
        let metrics = crate::metrics::Metrics::new();
        metrics.scope(|| {
            count(EventType::LoginFailed);
            count(EventType::LoginSucceeded);
            count(EventType::Logout);
        });
        let rendered = metrics.render();
        for line in [
            r#"aerie_logins_total{result="failure"} 1"#,
            r#"aerie_logins_total{result="success"} 1"#,
            r#"aerie_audit_events_total{type="login_failed"} 1"#,
            r#"aerie_audit_events_total{type="logout"} 1"#,
        ] {
            assert!(rendered.contains(line), "{line} in {rendered}");
        }
    }
}
