//! Sessions and their refresh tokens. A session is one refresh family: revoking it kills
//! every refresh token rotated from its first one, and (through the in-memory revocation
//! set) every access token that names it.

use sqlx::FromRow;

use super::devices::{DeviceSeen, remember_device};
use super::{Pool, Store, execute, matchable, on_pool};
use crate::clock::UnixMillis;

/// PostgreSQL channel that carries revoked session ids between instances.
pub const REVOCATION_CHANNEL: &str = "aerie_revocations";
/// Session ids per notification: keeps each payload far below PostgreSQL's 8000-byte limit.
const IDS_PER_NOTIFICATION: usize = 100;

/// A session about to open: whose, when, from where, the hash of its first refresh token
/// (the token itself goes to the client only), the device it comes from and the account's
/// session cap.
pub struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: i64,
    pub now: UnixMillis,
    pub client_ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub refresh_hash: &'a str,
    /// The client's coarse device fingerprint, remembered on the account, which keeps its
    /// `devices_kept` most recently used.
    pub device: &'a str,
    pub devices_kept: i64,
    pub cap: LiveCap,
}

/// Which of an account's sessions count as live (seen at or after `seen_since`, created at or
/// after `created_since`, not revoked), and how many of them it may hold.
#[derive(Debug, Clone, Copy)]
pub struct LiveCap {
    pub seen_since: UnixMillis,
    pub created_since: UnixMillis,
    pub max_live: i64,
}

/// What opening a session found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedSession {
    pub device: DeviceSeen,
    /// The account's oldest live sessions beyond its cap, never the one just opened: for the
    /// caller to end (and announce) through the revocation path.
    pub beyond_cap: Vec<String>,
}

/// A presented refresh token, joined with its session.
#[derive(Debug, Clone, FromRow)]
pub struct RefreshRow {
    pub session_id: String,
    pub rotated_at: Option<i64>,
    /// The hash of the successor its rotation chose; `None` until rotated.
    pub successor_hash: Option<String>,
    pub user_id: i64,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub revoked_at: Option<i64>,
    /// The session's last password authentication (its login, or a later step-up).
    pub authenticated_at: i64,
    /// Where the session was last used from (its opening address until a refresh).
    pub last_ip: Option<String>,
}

#[derive(Debug, Clone, FromRow)]
pub struct SessionRow {
    pub id: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    /// Where and with what it was last used (its opening values until a refresh).
    pub last_ip: Option<String>,
    pub last_user_agent: Option<String>,
}

/// Which sessions a retention pass deletes: revoked before, last seen before, or created
/// before these times.
#[derive(Debug, Clone, Copy)]
pub struct SessionCutoffs {
    pub revoked_before: UnixMillis,
    pub seen_before: UnixMillis,
    pub created_before: UnixMillis,
}

/// What a retention pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub sessions: u64,
    pub refresh_tokens: u64,
}

/// Ends a user's live sessions but the one with id `$3` (none when NULL), at `$2`.
pub(super) const REVOKE_USER_SESSIONS: &str = "UPDATE sessions SET revoked_at = $2
    WHERE user_id = $1 AND revoked_at IS NULL AND ($3 IS NULL OR id <> $3) RETURNING id";

