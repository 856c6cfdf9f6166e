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
use super::error::IssueError;
use super::issue::{answer, issue, withdraw};
use super::schedule::{backoff, renewal_due};
use super::shared::{PendingChallenge, Shared};
use crate::audit::{AuditEvent, AuditLog, EventType};
use crate::clock::Clock;
use crate::store::Store;

/// The metric holding the served certificate's notAfter, in Unix seconds.
pub const EXPIRY_METRIC: &str = "aerie_tls_certificate_expiry_timestamp_seconds";

/// What the loop knows of the served certificate.
struct Served {
    not_before: i64,
    not_after: i64,
    cert_pem: String,
}

/// The loop's memory between steps.
#[derive(Default)]
struct State {
    served: Option<Served>,
    /// Challenge answers another instance published, served here too.
    followed: Vec<PendingChallenge>,
}

/// Runs until `stop` turns true. On PostgreSQL, `store` shares the state between instances.
pub async fn run(
    acme: Acme,
    audit: AuditLog,
    clock: Arc<dyn Clock>,
    store: Store,
    mut stop: watch::Receiver<bool>,
) {
    let cache = Cache::new(&acme.settings.cache);
    let mut state = State::default();
    let mut failures = 0u32;
    // After a failure, no new order before this; the loop still wakes every check interval
    // to follow the other instances (their challenge answers, their new certificate).
    let mut retry_at: Option<tokio::time::Instant> = None;
    let shares = store.shares_acme_state();
    loop {
        let shared = shares.then(|| Shared {
            store: &store,
            clock: clock.as_ref(),
            propagation: acme.settings.check_interval + Duration::from_secs(1),
        });
        let may_order = retry_at.is_none_or(|at| tokio::time::Instant::now() >= at);
        let outcome = step(
            &acme,
            &cache,
            shared.as_ref(),
            &mut state,
            (clock.as_ref(), &audit),
            may_order,
        )
        .await;
        let wait = match outcome {
            Ok(()) if may_order => {
                failures = 0;
                retry_at = None;
                let now = clock.now() / 1000;
                // Nothing served yet after a good step: another instance holds the order lock.
                state
                    .served
                    .as_ref()
                    .map_or(acme.settings.check_interval, |s| {
                        let due = renewal_due(s.not_before, s.not_after);
                        Duration::from_secs(u64::try_from(due - now).unwrap_or(0))
                    })
            }
            Ok(()) => retry_at.map_or(Duration::ZERO, |at| {
                at.saturating_duration_since(tokio::time::Instant::now())
            }),
            Err(error) => {
                failures = failures.saturating_add(1);
                let wait = backoff(failures, rand::random::<f64>());
                retry_at = Some(tokio::time::Instant::now() + wait);
                report_failure(&acme, &audit, &error, state.served.is_some(), wait).await;
                wait
            }
        };
        let wait = wait
            .min(acme.settings.check_interval)
            .max(Duration::from_millis(200));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Whether `issued` may be served: it covers the domains, is not expired, and is not older
/// than the one served.
fn usable(acme: &Acme, issued: &Issued, served: Option<&Served>, now: i64) -> bool {
    issued.covers(&acme.settings.domains)
        && issued.not_after > now
        && served.is_none_or(|served| issued.not_after >= served.not_after)
}

/// Serves the certificate another instance stored, when it is newer than ours.
async fn pick_up(
    acme: &Acme,
    cache: &Cache,
    shared: &Shared<'_>,
    state: &mut State,
    now: i64,
) -> Result<(), IssueError> {
    let Some((cert, key)) = shared.certificate().await? else {
        return Ok(());
    };
    if state
        .served
        .as_ref()
        .is_some_and(|served| served.cert_pem == cert)
    {
        return Ok(());
    }
    match Issued::parse(&cert, &key) {
        Ok(issued) if usable(acme, &issued, state.served.as_ref(), now) => {
            if let Err(error) = cache.store_certificate(&cert, &key) {
                tracing::warn!(%error, "the shared certificate is served but not cached");
            }
            tracing::info!(
                not_after = %crate::clock::rfc3339(issued.not_after * 1000),
                "TLS certificate picked up from the database (ordered by this or another instance)"
            );
            state.served = Some(install(acme, issued, cert));
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "the shared certificate does not load"),
    }
    Ok(())
}

/// Serves the challenge answers another instance published, and withdraws old ones.
async fn follow_challenges(
    acme: &Acme,
    shared: &Shared<'_>,
    state: &mut State,
) -> Result<(), IssueError> {
    let published = shared.challenges().await?;
    if published == state.followed {
        return Ok(());
    }
    for old in &state.followed {
        withdraw(acme, old);
    }
    for pending in &published {
        answer(acme, pending)?;
    }
    state.followed = published;
    Ok(())
}

/// Loads the cached certificate when none is served yet; follows the other instances; issues
/// when none is usable or the served one is due for renewal (on PostgreSQL, only with the lock).
async fn step(
    acme: &Acme,
    cache: &Cache,
    shared: Option<&Shared<'_>>,
    state: &mut State,
    (clock, audit): (&dyn Clock, &AuditLog),
    may_order: bool,
) -> Result<(), IssueError> {
    let now = clock.now() / 1000;
    if state.served.is_none() {
        let cached = cache.load().map_err(IssueError::Cache)?;
        if let (Some(cert), Some(key)) = (cached.cert_pem, cached.key_pem) {
            match Issued::parse(&cert, &key) {
                Ok(issued) if usable(acme, &issued, None, now) => {
                    tracing::info!(
                        not_after = %crate::clock::rfc3339(issued.not_after * 1000),
                        "TLS certificate loaded from the ACME cache"
                    );
                    state.served = Some(install(acme, issued, cert));
                }
                Ok(_) => tracing::info!(
                    "the cached certificate is expired or does not cover AERIE_ACME_DOMAINS: ordering a new one"
                ),
                Err(error) => {
                    tracing::warn!(%error, "the cached certificate does not load: ordering a new one")
                }
            }
        }
    }
    if let Some(shared) = shared {
        follow_challenges(acme, shared, state).await?;
        pick_up(acme, cache, shared, state, now).await?;
    }
    let due = |state: &State| {
        state
            .served
            .as_ref()
            .is_none_or(|current| now >= renewal_due(current.not_before, current.not_after))
    };
    if !may_order || !due(state) {
        return Ok(());
    }
    let lock = match shared {
        Some(shared) => match shared.store.try_acme_lock().await {
            Ok(Some(lock)) => {
                // Another instance may have finished an order just before we took the lock.
                pick_up(acme, cache, shared, state, now).await?;
                if !due(state) {
                    lock.release().await;
                    return Ok(());
                }
                Some(lock)
            }
            Ok(None) => {
                tracing::debug!("another instance is ordering the certificate");
                return Ok(());
            }
            Err(error) => {
                return Err(IssueError::Database(format!(
                    "the ACME order lock: {error}"
                )));
            }
        },
        None => None,
    };
    let renewal = state.served.is_some();
    tracing::info!(
        domains = %acme.settings.domains.join(","),
        directory = %acme.settings.directory,
        renewal,
        "ordering a TLS certificate over ACME"
    );
    let (chain, key) = issue(acme, cache, shared).await?;
    let issued = Issued::parse(&chain, &key).map_err(IssueError::Ca)?;
    cache
        .store_certificate(&chain, &key)
        .map_err(IssueError::Cache)?;
    if let Some(shared) = shared {
        shared.set_certificate(&chain, &key).await?;
    }
    if let Some(lock) = lock {
        lock.release().await;
    }
    let not_after = crate::clock::rfc3339(issued.not_after * 1000);
    state.served = Some(install(acme, issued, chain));
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

fn install(acme: &Acme, issued: Issued, cert_pem: String) -> Served {
    acme.resolver.install(issued.key.clone());
    acme.set_expiry(issued.not_after);
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!(EXPIRY_METRIC).set(issued.not_after as f64);
    Served {
        not_before: issued.not_before,
        not_after: issued.not_after,
        cert_pem,
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
