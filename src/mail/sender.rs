//! The background sender: delivers the outbox, retrying with exponential backoff.
//!
//! Guards against lost and stuck mail. Each attempt first claims the row (a lease, so two
//! instances never send one mail at once and a sender killed mid-attempt leaves it to be
//! tried again), and the row is deleted only after the relay accepted the mail:
//! at-least-once. Failures wait `base · 2^attempts`, capped; a run of failures longer than
//! the alert threshold records `mail_delivery_failing` once. Scheduling uses the wall clock,
//! not the injected one: it is about the relay's real time, not token expiry.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::templates::Templates;
use super::{Kind, MailError, MailSettings, Transport};
use crate::audit::{AuditEvent, AuditLog, EventType};
use crate::clock::{Clock, SystemClock, UnixMillis};
use crate::store::{PendingMail, Store};

/// How long one attempt holds a mail before another sender (or this one, restarted after a
/// crash) may take it: longer than an attempt takes (the SMTP timeout is 30 s per step), so
/// two senders rarely both send it; if they do, the mail arrives twice, never not at all.
const LEASE: Duration = Duration::from_secs(60);
/// Mails read per pass.
const BATCH: i64 = 20;
/// How often the outbox is looked at when nothing wakes the sender.
const POLL: Duration = Duration::from_millis(500);

/// Counts for the metrics (this process's sender).
#[derive(Debug, Default)]
pub struct MailStats {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
}

/// Delivers the outbox. Cheap to clone.
#[derive(Clone)]
pub struct Sender {
    store: Store,
    transport: Transport,
    templates: Templates,
    settings: Arc<MailSettings>,
    audit: AuditLog,
    wake: Arc<Notify>,
    pub stats: Arc<MailStats>,
    alerted: Arc<AtomicBool>,
}

impl Sender {
    pub fn new(store: Store, settings: MailSettings, audit: AuditLog) -> Result<Self, MailError> {
        let transport = Transport::from_settings(&settings.delivery)?;
        let templates =
            Templates::new(&settings.app_url).map_err(|e| MailError::Settings(e.to_string()))?;
        Ok(Self {
            store,
            transport,
            templates,
            settings: Arc::new(settings),
            audit,
            wake: Arc::new(Notify::new()),
            stats: Arc::default(),
            alerted: Arc::default(),
        })
    }

    pub fn settings(&self) -> &MailSettings {
        &self.settings
    }

    /// Tells the sender that mail was queued, so it need not wait for its next look.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Delivers until `stop` says so.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        if !self.settings.enabled() {
            return;
        }
        loop {
            self.deliver_due().await;
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// One pass over the due mails.
    pub async fn deliver_due(&self) {
        let now = SystemClock.now();
        let due = match self.store.due_mail(now, BATCH).await {
            Ok(due) => due,
            Err(error) => {
                tracing::error!(%error, "reading the mail outbox");
                return;
            }
        };
        for mail in due {
            match self
                .store
                .claim_mail(mail.id, mail.next_attempt_at, now + millis(LEASE))
                .await
            {
                Ok(true) => self.attempt(mail).await,
                Ok(false) => {}
                Err(error) => tracing::error!(%error, "claiming a mail"),
            }
        }
        self.check_alert(now).await;
    }

    async fn attempt(&self, mail: PendingMail) {
        let result = self.send(&mail).await;
        let now = SystemClock.now();
        match result {
            Ok(place) => {
                self.stats.sent.fetch_add(1, Ordering::Relaxed);
                tracing::info!(mail_id = mail.id, kind = %mail.kind, delivered = %place, "mail delivered");
                if let Err(error) = self.store.mail_delivered(mail.id).await {
                    tracing::error!(%error, mail_id = mail.id, "a delivered mail stays queued and will be sent again");
                }
            }
            Err(error) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                let wait = self.backoff(mail.attempts);
                tracing::warn!(%error, mail_id = mail.id, kind = %mail.kind, attempts = mail.attempts + 1, retry_in_ms = wait.as_millis() as u64, "mail delivery failed");
                let next = now + millis(wait);
                if let Err(error) = self.store.mail_failed(mail.id, next, now).await {
                    tracing::error!(%error, mail_id = mail.id, "recording a failed mail");
                }
            }
        }
    }

    async fn send(&self, mail: &PendingMail) -> Result<String, MailError> {
        let kind = Kind::parse(&mail.kind)
            .ok_or_else(|| MailError::Build(format!("unknown mail kind {}", mail.kind)))?;
        let payload: serde_json::Value =
            serde_json::from_str(&mail.payload).map_err(|e| MailError::Build(e.to_string()))?;
        let rendered = self
            .templates
            .render(kind, &payload)
            .map_err(|e| MailError::Build(e.to_string()))?;
        // Time first: SQLite may reuse a delivered row's id, and the files must not collide.
        let name = format!("{}-{}-{}", SystemClock.now(), mail.id, kind.as_str());
        self.transport
            .send(&self.settings.from, &mail.to, &rendered, &name)
            .await
    }

    /// The link a mail of `kind` carrying `token` opens (for `aerie user reset-link`).
    pub fn link(&self, kind: Kind, token: &str) -> Option<String> {
        self.templates.link(kind, token)
    }

    fn backoff(&self, attempts: i64) -> Duration {
        let exponent = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
        self.settings
            .retry_base
            .saturating_mul(2u32.saturating_pow(exponent))
            .min(self.settings.retry_max)
    }

    /// Records `mail_delivery_failing` once when the oldest run of failures passes the
    /// threshold; clears when the outbox has none.
    async fn check_alert(&self, now: UnixMillis) {
        let Ok((depth, failing_since)) = self.store.outbox_state().await else {
            return;
        };
        let Some(since) = failing_since else {
            self.alerted.store(false, Ordering::Relaxed);
            return;
        };
        let failing_for = now.saturating_sub(since);
        if failing_for < millis(self.settings.alert_after)
            || self.alerted.swap(true, Ordering::Relaxed)
        {
            return;
        }
        let event = AuditEvent::new(EventType::MailDeliveryFailing).detail(serde_json::json!({
            "outboxDepth": depth,
            "failingForSecs": failing_for / 1000,
        }));
        if let Err(error) = self.audit.record(event).await {
            tracing::error!(%error, "recording mail_delivery_failing");
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
