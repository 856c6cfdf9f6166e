//! Refresh: a refresh token is exchanged for a new one in the same session family.
//!
//! Guards against stolen refresh tokens: each is single use. A rotated token presented
//! again after the grace window ([`crate::auth::SessionTimes::refresh_grace`]) is treated as
//! theft, so the whole session is revoked and a critical `refresh_reuse_detected` event names
//! it and the client's address. Within the window it is a concurrent refresh from the same client
//! (two tabs, a retried request) and gets the *same* successor its rotation chose: rotation is
//! idempotent, so a family is one chain and never forks into two live branches. The successor
//! is derived from the token under a server-held key ([`crate::auth::refresh::SuccessorKey`]),
//! and the rotated row names it, so two racing refreshes (on one instance or two) agree on it,
//! and an instance holding another key refuses rather than start a second branch.

use super::{SessionError, Sessions, Tokens, millis};
use crate::audit::{AuditEvent, EventType};
use crate::auth::refresh::{NewRefreshToken, Presented};
use crate::clock::UnixMillis;
use crate::request_context::RequestContext;
use crate::services::devices;
use crate::store::{RefreshRow, UserRow};

/// A session refreshed: its new tokens, for `user`.
pub struct Refreshed {
    pub user: UserRow,
    pub tokens: Tokens,
    /// When the session began (its absolute lifetime counts from here).
    pub session_created_at: UnixMillis,
}

impl Sessions {
    /// Rotates the presented refresh token and issues the session's next tokens.
    pub async fn refresh(
        &self,
        presented: &str,
        request: &RequestContext,
    ) -> Result<Refreshed, SessionError> {
        let presented = Presented::parse(presented).ok_or(SessionError::Unauthenticated)?;
        let row = self.presented_row(&presented).await?;
        let now = self.clock.now();
        self.check_family(&row, now, request).await?;
        let successor = self.tokens.successors.successor_of(&presented);
        let won = row.rotated_at.is_none()
            && self
                .store
                .mark_refresh_token_rotated(&presented.hash, &successor.hash, now)
                .await?;
        if !won {
            self.check_replay(
                row.rotated_at.is_none(),
                &presented,
                &successor,
                now,
                request,
            )
            .await?;
        }
        // The winner stores it; a replay stores it again in case the winner has not yet.
        self.store
            .insert_successor_token(&successor.hash, &row.session_id, now)
            .await?;
        let user = match self.store.user_by_id(row.user_id).await? {
            Some(user) if user.disabled_at.is_none() => user,
            _ => return Err(SessionError::Unauthenticated),
        };
        self.store
            .touch_session_from(
                &row.session_id,
                now,
                request.client.ip.as_deref(),
                request.client.user_agent.as_deref(),
            )
            .await?;
        let previous = row.last_ip.as_deref();
        devices::note_session_used(&self.recorder, user.id, &row.session_id, previous, request)
            .await?;
        let tokens = self.tokens_with(
            &user,
            &row.session_id,
            row.created_at,
            successor,
            row.authenticated_at,
        );
        let rotated = AuditEvent::new(EventType::RefreshRotated)
            .actor(user.id)
            .subject(user.id)
            .session(row.session_id.clone())
            .from_request(request);
        self.recorder.record(rotated).await?;
        Ok(Refreshed {
            user,
            tokens,
            session_created_at: row.created_at,
        })
    }

    async fn presented_row(&self, presented: &Presented) -> Result<RefreshRow, SessionError> {
        self.store
            .refresh_token(&presented.hash)
            .await?
            .ok_or(SessionError::Unauthenticated)
    }

    /// Lets a token that was already rotated through only if it is a replay inside the grace
    /// window and its rotation chose `successor`. `lost_race`: it looked unused but another
    /// request rotated it first, so it is read again and judged as the replay it now is.
    async fn check_replay(
        &self,
        lost_race: bool,
        presented: &Presented,
        successor: &NewRefreshToken,
        now: UnixMillis,
        request: &RequestContext,
    ) -> Result<(), SessionError> {
        let row = self.presented_row(presented).await?;
        if lost_race {
            self.check_family(&row, now, request).await?;
        }
        if row.successor_hash.as_deref() == Some(successor.hash.as_str()) {
            return Ok(());
        }
        // Rotated by a release before idempotent rotation, or by an instance deriving with
        // another key: its successor cannot be given again, and another would fork the family.
        tracing::warn!(
            session = %row.session_id,
            "refresh replay refused: its rotation chose another successor (is AERIE_AUDIT_KEY_FILE the same on every instance?)"
        );
        Err(SessionError::Unauthenticated)
    }

    /// Refuses a token whose session is over, and revokes the family on reuse.
    async fn check_family(
        &self,
        row: &RefreshRow,
        now: UnixMillis,
        request: &RequestContext,
    ) -> Result<(), SessionError> {
        if row.revoked_at.is_some() {
            return Err(SessionError::Unauthenticated);
        }
        if row
            .rotated_at
            .is_some_and(|rotated| now - rotated > millis(self.times.refresh_grace))
        {
            self.revoker
                .end_session(&row.session_id, row.user_id, now)
                .await?;
            // Whoever presented it is unknown (the thief or the rightful client): no actor.
            // The alert rule `refresh_reuse` fires on this event.
            let event = AuditEvent::new(EventType::RefreshReuseDetected)
                .subject(row.user_id)
                .session(row.session_id.clone())
                .from_request(request)
                .detail(serde_json::json!({ "sessionFamily": row.session_id }));
            self.recorder.record(event).await?;
            return Err(SessionError::Unauthenticated);
        }
        let idle = now - row.last_seen_at > millis(self.times.idle_timeout);
        let too_old = now - row.created_at > millis(self.times.max_lifetime);
        if idle || too_old {
            return Err(SessionError::Unauthenticated);
        }
        Ok(())
    }
}
