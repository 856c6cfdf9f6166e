//! Security notices: a mail to the account's address when something about its security
//! changed, chosen from the audit event that records the change (so every door, API or CLI,
//! that records it also sends it). Best effort: a notice that cannot be queued is logged,
//! and the change stands.

use serde_json::json;

use crate::audit::{AuditEvent, EventType};
use crate::mail::{Kind, Sender};
use crate::store::{OutgoingMail, Store};

/// What the notice is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    PasswordChanged,
    MfaEnabled,
    MfaDisabled,
    NewDeviceLogin,
    SessionsRevoked,
}

impl Notice {
    /// The notice an audit event calls for, if any.
    pub fn for_event(event: &AuditEvent) -> Option<Self> {
        let by = event.detail.get("by").and_then(|v| v.as_str());
        match event.kind {
            EventType::PasswordChanged | EventType::PasswordResetCompleted => {
                Some(Notice::PasswordChanged)
            }
            EventType::MfaEnabled => Some(Notice::MfaEnabled),
            EventType::MfaDisabled => Some(Notice::MfaDisabled),
            EventType::LoginNewDevice => Some(Notice::NewDeviceLogin),
            EventType::SessionRevoked if matches!(by, Some("admin" | "cli")) => {
                Some(Notice::SessionsRevoked)
            }
            _ => None,
        }
    }

    fn kind(self) -> Kind {
        match self {
            Notice::PasswordChanged => Kind::PasswordChanged,
            Notice::MfaEnabled => Kind::MfaEnabled,
            Notice::MfaDisabled => Kind::MfaDisabled,
            Notice::NewDeviceLogin => Kind::NewDeviceLogin,
            Notice::SessionsRevoked => Kind::SessionsRevoked,
        }
    }
}

/// Queues notices. Cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    store: Store,
    sender: Sender,
}

impl Notifier {
    pub fn new(store: Store, sender: Sender) -> Self {
        Self { store, sender }
    }

    /// Queues `notice` for the account's address (nothing when mail is off).
    pub async fn notify(&self, user_id: i64, notice: Notice) {
        if !self.sender.settings().enabled() {
            return;
        }
        let user = match self.store.user_by_id(user_id).await {
            Ok(Some(user)) => user,
            Ok(None) => return,
            Err(error) => {
                tracing::error!(%error, "reading the account for a security notice");
                return;
            }
        };
        let mail = OutgoingMail {
            kind: notice.kind().as_str(),
            to: user.email,
            payload: json!({ "username": user.username }).to_string(),
        };
        let now = crate::clock::Clock::now(&crate::clock::SystemClock);
        match self.store.queue_mail(None, &[mail], now).await {
            Ok(()) => self.sender.wake(),
            Err(error) => tracing::error!(%error, "queueing a security notice"),
        }
    }
}
