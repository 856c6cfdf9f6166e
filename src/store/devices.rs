//! The devices an account has logged in from (coarse fingerprints, never raw user agents or
//! addresses), and where each session was last used from.

use super::{Store, execute, on_pool};
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

impl Store {
    /// Records that `user_id` logged in from `device` now, keeping only its `keep` most
    /// recently used devices, and says whether the device was new.
    pub async fn remember_device(
        &self,
        user_id: i64,
        device: &str,
        now: UnixMillis,
        keep: i64,
    ) -> Result<DeviceSeen, sqlx::Error> {
        let count = "SELECT COUNT(*) FROM known_devices WHERE user_id = $1";
        let known: i64 = on_pool!(self, |pool| sqlx::query_scalar(count)
            .bind(user_id)
            .fetch_one(pool)
            .await)?;
        let insert = "INSERT INTO known_devices (user_id, device, first_seen_at, last_seen_at)
                      VALUES ($1, $2, $3, $3) ON CONFLICT (user_id, device) DO NOTHING";
        let inserted = on_pool!(self, |pool| sqlx::query(insert)
            .bind(user_id)
            .bind(device)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        if inserted == 0 {
            let touch =
                "UPDATE known_devices SET last_seen_at = $3 WHERE user_id = $1 AND device = $2";
            execute!(self, touch, user_id, device, now)?;
            return Ok(DeviceSeen::Known);
        }
        let prune = "DELETE FROM known_devices WHERE user_id = $1 AND device NOT IN
                       (SELECT device FROM known_devices WHERE user_id = $1
                        ORDER BY last_seen_at DESC, device LIMIT $2)";
        execute!(self, prune, user_id, keep)?;
        Ok(if known == 0 {
            DeviceSeen::FirstOnRecord
        } else {
            DeviceSeen::New
        })
    }

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
