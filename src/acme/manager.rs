//! The ACME loop: serve the cached certificate at start, issue when there is none or it is
//! two thirds through its lifetime, and after a failure retry with jittered, doubling waits.
//!
//! Guards against: a failure that nobody sees (an ERROR line and a `certificate_renewal_failed`
//! audit event, which raises an alert, for each failed attempt); a crash loop (nothing here
//! stops the server); hammering a CA that refuses or rate-limits (waits double to an hour);
//! a cached certificate for other names or already expired being served (it is reissued).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use super::Acme;
use super::cache::Cache;
use super::certificate::Issued;
use super::issue::{IssueError, issue};
use super::schedule::{backoff, renewal_due};
use crate::audit::{AuditEvent, AuditLog, EventType};
use crate::clock::Clock;

/// The metric holding the served certificate's notAfter, in Unix seconds.
pub const EXPIRY_METRIC: &str = "aerie_tls_certificate_expiry_timestamp_seconds";

/// What the loop knows of the served certificate.
struct Served {
    not_before: i64,
    not_after: i64,
}

/// Runs until `stop` turns true.
pub async fn run(
    acme: Acme,
    audit: AuditLog,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
) {
    let cache = Cache::new(&acme.settings.cache);
    let mut served: Option<Served> = None;
    let mut failures = 0u32;
    loop {
        let wait = match step(&acme, &cache, &mut served, clock.as_ref(), &audit).await {
            Ok(()) => {
                failures = 0;
                let now = clock.now() / 1000;
                let until_due = served.as_ref().map_or(Duration::ZERO, |s| {
                    let due = renewal_due(s.not_before, s.not_after);
                    Duration::from_secs(u64::try_from(due - now).unwrap_or(0))
                });
                until_due.min(acme.settings.check_interval)
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                let wait = backoff(failures, rand::random::<f64>());
                report_failure(&acme, &audit, &error, served.is_some(), wait).await;
                wait
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait.max(Duration::from_millis(200))) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Loads the cached certificate when none is served yet; issues when none is usable or the
/// served one is due for renewal.
async fn step(
    acme: &Acme,
    cache: &Cache,
    served: &mut Option<Served>,
    clock: &dyn Clock,
    audit: &AuditLog,
) -> Result<(), IssueError> {
    let now = clock.now() / 1000;
    if served.is_none() {
        let cached = cache.load().map_err(IssueError::Cache)?;
        if let (Some(cert), Some(key)) = (cached.cert_pem, cached.key_pem) {
            match Issued::parse(&cert, &key) {
                Ok(issued) if issued.covers(&acme.settings.domains) && issued.not_after > now => {
                    tracing::info!(
                        not_after = %crate::clock::rfc3339(issued.not_after * 1000),
                        "TLS certificate loaded from the ACME cache"
                    );
                    *served = Some(install(acme, issued));
                }
                Ok(_) => tracing::info!(
                    "the cached certificate is expired or does not cover AERIE_ACME_DOMAINS: ordering a new one"
                ),
                Err(error) => tracing::warn!(%error, "the cached certificate does not load: ordering a new one"),
            }
        }
    }
    if let Some(current) = served.as_ref()
        && now < renewal_due(current.not_before, current.not_after)
    {
        return Ok(());
    }
    let renewal = served.is_some();
    tracing::info!(
        domains = %acme.settings.domains.join(","),
        directory = %acme.settings.directory,
        renewal,
        "ordering a TLS certificate over ACME"
    );
    let (chain, key) = issue(acme, cache).await?;
    let issued = Issued::parse(&chain, &key).map_err(IssueError::Ca)?;
    cache
        .store_certificate(&chain, &key)
        .map_err(IssueError::Cache)?;
    let not_after = crate::clock::rfc3339(issued.not_after * 1000);
    *served = Some(install(acme, issued));
    tracing::info!(%not_after, renewal, "TLS certificate issued over ACME and now served");
    let detail = json!({
        "domains": acme.settings.domains,
        "not_after": not_after,
        "renewal": renewal,
    });
    if let Err(error) = audit
        .record(AuditEvent::new(EventType::CertificateIssued).detail(detail))
        .await
    {
        tracing::error!(%error, "recording certificate_issued failed");
    }
    Ok(())
}

fn install(acme: &Acme, issued: Issued) -> Served {
    acme.resolver.install(issued.key.clone());
    acme.set_expiry(issued.not_after);
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!(EXPIRY_METRIC).set(issued.not_after as f64);
    Served {
        not_before: issued.not_before,
        not_after: issued.not_after,
    }
}

async fn report_failure(
    acme: &Acme,
    audit: &AuditLog,
    error: &IssueError,
    serving: bool,
    retry_in: Duration,
) {
    tracing::error!(
        %error,
        kind = error.kind(),
        domains = %acme.settings.domains.join(","),
        retry_in_secs = retry_in.as_secs(),
        serving_previous_certificate = serving,
        "ACME certificate order failed; {}",
        if serving {
            "still serving the previous certificate"
        } else {
            "TLS handshakes are refused until a certificate is issued"
        }
    );
    let detail = json!({
        "domains": acme.settings.domains,
        "kind": error.kind(),
        "reason": error.to_string(),
        "retry_in_secs": retry_in.as_secs(),
        "expires": acme.expiry().map(|at| crate::clock::rfc3339(at * 1000)),
    });
    if let Err(error) = audit
        .record(AuditEvent::new(EventType::CertificateRenewalFailed).detail(detail))
        .await
    {
        tracing::error!(%error, "recording certificate_renewal_failed failed");
    }
}
