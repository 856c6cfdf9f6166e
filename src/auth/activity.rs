//! Session activity for clients that never refresh (the `realworld` client profile).
//!
//! Guards against a forgotten session living on: under that profile an access token lives as
//! long as its session may, so the session's idle timeout cannot ride on the refresh (which
//! such clients never call) nor on the token's expiry. Instead every use of a token is a use
//! of its session, noted here in memory, and a token whose session went unused longer than
//! the idle timeout is refused.
//!
//! Checking stays free of database reads on the path every request takes: a session seen
//! within the idle timeout (by this instance, or by the token's own issuing, `iat`) passes
//! at once. Only a session that looks idle from here is looked up, because another instance
//! may have served it meanwhile: each instance writes its sessions' last use to the
//! `sessions` table in batches (every [`FLUSH_INTERVAL`], and once more at shutdown), so the
//! database knows every instance's uses up to one batch ago. A session therefore ends after
//! its idle timeout, at most one batch interval early when its last use was on another
//! instance that had not yet written it, never late. Revocation is not this module's job:
//! [`super::revocations`] still stops a revoked session's tokens at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use crate::clock::{Clock, UnixMillis};
use crate::store::Store;

/// How often each instance writes its sessions' last use to the database: a session used
/// last on another instance may end up to this much early. The idle timeout is at least
/// 15 minutes (the configuration's rule), thirty times this.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(30);
/// How often the writer looks whether a batch is due (by the injected clock, so tests that
/// move the clock see the batch written within this much real time).
const TICK: Duration = Duration::from_secs(1);

/// The last use of each session this instance has served. Cheap to clone: the map is shared.
#[derive(Clone)]
pub struct Activity {
    seen: Arc<Mutex<HashMap<String, Seen>>>,
    idle_ms: i64,
    last_flush: Arc<AtomicI64>,
    clock: Arc<dyn Clock>,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    at: UnixMillis,
    /// Whether `at` is in the database already.
    saved: bool,
}

impl Activity {
    pub fn new(idle_timeout: Duration, clock: Arc<dyn Clock>) -> Self {
        let now = clock.now();
        Self {
            seen: Arc::default(),
            idle_ms: i64::try_from(idle_timeout.as_millis()).unwrap_or(i64::MAX),
            last_flush: Arc::new(AtomicI64::new(now)),
            clock,
        }
    }

    /// Whether the session of a token issued at `issued_at` was used within the idle
    /// timeout; if so, this use counts. Reads the database only when the session looks idle
    /// from this instance.
    pub async fn admit(
        &self,
        store: &Store,
        session_id: &str,
        issued_at: UnixMillis,
    ) -> Result<bool, sqlx::Error> {
        let now = self.clock.now();
        let seen_here = self
            .lock()
            .get(session_id)
            .map_or(issued_at, |seen| seen.at);
        if now.saturating_sub(seen_here.max(issued_at)) <= self.idle_ms {
            self.note(session_id, now);
            return Ok(true);
        }
        // Idle as far as this instance knows; another one may have served it since.
        let Some(saved) = store.session_last_seen(session_id).await? else {
            return Ok(false);
        };
        if now.saturating_sub(saved) > self.idle_ms {
            return Ok(false);
        }
        self.note(session_id, now);
        Ok(true)
    }

    fn note(&self, session_id: &str, now: UnixMillis) {
        let mut seen = self.lock();
        match seen.get_mut(session_id) {
            Some(entry) if entry.at >= now => {}
            Some(entry) => {
                *entry = Seen {
                    at: now,
                    saved: false,
                }
            }
            None => {
                seen.insert(
                    session_id.to_owned(),
                    Seen {
                        at: now,
                        saved: false,
                    },
                );
            }
        }
    }

    /// Writes the uses not yet in the database, in one batch, and forgets sessions idle
    /// longer than the timeout (their next use, if any, asks the database). Answers how many
    /// sessions were written.
    pub async fn flush(&self, store: &Store) -> Result<usize, sqlx::Error> {
        let now = self.clock.now();
        self.last_flush.store(now, Ordering::Relaxed);
        let batch = self.take_batch(now);
        if batch.is_empty() {
            return Ok(0);
        }
        if let Err(error) = store.note_sessions_seen(&batch).await {
            self.give_back(&batch);
            return Err(error);
        }
        Ok(batch.len())
    }

