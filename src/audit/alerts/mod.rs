//! Alert rules over the audit trail, and their delivery.
//!
//! Guards against attacks going unnoticed: password guessing (N failed logins, or wrong
//! current passwords from signed-in callers, for one account or one client address within a
//! window), a stolen refresh token coming back, someone
//! granted the admin role, a tampered audit chain; and against an outage going unnoticed
//! (N responses with status ≥ 500 within a window, fed by the HTTP layer's request observer).
//! An alert is a WARN or ERROR log line (target `aerie::alert`) and, when `AERIE_ALERT_WEBHOOK` is set,
//! a JSON POST to it ([`super::webhook`]).

mod windows;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

use self::windows::{KeyedWindows, ServerErrorWindow};
use super::event::Severity;
use super::webhook::{self, Notice};
use crate::clock::UnixMillis;
use crate::fingerprint::Fingerprint;
use crate::store::AuditRow;

/// `AERIE_ALERT_MAX_TRACKED` by default: failure counters kept at most (see [`windows`]).
pub const DEFAULT_MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Alert {
    /// The rule that fired: `failed_logins_account`, `failed_logins_ip`, `refresh_reuse`,
    /// `admin_role_granted`, `audit_verification_failed`, `repeated_5xx`, `login_new_device`.
    pub rule: &'static str,
    pub severity: Severity,
    pub time: String,
    pub message: String,
    /// The audit row that fired it, when one did.
    pub seq: Option<i64>,
    pub subject: Option<i64>,
    pub client_ip: Option<String>,
}

impl Notice for Alert {
    fn rule(&self) -> &'static str {
        self.rule
    }
}

/// When the alert rules fire, and where alerts are posted.
#[derive(Clone)]
pub struct AlertSettings {
    /// Where alerts are POSTed as JSON, in addition to the log.
    pub webhook: Option<String>,
    /// Failed logins for one account or one client address within the window that raise an
    /// alert.
    pub failed_logins: u32,
    pub failed_login_window: Duration,
    /// Responses with status ≥ 500 within the window that raise one alert.
    pub server_error_threshold: u32,
    pub server_error_window: Duration,
    /// Failure counters (per account, per address) kept at most; when full, the least
    /// significant are evicted and `login_spray_detected` is raised.
    pub max_tracked: usize,
    /// Recorded `access_denied` events, or forged-token `token_rejected` events, by one user
    /// or one address within `failed_login_window` that raise `privilege_escalation_attempts`.
    pub denials: u32,
}

/// The webhook's path is often its secret, so `Debug` only says whether one is set.
impl std::fmt::Debug for AlertSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertSettings")
            .field("webhook", &self.webhook.as_ref().map(|_| "[redacted]"))
            .field("failed_logins", &self.failed_logins)
            .field("failed_login_window", &self.failed_login_window)
            .field("server_error_threshold", &self.server_error_threshold)
            .field("server_error_window", &self.server_error_window)
            .field("max_tracked", &self.max_tracked)
            .field("denials", &self.denials)
            .finish()
    }
}

#[derive(Clone)]
pub struct Alerts {
    inner: Arc<Inner>,
}

struct Inner {
    failures: Mutex<KeyedWindows>,
    /// Refusals per user or address (the privilege-escalation rule).
    denials: Mutex<KeyedWindows>,
    server_errors: Mutex<ServerErrorWindow>,
    webhook: Option<mpsc::Sender<Alert>>,
    /// A command's alerts, kept for [`Alerts::deliver_held`] to post before it exits (a
    /// background sender would die with the process).
    held: Option<(String, Mutex<Vec<Alert>>)>,
}

impl Alerts {
    /// Builds the rules from their settings and, with a webhook, starts its sender task
    /// (so this must run inside the Tokio runtime).
    pub fn from_settings(settings: &AlertSettings) -> Self {
        let webhook = settings.webhook.clone().map(webhook::start);
        let alerts = Self::new(settings, webhook);
        alerts.with_server_error_rule(
            settings.server_error_threshold,
            settings.server_error_window,
        )
    }

    /// The rules for a short-lived command (`aerie user ...`): alerts are logged at once and
    /// held for the webhook until [`Alerts::deliver_held`], which the command awaits before
    /// it exits.
    pub fn for_command(settings: &AlertSettings) -> Self {
        let mut alerts = Self::new(settings, None);
        if let (Some(url), Some(inner)) = (&settings.webhook, Arc::get_mut(&mut alerts.inner)) {
            inner.held = Some((url.clone(), Mutex::new(Vec::new())));
        }
        alerts
    }

