//! The devices an account has logged in from (coarse fingerprints, never raw user agents or
//! addresses), and where each session was last used from.

use super::{Store, execute};
use crate::clock::UnixMillis;

/// What remembering a login's device found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSeen {
    /// The account had no device on record (its first login, or one from before devices were
    /// recorded): nothing to compare with.
    FirstOnRecord,
    /// Not seen before on this account.
    New,
    /// Seen before.
    Known,
}

impl DeviceSeen {
    /// What remembering a device found, from its insert's `inserted` rows (none: already on
    /// record) and the account's devices `known` after it (counted only when inserted).
    pub(super) fn after_insert(inserted: u64, known: i64) -> Self {
        if inserted == 0 {
            Self::Known
        } else if known == 1 {
            // The only device is the one just inserted.
            Self::FirstOnRecord
        } else {
            Self::New
        }
    }
}

/// Records on `connection` that `user_id` logged in from `device` at `now`, keeping only its
/// `keep` most recently used devices, and evaluates to whether the device was new (a
/// [`DeviceSeen`]). Part of opening a session ([`Store::open_session`]); a macro because
/// the statements run on either engine's connection. Inserting first tells a known device
/// from a new one by the statement that records a new one.
macro_rules! remember_device {
    ($connection:expr, $user_id:expr, $device:expr, $now:expr, $keep:expr) => {{
        let insert = "INSERT INTO known_devices (user_id, device, first_seen_at, last_seen_at)
                      VALUES ($1, $2, $3, $3) ON CONFLICT (user_id, device) DO NOTHING";
        let touch = "UPDATE known_devices SET last_seen_at = $3 WHERE user_id = $1 AND device = $2";
        let count = "SELECT COUNT(*) FROM known_devices WHERE user_id = $1";
        let prune = "DELETE FROM known_devices WHERE user_id = $1 AND device NOT IN
                       (SELECT device FROM known_devices WHERE user_id = $1
                        ORDER BY last_seen_at DESC, device LIMIT $2)";
        let inserted = sqlx::query(insert)
            .bind($user_id)
            .bind($device)
            .bind($now)
            .execute($connection)
            .await?
            .rows_affected();
        let mut known: i64 = 0;
        if inserted == 0 {
            sqlx::query(touch)
                .bind($user_id)
                .bind($device)
                .bind($now)
                .execute($connection)
                .await?;
        } else {
            known = sqlx::query_scalar(count)
                .bind($user_id)
                .fetch_one($connection)
                .await?;
            sqlx::query(prune)
                .bind($user_id)
                .bind($keep)
                .execute($connection)
                .await?;
        }
        $crate::store::DeviceSeen::after_insert(inserted, known)
    }};
}
pub(super) use remember_device;

impl Store {
    /// Marks a session used now, from `client_ip` with `user_agent` (a refresh).
    pub async fn touch_session_from(
        &self,
        id: &str,
        now: UnixMillis,
        client_ip: Option<&str>,
        user_agent: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        let sql = "UPDATE sessions SET last_seen_at = $2, last_ip = $3, last_user_agent = $4
                   WHERE id = $1";
        execute!(self, sql, id, now, client_ip, user_agent)
    }
}