    /// A batch the database did not take: the next batch tries again, unless a newer use
    /// replaced an entry meanwhile (that one is unwritten already).
    fn give_back(&self, batch: &[(String, UnixMillis)]) {
        let mut seen = self.lock();
        for (id, at) in batch {
            if let Some(entry) = seen.get_mut(id)
                && entry.at == *at
            {
                entry.saved = false;
            }
        }
    }

    /// The uses not yet in the database, now marked as written. Sessions written already and
    /// idle longer than the timeout are forgotten first, so the map holds only the sessions
    /// used within one idle timeout, however many come and go.
    fn take_batch(&self, now: UnixMillis) -> Vec<(String, UnixMillis)> {
        let mut seen = self.lock();
        seen.retain(|_, entry| !entry.saved || now.saturating_sub(entry.at) <= self.idle_ms);
        seen.iter_mut()
            .filter(|(_, entry)| !entry.saved)
            .map(|(id, entry)| {
                entry.saved = true;
                (id.clone(), entry.at)
            })
            .collect()
    }

    fn flush_due(&self) -> bool {
        let interval = i64::try_from(FLUSH_INTERVAL.as_millis()).unwrap_or(i64::MAX);
        self.clock
            .now()
            .saturating_sub(self.last_flush.load(Ordering::Relaxed))
            >= interval
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Seen>> {
        // Every update is complete under the lock: a poisoned map is still consistent.
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Writes batches while the server runs, and the last one when `stop` is set.
pub async fn persist(activity: Activity, store: Store, mut stop: watch::Receiver<bool>) {
    loop {
        let stopping = tokio::select! {
            () = tokio::time::sleep(TICK) => false,
            _ = stop.wait_for(|stop| *stop) => true,
        };
        if stopping || activity.flush_due() {
            match activity.flush(&store).await {
                Ok(_) => {}
                Err(sqlx::Error::PoolClosed) => return,
                Err(error) => {
                    tracing::warn!(%error, "writing session activity failed; retrying");
                }
            }
        }
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn activity(idle_timeout: Duration) -> Activity {
        Activity::new(idle_timeout, Arc::new(ManualClock::starting_now()))
    }

    /// The next batch at `now`, in id order.
    fn sorted_batch(activity: &Activity, now: UnixMillis) -> Vec<(String, UnixMillis)> {
        let mut batch = activity.take_batch(now);
        batch.sort();
        batch
    }

    #[test]
    fn a_use_replaces_an_older_one_and_marks_it_unsaved() {
        let activity = activity(Duration::from_secs(600));
        activity.note("s1", 2_000);
        activity.note("s1", 1_000);
        let seen = activity.lock().get("s1").copied();
        assert!(seen.is_some_and(|seen| seen.at == 2_000 && !seen.saved));
    }

    /// Memory exhaustion: one entry per session ever used would grow without bound. A batch
    /// forgets what is written and idle past the timeout, and never what is not yet written.
    #[test]
    fn a_batch_forgets_written_sessions_idle_past_the_timeout_and_keeps_the_rest() {
        let activity = activity(Duration::from_secs(1));
        activity.note("old", 1_000);
        activity.note("recent", 5_000);
        assert_eq!(
            sorted_batch(&activity, 5_000),
            [("old".to_owned(), 1_000), ("recent".to_owned(), 5_000)],
            "unwritten uses are written, however old"
        );
        let tracked = |activity: &Activity| {
            let mut ids: Vec<String> = activity.lock().keys().cloned().collect();
            ids.sort();
            ids
        };
        assert!(
            activity.take_batch(5_500).is_empty(),
            "nothing new to write"
        );
        assert_eq!(
            tracked(&activity),
            ["recent"],
            "written and idle 4.5 s: forgotten"
        );
        activity.take_batch(6_000);
        assert_eq!(
            tracked(&activity),
            ["recent"],
            "idle exactly the timeout: kept"
        );
        activity.take_batch(6_001);
        assert!(
            tracked(&activity).is_empty(),
            "idle past the timeout: forgotten"
        );
    }

    /// A lost write would let another instance find the session idle before its time: a
    /// batch the database refused is written by the next one.
    #[test]
    fn a_batch_the_database_refused_is_written_by_the_next() {
        let activity = activity(Duration::from_secs(60));
        activity.note("s1", 1_000);
        activity.note("s2", 1_000);
        let refused = sorted_batch(&activity, 1_000);
        activity.note("s2", 2_000);
        activity.give_back(&refused);
        assert_eq!(
            sorted_batch(&activity, 2_000),
            [("s1".to_owned(), 1_000), ("s2".to_owned(), 2_000)],
            "the refused use again, and the newer use instead of the older"
        );
    }
}