    fn new(settings: &AlertSettings, webhook: Option<mpsc::Sender<Alert>>) -> Self {
        let failures = KeyedWindows::new(
            settings.failed_logins,
            settings.failed_login_window,
            settings.max_tracked,
        );
        let denials = KeyedWindows::new(
            settings.denials,
            settings.failed_login_window,
            settings.max_tracked,
        );
        Self {
            inner: Arc::new(Inner {
                failures: Mutex::new(failures),
                denials: Mutex::new(denials),
                server_errors: Mutex::new(ServerErrorWindow::new(20, Duration::from_secs(60))),
                webhook,
                held: None,
            }),
        }
    }

    /// Posts the alerts a command held (with the webhook's retries); true when every one was
    /// delivered, or there was nothing to post.
    pub async fn deliver_held(&self) -> bool {
        let Some((url, held)) = &self.inner.held else {
            return true;
        };
        let alerts = match held.lock() {
            Ok(mut held) => std::mem::take(&mut *held),
            Err(_) => return false,
        };
        let mut delivered = true;
        for alert in &alerts {
            delivered &= webhook::send_now(url, alert).await;
        }
        delivered
    }

    fn with_server_error_rule(self, threshold: u32, window: Duration) -> Self {
        if let Ok(mut rule) = self.inner.server_errors.lock() {
            *rule = ServerErrorWindow::new(threshold, window);
        }
        self
    }

    /// Counts a response with status ≥ 500 (`method` and `route` are labels: a known method
    /// name and a route template, never raw input) and raises `repeated_5xx` when the
    /// threshold is reached within the window.
    pub fn observe_server_error(&self, at: UnixMillis, status: u16, method: &str, route: &str) {
        let fired = match self.inner.server_errors.lock() {
            Ok(mut rule) => rule
                .count(at)
                .then_some((rule.threshold, rule.window / 1000)),
            Err(_) => None,
        };
        if let Some((n, secs)) = fired {
            self.raise(Alert {
                rule: "repeated_5xx",
                severity: Severity::Critical,
                time: crate::clock::rfc3339(at),
                message: format!(
                    "{n} responses with status 500 or above within {secs} s (the last: {status} on {method} {route})"
                ),
                seq: None,
                subject: None,
                client_ip: None,
            });
        }
    }

    /// Runs the rules on a stored audit row.
    pub fn observe(&self, row: &AuditRow) {
        for alert in self.rules(row) {
            self.raise(alert);
        }
    }

    fn rules(&self, row: &AuditRow) -> Vec<Alert> {
        let alert = |rule, severity, message: String| Alert {
            rule,
            severity,
            time: crate::clock::rfc3339(row.at),
            message,
            seq: Some(row.seq),
            subject: row.subject_id,
            client_ip: row.client_ip.clone(),
        };
        match row.event_type.as_str() {
            // A wrong current password from a signed-in caller is a password guess too.
            "login_failed" | "password_change_failed" | "step_up_failed" => {
                let mut fired = Vec::new();
                let n = self.failure_threshold();
                let mut spray = None;
                if let Some(account) = row.subject_id {
                    let counted = self.count_failure(&format!("account:{account}"), row.at);
                    spray = spray.or(counted.spray);
                    if counted.reached {
                        fired.push(alert(
                            "failed_logins_account",
                            Severity::Warning,
                            format!("{n} failed logins for account {account} within the window"),
                        ));
                    }
                }
                if let Some(ip) = &row.client_ip {
                    let counted = self.count_failure(&format!("ip:{ip}"), row.at);
                    spray = spray.or(counted.spray);
                    if counted.reached {
                        fired.push(alert(
                            "failed_logins_ip",
                            Severity::Warning,
                            format!("{n} failed logins from one client address within the window"),
                        ));
                    }
                }
                if let Some(evicted) = spray {
                    fired.push(alert(
                        "login_spray_detected",
                        Severity::Warning,
                        format!(
                            "failed logins from more accounts and addresses than the counters hold: {evicted} of the least significant were evicted"
                        ),
                    ));
                }
                fired
            }
            "access_denied" | "token_rejected" if is_escalation_attempt(row) => {
                let (who, key) = match (row.actor_id, &row.client_ip) {
                    (Some(user), _) => (format!("user {user}"), format!("user:{user}")),
                    (None, Some(ip)) => ("one client address".to_owned(), format!("ip:{ip}")),
                    (None, None) => return Vec::new(),
                };
                if !self.count_denial(&key, row.at) {
                    return Vec::new();
                }
                vec![alert(
                    "privilege_escalation_attempts",
                    Severity::Warning,
                    format!(
                        "{} refused permissions or forged tokens from {who} within the window",
                        self.denial_threshold()
                    ),
                )]
            }
            "login_new_device" => vec![alert(
                "login_new_device",
                Severity::Warning,
                "an account logged in from a device and network it has not used before".into(),
            )],
            "refresh_reuse_detected" => vec![alert(
                "refresh_reuse",
                Severity::Critical,
                "a rotated-out refresh token was presented again; its family is revoked".into(),
            )],
            "role_changed" if row.detail.contains("\"to\":\"admin\"") => vec![alert(
                "admin_role_granted",
                Severity::Warning,
                "an account was granted the admin role".into(),
            )],
            // Only the operator creates accounts with a role (`aerie user create --role`).
            "user_registered" if row.detail.contains("\"role\":\"admin\"") => vec![alert(
                "admin_role_granted",
                Severity::Warning,
                "an account was created with the admin role".into(),
            )],
            "certificate_renewal_failed" => vec![alert(
                "certificate_renewal_failed",
                Severity::Warning,
                "an ACME certificate order failed; see the event's detail for why and when it is retried".into(),
            )],
            "mail_delivery_failing" => vec![alert(
                "mail_delivery_failing",
                Severity::Critical,
                "mail has been failing to reach the relay for longer than AERIE_MAIL_ALERT_AFTER_SECS".into(),
            )],
            "audit_verification_failed" => vec![alert(
                "audit_verification_failed",
                Severity::Critical,
                "the audit chain failed verification".into(),
            )],
            _ => Vec::new(),
        }
    }

