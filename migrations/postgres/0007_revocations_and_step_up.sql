-- PostgreSQL servers hear of every revocation through LISTEN/NOTIFY (channel
-- `aerie_revocations`); the revocation log of the SQLite migration of this number is not
-- needed here.

-- Step-up: when the session's user last proved who they are with a password (login,
-- registration, `POST /api/auth/step-up`). Refreshed access tokens carry it as `auth_time`,
-- so a sensitive change can ask for a recent one. Sessions from before this migration read
-- it as their login time.
ALTER TABLE sessions ADD COLUMN authenticated_at BIGINT;
