//! What every command-line action that changes accounts, roles, sessions or keys shares: who
//! ran it, and the audit trail it is recorded on.
//!
//! Guards against administration from a shell leaving no trace: minting an administrator
//! with `aerie user create --role admin` is the most privileged act in the system, so each
//! such command records its event on the same hash-chained trail as the API (sealed with the
//! audit key, as `aerie audit verify` checks it), names the OS user who ran it, and raises
//! the same alerts, posted before the command exits.

use std::sync::Arc;

use crate::audit::alerts::Alerts;
use crate::audit::{AlertSettings, AuditLog, AuditSettings};
use crate::clock::SystemClock;
use crate::services::Operator;
use crate::store::Store;

/// The OS account running this command: the login name the shell gave (`$USER`, then
/// `$LOGNAME`; `uid:N` when neither is set) and the effective uid, which the shell cannot
/// make up.
pub fn operator() -> Operator {
    let uid = effective_uid();
    let os_user = ["USER", "LOGNAME"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|name| !name.is_empty())
        .or_else(|| uid.map(|uid| format!("uid:{uid}")))
        .unwrap_or_else(|| "unknown".to_owned());
    Operator { os_user, uid }
}

/// The effective uid, read from the owner of `/proc/self` (no `unsafe` call to `geteuid`).
fn effective_uid() -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").ok().map(|m| m.uid())
    }
    #[cfg(not(unix))]
    None
}

/// The audit trail a command records on, with the alert rules the server runs.
pub struct CommandTrail {
    pub audit: AuditLog,
    alerts: Alerts,
}

impl CommandTrail {
    /// Loads the audit key as the server does (generated only where the settings allow,
    /// i.e. in development) and attaches the alert rules, whose webhook posts are held until
    /// [`CommandTrail::finish`].
    pub fn open(
        store: &Store,
        audit: &AuditSettings,
        alerts: &AlertSettings,
    ) -> anyhow::Result<Self> {
        let alerts = Alerts::for_command(alerts);
        let audit = AuditLog::open(
            store.clone(),
            &audit.key_file,
            audit.generate_key,
            Arc::new(SystemClock),
        )?
        .with_alerts(alerts.clone());
        Ok(Self { audit, alerts })
    }

    /// Posts the alerts the command raised; a receiver that cannot be reached is logged (the
    /// alert itself is already in the log and the event on the trail).
    pub async fn finish(&self) {
        if !self.alerts.deliver_held().await {
            tracing::error!(target: "aerie::alert", "alert webhook: an alert from this command was not delivered");
        }
    }
}