    fn failure_threshold(&self) -> usize {
        self.inner
            .failures
            .lock()
            .map_or(0, |failures| failures.threshold())
    }

    fn denial_threshold(&self) -> usize {
        self.inner
            .denials
            .lock()
            .map_or(0, |denials| denials.threshold())
    }

    /// Counts one refusal for `key` at `at`; true when it reaches the threshold.
    fn count_denial(&self, key: &str, at: UnixMillis) -> bool {
        self.inner
            .denials
            .lock()
            .is_ok_and(|mut denials| denials.count(Fingerprint::of(key), at).reached)
    }

    /// Counts one failure for `key` (its fingerprint: the key may be long) at `at`.
    fn count_failure(&self, key: &str, at: UnixMillis) -> windows::Counted {
        match self.inner.failures.lock() {
            Ok(mut failures) => failures.count(Fingerprint::of(key), at),
            Err(_) => windows::Counted::default(),
        }
    }

    /// Logs the alert and queues it for the webhook without waiting.
    pub fn raise(&self, alert: Alert) {
        log_alert(&alert);
        if let Some((_, held)) = &self.inner.held
            && let Ok(mut held) = held.lock()
        {
            held.push(alert);
            return;
        }
        if let Some(queue) = &self.inner.webhook
            && queue.try_send(alert).is_err()
        {
            tracing::error!(target: "aerie::alert", "alert webhook queue full or closed: alert dropped");
        }
    }
}

/// A refused permission, or a token that was forged rather than old (an expired or revoked
/// token is an ordinary client's, and does not count).
fn is_escalation_attempt(row: &AuditRow) -> bool {
    row.event_type == "access_denied" || row.detail.contains("\"forged\":true")
}

