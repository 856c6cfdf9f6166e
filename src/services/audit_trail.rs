//! Administrators reading the audit trail.
//!
//! Guards against the investigation itself leaking unseen: every read is recorded on the
//! trail it reads, before the answer leaves, so who looked at what stays on the record. A
//! filter naming an account that does not exist matches nothing, rather than being dropped
//! and showing everything.

use serde_json::json;

use super::{Actor, Recorder};
use crate::audit::{AuditError, EventType, Severity};
use crate::clock::UnixMillis;
use crate::domain::username_key;
use crate::store::{AuditFilter, AuditListRow, Store};

/// Which events to read; every filter is optional.
#[derive(Debug, Default)]
pub struct AuditQuery {
    /// Username of whoever acted.
    pub actor: Option<String>,
    /// Username the event concerns.
    pub subject: Option<String>,
    pub event_type: Option<EventType>,
    pub severity: Option<Severity>,
    /// Inclusive.
    pub since: Option<UnixMillis>,
    /// Exclusive.
    pub until: Option<UnixMillis>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditTrailError {
    #[error(transparent)]
    Store(#[from] sqlx::Error),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// Reads the audit trail for administrators. Cheap to clone.
#[derive(Clone)]
pub struct AuditTrail {
    store: Store,
    recorder: Recorder,
}

impl AuditTrail {
    pub fn new(store: Store, recorder: Recorder) -> Self {
        Self { store, recorder }
    }

    /// A page of matching events, newest first, with the total count.
    pub async fn read(
        &self,
        actor: Actor<'_>,
        query: AuditQuery,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<AuditListRow>, i64), AuditTrailError> {
        let mut filter = AuditFilter {
            event_type: query.event_type.map(|kind| kind.as_str().to_owned()),
            severity: query.severity.map(|level| level.as_str().to_owned()),
            since: query.since,
            until: query.until,
            ..AuditFilter::default()
        };
        let mut unknown_party = false;
        for (username, slot) in [
            (query.actor, &mut filter.actor_id),
            (query.subject, &mut filter.subject_id),
        ] {
            if let Some(username) = username {
                let user = self
                    .store
                    .user_by_username_key(&username_key(&username))
                    .await?;
                match user {
                    Some(user) => *slot = Some(user.id),
                    None => unknown_party = true,
                }
            }
        }

        // Reading the trail is on the trail, before the answer leaves.
        let event = actor.event(EventType::AdminReadUserData, json!({ "resource": "audit" }));
        self.recorder.record(event).await?;

        if unknown_party {
            return Ok((Vec::new(), 0));
        }
        Ok(self.store.audit_page(&filter, limit, offset).await?)
    }
}
