//! Revoked sessions, held in memory so that checking a token never reads the database.
//!
//! Guards against a stolen or logged-out access token staying usable until it expires. An
//! access token names its session (`sid`); the session ids revoked within the last access-token
//! lifetime (plus clock leeway) are kept here, loaded from the database at start, added to on
//! every revocation, and learnt from the other processes sharing the database (other
//! instances, the `aerie` CLI): on PostgreSQL through LISTEN/NOTIFY, on SQLite by reading a
//! trigger-filled revocation log once a second. Either way a revocation anywhere is honoured
//! by every server within 2 s. Older revocations need no entry: every token naming those
//! sessions has expired anyway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::watch;

use crate::clock::{Clock, UnixMillis};
use crate::store::{REVOCATION_CHANNEL, Store};

/// Tolerated clock skew on token expiry, plus a margin, beyond the access-token lifetime.
const RETENTION_MARGIN: Duration = Duration::from_secs(60);
/// Longest session id accepted from a notification; ours are 32 characters.
const MAX_SESSION_ID_CHARS: usize = 64;
/// How often an SQLite server reads the revocation log: revocations by other processes (the
/// CLI) take effect within this plus one query, inside the 2 s both engines promise.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Log rows read per query; a poll reads batches until the log is worked off, so a burst
/// of revocations (an admin disabling many accounts) delays none past the next poll.
const POLL_BATCH: i64 = 1000;
/// At most this many batches a poll (100,000 rows; a larger burst, such as `aerie sessions
/// revoke --all` on a large install, is worked off over the next polls), so a log that
/// never seems to end cannot keep a poll from sleeping until the next.
const POLL_MAX_BATCHES: u32 = 100;

/// The set of revoked session ids. Cheap to clone: the set is shared.
#[derive(Clone)]
pub struct Revocations {
    /// Session id → time after which no token naming it can still be valid.
    revoked: Arc<Mutex<HashMap<String, UnixMillis>>>,
    retention_ms: i64,
    clock: Arc<dyn Clock>,
}

/// How long a revocation must be remembered: until every access token of its session has
/// expired, on any instance. Retention keeps revoked sessions and the SQLite log this long.
pub fn revocation_retention(access_token_ttl: Duration) -> Duration {
    access_token_ttl + RETENTION_MARGIN
}

impl Revocations {
    pub fn new(access_token_ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        let retention = revocation_retention(access_token_ttl);
        Self {
            revoked: Arc::default(),
            retention_ms: i64::try_from(retention.as_millis()).unwrap_or(i64::MAX),
            clock,
        }
    }

    pub fn is_revoked(&self, session_id: &str) -> bool {
        self.lock().contains_key(session_id)
    }