fn log_alert(alert: &Alert) {
    match alert.severity {
        Severity::Critical => tracing::error!(
            target: "aerie::alert", rule = alert.rule, seq = alert.seq, subject = alert.subject,
            client_ip = alert.client_ip.as_deref(), "ALERT: {}", alert.message
        ),
        _ => tracing::warn!(
            target: "aerie::alert", rule = alert.rule, seq = alert.seq, subject = alert.subject,
            client_ip = alert.client_ip.as_deref(), "ALERT: {}", alert.message
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(threshold: u32) -> AlertSettings {
        AlertSettings {
            webhook: None,
            failed_logins: threshold,
            failed_login_window: Duration::from_secs(60),
            server_error_threshold: 20,
            server_error_window: Duration::from_secs(60),
            max_tracked: DEFAULT_MAX_TRACKED,
            denials: 3,
        }
    }

    fn failed_login(seq: i64, at: UnixMillis, subject: Option<i64>, ip: &str) -> AuditRow {
        AuditRow {
            seq,
            at,
            event_type: "login_failed".into(),
            severity: "warning".into(),
            actor_id: None,
            subject_id: subject,
            session_id: None,
            client_ip: Some(ip.into()),
            user_agent: None,
            request_id: None,
            detail: "{}".into(),
            prev_mac: String::new(),
            mac: String::new(),
        }
    }

    fn rules_fired(alerts: &Alerts, row: &AuditRow) -> Vec<&'static str> {
        alerts.rules(row).into_iter().map(|a| a.rule).collect()
    }

    #[test]
    fn failed_logins_alert_once_per_threshold_within_the_window() {
        let alerts = Alerts::new(&settings(3), None);
        let t = 1_000_000;
        assert!(rules_fired(&alerts, &failed_login(1, t, Some(7), "10.0.0.1")).is_empty());
        assert!(rules_fired(&alerts, &failed_login(2, t + 1, Some(7), "10.0.0.2")).is_empty());
        assert_eq!(
            rules_fired(&alerts, &failed_login(3, t + 2, Some(7), "10.0.0.3")),
            ["failed_logins_account"]
        );
        // The count starts afresh after an alert.
        assert!(rules_fired(&alerts, &failed_login(4, t + 3, Some(7), "10.0.0.4")).is_empty());
    }

    #[test]
    fn a_failed_certificate_order_raises_an_alert_each_time() {
        let alerts = Alerts::new(&settings(3), None);
        let mut row = failed_login(1, 1_000_000, None, "10.0.0.1");
        row.event_type = "certificate_renewal_failed".into();
        row.client_ip = None;
        assert_eq!(rules_fired(&alerts, &row), ["certificate_renewal_failed"]);
        assert_eq!(rules_fired(&alerts, &row), ["certificate_renewal_failed"]);
        row.event_type = "certificate_issued".into();
        assert!(rules_fired(&alerts, &row).is_empty());
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let alerts = Alerts::new(&settings(3), None);
        let t = 1_000_000;
        for (i, at) in [t, t + 1, t + 61_000, t + 61_001].into_iter().enumerate() {
            let seq = i64::try_from(i).unwrap_or_default();
            assert!(rules_fired(&alerts, &failed_login(seq, at, None, "10.0.0.9")).is_empty());
        }
        assert_eq!(
            rules_fired(&alerts, &failed_login(9, t + 61_002, None, "10.0.0.9")),
            ["failed_logins_ip"]
        );
    }

    #[test]
    fn server_errors_alert_once_per_window() {
        let mut rule = ServerErrorWindow::new(3, Duration::from_secs(60));
        let t = 1_000_000;
        let fired: Vec<bool> = (0..8).map(|i| rule.count(t + i * 1000)).collect();
        assert_eq!(
            fired,
            [false, false, true, false, false, false, false, false],
            "one alert, then quiet for the rest of the window"
        );
        assert!(!rule.count(t + 61_000), "still quiet");
        assert!(!rule.count(t + 62_000));
        assert!(!rule.count(t + 62_500));
        assert!(
            rule.count(t + 63_000),
            "after the quiet window, N more alert again"
        );
    }

    #[test]
    fn sparse_server_errors_never_alert() {
        let mut rule = ServerErrorWindow::new(3, Duration::from_secs(60));
        let t = 1_000_000;
        for i in 0..10 {
            assert!(!rule.count(t + i * 31_000), "error {i}");
        }
    }

    #[test]
    fn admin_grants_and_refresh_reuse_always_alert() {
        let alerts = Alerts::new(&settings(3), None);
        let mut row = failed_login(1, 0, Some(1), "10.0.0.1");
        row.event_type = "role_changed".into();
        row.detail = r#"{"from":"user","to":"admin"}"#.into();
        assert_eq!(rules_fired(&alerts, &row), ["admin_role_granted"]);
        row.detail = r#"{"from":"admin","to":"user"}"#.into();
        assert!(rules_fired(&alerts, &row).is_empty());
        row.event_type = "refresh_reuse_detected".into();
        assert_eq!(rules_fired(&alerts, &row), ["refresh_reuse"]);
        row.event_type = "user_registered".into();
        row.detail = r#"{"by":"cli","osUser":"root","role":"admin"}"#.into();
        assert_eq!(rules_fired(&alerts, &row), ["admin_role_granted"]);
        row.detail = r#"{"by":"cli","osUser":"root","role":"editor"}"#.into();
        assert!(rules_fired(&alerts, &row).is_empty());
    }
}
