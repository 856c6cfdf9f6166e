//! Retention: deleting sessions and refresh tokens nobody can use any more.
//!
//! Guards against tables that only grow: every login adds a session and every refresh a
//! token row, and nothing removed them. A session is deleted (its refresh tokens with it)
//! once it is past its idle timeout or absolute lifetime, or revoked for longer than any of
//! its access tokens can live (the revocation set loads those rows at start), plus a grace
//! period that keeps recent history for investigations. The SQLite revocation log, which
//! only carries revocations to running servers, loses its rows once they are older than any
//! token they could stop, with no grace. The server runs [`Retention::run`]
//! every `AERIE_RETENTION_INTERVAL_SECS`; `aerie maintenance prune` runs one pass by hand.
//! Each pass asks the clock for the time, so tests move a manual clock and call
//! [`Retention::run_once`] instead of waiting.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::auth::SessionTimes;
use crate::auth::revocations::revocation_retention;
use crate::clock::{Clock, UnixMillis};
use crate::store::{Pruned, SessionCutoffs, Store};

/// How often retention runs, and how long expired rows are kept before they go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionSettings {
    pub interval: Duration,
    pub grace: Duration,
}

/// Deletes expired sessions and their refresh tokens. Cheap to clone.
#[derive(Clone)]
pub struct Retention {
    store: Store,
    clock: Arc<dyn Clock>,
    settings: RetentionSettings,
    times: SessionTimes,
    access_token_ttl: Duration,
}

impl Retention {
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        settings: RetentionSettings,
        times: SessionTimes,
        access_token_ttl: Duration,
    ) -> Self {
        Self {
            store,
            clock,
            settings,
            times,
            access_token_ttl,
        }
    }

    /// The rows a pass at `now` deletes: anything that ended longer than the grace ago.
    fn cutoffs(&self, now: UnixMillis) -> SessionCutoffs {
        let grace = self.settings.grace;
        // The revocation set keeps a revoked session this long, so its row must outlive it.
        let revoked_for = grace.max(revocation_retention(self.access_token_ttl));
        SessionCutoffs {
            revoked_before: now - millis(revoked_for),
            seen_before: now - millis(self.times.idle_timeout + grace),
            created_before: now - millis(self.times.max_lifetime + grace),
        }
    }

    /// One pass, at the clock's current time.
    pub async fn run_once(&self) -> Result<Pruned, sqlx::Error> {
        let now = self.clock.now();
        let pruned = self.store.prune_sessions(&self.cutoffs(now)).await?;
        // Mailed tokens past their 30 minutes, spent or not: only their hashes, but nothing
        // to keep.
        self.store.prune_mail_tokens(now).await?;
        let stops_no_token = now - millis(revocation_retention(self.access_token_ttl));
        self.store.prune_revocation_log(stops_no_token).await?;
        tracing::info!(
            sessions = pruned.sessions,
            refresh_tokens = pruned.refresh_tokens,
            "retention: expired sessions deleted"
        );
        Ok(pruned)
    }

    /// Runs a pass every interval until `stop` turns true. A failed pass is logged and
    /// retried at the next interval.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.settings.interval) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            if let Err(error) = self.run_once().await {
                tracing::warn!(%error, "retention pass failed");
            }
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