    /// Records revocations; forgets those whose tokens have all expired.
    pub fn insert<'a>(
        &self,
        session_ids: impl IntoIterator<Item = &'a str>,
        revoked_at: UnixMillis,
    ) {
        self.insert_each(session_ids.into_iter().map(|id| (id, revoked_at)));
    }

    /// Records revocations read from the database, each at its own time. The expired are
    /// swept once for the whole batch, not once a row: a burst of thousands costs linear
    /// time under the lock every request's check takes, not quadratic.
    fn insert_each<'a>(&self, revocations: impl IntoIterator<Item = (&'a str, UnixMillis)>) {
        let now = self.clock.now();
        let mut revoked = self.lock();
        revoked.retain(|_, until| *until > now);
        for (id, revoked_at) in revocations {
            revoked.insert(id.to_owned(), revoked_at.saturating_add(self.retention_ms));
        }
    }

    /// Revokes in memory and tells the other instances. The caller has already marked the
    /// sessions revoked in the database, the source of truth.
    pub async fn announce(&self, store: &Store, session_ids: &[String]) -> Result<(), sqlx::Error> {
        self.insert(session_ids.iter().map(String::as_str), self.clock.now());
        crate::metrics::count_sessions_revoked(session_ids.len());
        store.notify_revoked(session_ids).await
    }

    /// Loads the revocations recent enough to matter from the database.
    pub async fn load(&self, store: &Store) -> Result<(), sqlx::Error> {
        let since = self.clock.now().saturating_sub(self.retention_ms);
        let rows = store.revoked_since(since).await?;
        self.insert_each(
            rows.iter()
                .map(|(id, revoked_at)| (id.as_str(), *revoked_at)),
        );
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, UnixMillis>> {
        // A panic while holding the lock cannot leave the map half-updated in a way that
        // matters (inserts and retains are each complete), so a poisoned lock is still used.
        self.revoked.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How this server hears of revocations made by other processes: other instances, and the
/// `aerie` CLI run against the same database.
pub enum Follower {
    /// PostgreSQL: LISTEN on the revocation channel.
    Listen(PgListener),
    /// SQLite: poll the revocation log (filled by a trigger, whoever revoked) after `seq`.
    Poll { after: i64 },
}

/// Starts following other processes' revocations. Following begins before the caller loads
/// the set from the database, so no revocation falls between the two.
pub async fn subscribe(store: &Store) -> Result<Follower, sqlx::Error> {
    if let Some(pool) = store.postgres_pool() {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(REVOCATION_CHANNEL).await?;
        return Ok(Follower::Listen(listener));
    }
    let after = store.revocation_log_head().await?.unwrap_or(0);
    Ok(Follower::Poll { after })
}

/// Applies other processes' revocations until `stop` is set or the pool closes.
pub async fn follow(
    follower: Follower,
    revocations: Revocations,
    store: Store,
    stop: watch::Receiver<bool>,
) {
    match follower {
        Follower::Listen(listener) => listen(listener, revocations, store, stop).await,
        Follower::Poll { after } => poll(after, revocations, store, stop).await,
    }
}

/// Applies notifications. After a lost connection (notifications sent meanwhile are gone)
/// the set is reloaded from the database.
async fn listen(
    mut listener: PgListener,
    revocations: Revocations,
    store: Store,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let received = tokio::select! {
            received = listener.try_recv() => received,
            _ = stop.wait_for(|stop| *stop) => return,
        };
        match received {
            Ok(Some(notification)) => {
                let ids = notification
                    .payload()
                    .split(',')
                    .filter(|id| !id.is_empty() && id.len() <= MAX_SESSION_ID_CHARS);
                revocations.insert(ids, revocations.clock.now());
            }
            Ok(None) => {
                tracing::warn!("revocation listener reconnected; reloading revoked sessions");
                if let Err(error) = revocations.load(&store).await {
                    tracing::error!(%error, "reloading revoked sessions failed");
                }
            }
            Err(sqlx::Error::PoolClosed) => return,
            Err(error) => {
                tracing::error!(%error, "revocation listener failed; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Reads the revocation log every [`POLL_INTERVAL`] from the last `seq` seen, so a
/// revocation by the CLI reaches this server within about a second. Retention
/// ([`crate::services::retention`]) deletes the rows older than any token they could stop.
async fn poll(
    mut after: i64,
    revocations: Revocations,
    store: Store,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(POLL_INTERVAL) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        match read_revocation_log(&store, &revocations, &mut after).await {
            Ok(()) => {}
            Err(sqlx::Error::PoolClosed) => return,
            Err(error) => tracing::error!(%error, "reading the revocation log failed; retrying"),
        }
    }
}

/// Applies every logged revocation after `after`, a batch at a time, and moves `after` past
/// them.
async fn read_revocation_log(
    store: &Store,
    revocations: &Revocations,
    after: &mut i64,
) -> Result<(), sqlx::Error> {
    for _ in 0..POLL_MAX_BATCHES {
        let rows = store.revocations_after(*after, POLL_BATCH).await?;
        // Until a batch comes back empty: one query when nothing changed, as before.
        if rows.is_empty() {
            return Ok(());
        }
        revocations.insert_each(rows.iter().map(|(_, id, at)| (id.as_str(), *at)));
        *after = rows
            .iter()
            .fold(*after, |after, (seq, _, _)| after.max(*seq));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn revocations_are_kept_until_their_tokens_expire() {
        let clock = Arc::new(ManualClock::starting_now());
        let revocations = Revocations::new(Duration::from_secs(900), clock.clone());
        revocations.insert(["s1"], clock.now());
        assert!(revocations.is_revoked("s1"));
        assert!(!revocations.is_revoked("s2"));
        clock.advance(Duration::from_secs(900));
        revocations.insert(["s2"], clock.now());
        assert!(revocations.is_revoked("s1"), "a token may still be valid");
        clock.advance(RETENTION_MARGIN + Duration::from_secs(1));
        revocations.insert(["s3"], clock.now());
        assert!(
            !revocations.is_revoked("s1"),
            "every token of s1 has expired"
        );
        assert!(revocations.is_revoked("s2"));
    }
}