impl Store {
    /// Deletes the sessions past the cutoffs and their refresh tokens, in one transaction.
    pub async fn prune_sessions(&self, cutoffs: &SessionCutoffs) -> Result<Pruned, sqlx::Error> {
        const EXPIRED: &str = "revoked_at < $1 OR last_seen_at < $2 OR created_at < $3";
        let tokens = format!(
            "DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions WHERE {EXPIRED})"
        );
        let sessions = format!("DELETE FROM sessions WHERE {EXPIRED}");
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let mut pruned = Pruned::default();
            for (sql, count) in [
                (&tokens, &mut pruned.refresh_tokens),
                (&sessions, &mut pruned.sessions),
            ] {
                *count = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(cutoffs.revoked_before)
                    .bind(cutoffs.seen_before)
                    .bind(cutoffs.created_before)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
            Ok(pruned)
        })
    }

    /// Opens a session with its first refresh token, marks the login on the account (what
    /// dormancy is measured from), remembers the device and lists the sessions beyond the
    /// cap, in one transaction: a session never exists without the token that refreshes it,
    /// and a login costs one use of a connection, not six. The first statement writes, so no
    /// SQLite read in it turns into a write that another writer's commit has outdated.
    pub async fn open_session(
        &self,
        session: NewSession<'_>,
    ) -> Result<OpenedSession, sqlx::Error> {
        let NewSession {
            id,
            user_id,
            now,
            client_ip,
            user_agent,
            refresh_hash,
            device,
            devices_kept,
            cap,
        } = session;
        let open =
            "INSERT INTO sessions (id, user_id, created_at, last_seen_at, authenticated_at, client_ip, user_agent)
                   VALUES ($1, $2, $3, $3, $3, $4, $5)";
        let login = "UPDATE users SET last_login_at = $2 WHERE id = $1";
        let refresh =
            "INSERT INTO refresh_tokens (token_hash, session_id, issued_at) VALUES ($1, $2, $3)";
        // Newest first, so what lies past the cap (less this session) is the oldest; LIMIT
        // because PostgreSQL and SQLite share no OFFSET without one.
        let beyond_cap = "SELECT id FROM sessions
                   WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL
                         AND last_seen_at >= $3 AND created_at >= $4
                   ORDER BY created_at DESC, id LIMIT $5 OFFSET $6";
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(open)
                .bind(id)
                .bind(user_id)
                .bind(now)
                .bind(client_ip)
                .bind(user_agent)
                .execute(&mut *tx)
                .await?;
            sqlx::query(login)
                .bind(user_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(refresh)
                .bind(refresh_hash)
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let device = remember_device!(&mut *tx, user_id, device, now, devices_kept);
            let beyond_cap = sqlx::query_scalar(beyond_cap)
                .bind(user_id)
                .bind(id)
                .bind(cap.seen_since)
                .bind(cap.created_since)
                .bind(i64::MAX)
                .bind(cap.max_live.saturating_sub(1))
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(OpenedSession { device, beyond_cap })
        })
    }

    /// Stores a token's successor, once: the rotation and every replay inside the grace
    /// window insert the same row, and only the first insert counts.
    pub async fn insert_successor_token(
        &self,
        token_hash: &str,
        session_id: &str,
        now: UnixMillis,
    ) -> Result<(), sqlx::Error> {
        let sql =
            "INSERT INTO refresh_tokens (token_hash, session_id, issued_at) VALUES ($1, $2, $3)
                   ON CONFLICT (token_hash) DO NOTHING";
        execute!(self, sql, token_hash, session_id, now)
    }

    pub async fn refresh_token(&self, token_hash: &str) -> Result<Option<RefreshRow>, sqlx::Error> {
        let sql = "SELECT r.session_id, r.rotated_at, r.successor_hash, s.user_id, s.created_at, s.last_seen_at, s.revoked_at,
                          COALESCE(s.authenticated_at, s.created_at) AS authenticated_at,
                          COALESCE(s.last_ip, s.client_ip) AS last_ip
                   FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id
                   WHERE r.token_hash = $1";
        on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(token_hash)
            .fetch_optional(pool)
            .await)
    }

    /// Marks a token used and names its successor. Only one caller can win: the update is
    /// conditional, so two racing refreshes cannot both see an unused token.
    pub async fn mark_refresh_token_rotated(
        &self,
        token_hash: &str,
        successor_hash: &str,
        now: UnixMillis,
    ) -> Result<bool, sqlx::Error> {
        let sql = "UPDATE refresh_tokens SET rotated_at = $2, successor_hash = $3
                   WHERE token_hash = $1 AND rotated_at IS NULL";
        let affected = on_pool!(self, |pool| sqlx::query(sql)
            .bind(token_hash)
            .bind(now)
            .bind(successor_hash)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(affected == 1)
    }

    /// Records a fresh password authentication in one of `user_id`'s live sessions (a
    /// step-up); answers when the session began, or none when it is not theirs or is revoked.
    pub async fn mark_session_authenticated(
        &self,
        id: &str,
        user_id: i64,
        now: UnixMillis,
    ) -> Result<Option<UnixMillis>, sqlx::Error> {
        let sql = "UPDATE sessions SET authenticated_at = $3
                   WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING created_at";
        on_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(id)
            .bind(user_id)
            .bind(now)
            .fetch_optional(pool)
            .await)
    }

    /// When a live session was last used, as the database knows it (the `realworld` client
    /// profile's idle check asks when its own instance has not seen the session lately).
    pub async fn session_last_seen(&self, id: &str) -> Result<Option<UnixMillis>, sqlx::Error> {
        if !matchable(id) {
            return Ok(None);
        }
        let sql = "SELECT last_seen_at FROM sessions WHERE id = $1 AND revoked_at IS NULL";
        on_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(id)
            .fetch_optional(pool)
            .await)
    }

    /// Moves each session's last use forward to the time given (never back), in one
    /// transaction: one instance's batch of the uses it served.
    pub async fn note_sessions_seen(
        &self,
        seen: &[(String, UnixMillis)],
    ) -> Result<(), sqlx::Error> {
        let sql = "UPDATE sessions SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $2";
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            for (id, at) in seen {
                sqlx::query(sql)
                    .bind(id.as_str())
                    .bind(*at)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        })
    }

    /// Revokes one of `user_id`'s live sessions; answers the ids revoked (none when the
    /// session is unknown, someone else's or already revoked).
    pub async fn revoke_session(
        &self,
        id: &str,
        user_id: i64,
        now: UnixMillis,
    ) -> Result<Vec<String>, sqlx::Error> {
        if !matchable(id) {
            return Ok(Vec::new());
        }
        let sql = "UPDATE sessions SET revoked_at = $3
                   WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING id";
        on_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(id)
            .bind(user_id)
            .bind(now)
            .fetch_all(pool)
            .await)
    }

    /// Revokes every live session of a user, except `keep` when given.
    pub async fn revoke_user_sessions(
        &self,
        user_id: i64,
        keep: Option<&str>,
        now: UnixMillis,
    ) -> Result<Vec<String>, sqlx::Error> {
        on_pool!(self, |pool| sqlx::query_scalar(REVOKE_USER_SESSIONS)
            .bind(user_id)
            .bind(now)
            .bind(keep)
            .fetch_all(pool)
            .await)
    }

    /// A user's sessions that are neither revoked nor expired, newest first.
    pub async fn live_sessions(
        &self,
        user_id: i64,
        seen_since: UnixMillis,
        created_since: UnixMillis,
    ) -> Result<Vec<SessionRow>, sqlx::Error> {
        let sql = "SELECT id, created_at, last_seen_at, client_ip, user_agent,
                          COALESCE(last_ip, client_ip) AS last_ip,
                          COALESCE(last_user_agent, user_agent) AS last_user_agent
                   FROM sessions
                   WHERE user_id = $1 AND revoked_at IS NULL AND last_seen_at >= $2 AND created_at >= $3
                   ORDER BY created_at DESC, id";
        on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(user_id)
            .bind(seen_since)
            .bind(created_since)
            .fetch_all(pool)
            .await)
    }

    /// Sessions revoked at or after `since`, with the time of revocation.
    pub async fn revoked_since(
        &self,
        since: UnixMillis,
    ) -> Result<Vec<(String, i64)>, sqlx::Error> {
        let sql = "SELECT id, revoked_at FROM sessions WHERE revoked_at >= $1";
        on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(since)
            .fetch_all(pool)
            .await)
    }

    /// Tells the other instances (PostgreSQL only; an SQLite database has one) which sessions
    /// were revoked.
    pub async fn notify_revoked(&self, ids: &[String]) -> Result<(), sqlx::Error> {
        let Pool::Postgres(pool) = &self.pool else {
            return Ok(());
        };
        for chunk in ids.chunks(IDS_PER_NOTIFICATION) {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(REVOCATION_CHANNEL)
                .bind(chunk.join(","))
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// Where an SQLite server starts following the revocation log: its last `seq` (0 when
    /// empty). `None` on PostgreSQL, which follows revocations through LISTEN instead.
    pub async fn revocation_log_head(&self) -> Result<Option<i64>, sqlx::Error> {
        let Pool::Sqlite(pool) = &self.pool else {
            return Ok(None);
        };
        let sql = "SELECT COALESCE(MAX(seq), 0) FROM session_revocations";
        sqlx::query_scalar(sql).fetch_one(pool).await.map(Some)
    }

    /// Revocations logged after `seq` (SQLite only; empty on PostgreSQL), oldest first, at
    /// most `limit`: `(seq, session id, revoked at)`.
    pub async fn revocations_after(
        &self,
        seq: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String, i64)>, sqlx::Error> {
        let Pool::Sqlite(pool) = &self.pool else {
            return Ok(Vec::new());
        };
        let sql = "SELECT seq, session_id, revoked_at FROM session_revocations
                   WHERE seq > $1 ORDER BY seq LIMIT $2";
        sqlx::query_as(sql)
            .bind(seq)
            .bind(limit)
            .fetch_all(pool)
            .await
    }

    /// Forgets logged revocations older than `before` (SQLite only). `AUTOINCREMENT` never
    /// hands out a `seq` again, so no follower's cursor can skip a later row.
    pub async fn prune_revocation_log(&self, before: UnixMillis) -> Result<(), sqlx::Error> {
        let Pool::Sqlite(pool) = &self.pool else {
            return Ok(());
        };
        let sql = "DELETE FROM session_revocations WHERE revoked_at < $1";
        sqlx::query(sql).bind(before).execute(pool).await.map(drop)
    }

    /// The PostgreSQL pool, for LISTEN; `None` on SQLite.
    pub fn postgres_pool(&self) -> Option<&sqlx::PgPool> {
        match &self.pool {
            Pool::Postgres(pool) => Some(pool),
            Pool::Sqlite(_) => None,
        }
    }
}
