//! Refresh: a refresh token is exchanged for a new one in the same session family.
//!
//! Guards against stolen refresh tokens: each is single use. A rotated token presented
//! again after the grace window ([`crate::auth::SessionTimes::refresh_grace`]) is treated as
//! theft, so the whole session is revoked and a critical `refresh_reuse_detected` event names
//! it and the client's address. Within the window it is a concurrent refresh from the same client
//! (two tabs, a retried request) and gets its own successor in the same family.

use super::{SessionError, Sessions, Tokens, millis};
use crate::audit::{AuditEvent, EventType};
use crate::clock::UnixMillis;
use crate::request_context::RequestContext;
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
        let hash = crate::auth::refresh::hash_of_presented(presented)
            .ok_or(SessionError::Unauthenticated)?;
        let row = self
            .store
            .refresh_token(&hash)
            .await?
            .ok_or(SessionError::Unauthenticated)?;
        let now = self.clock.now();
        self.check_family(&row, now, request).await?;
        if row.rotated_at.is_none() {
            // Losing this race means another request rotated it a moment ago: a concurrent
            // refresh, inside the grace window by definition.
            self.store.mark_refresh_token_rotated(&hash, now).await?;
        }
        let user = match self.store.user_by_id(row.user_id).await? {
            Some(user) if user.disabled_at.is_none() => user,
            _ => return Err(SessionError::Unauthenticated),
        };
        self.store.touch_session(&row.session_id, now).await?;
        let tokens = self.issue_tokens(&user, &row.session_id).await?;
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
