-- Revocations in commit order, for servers to follow. PostgreSQL servers hear of another
-- process's revocations through LISTEN/NOTIFY; an SQLite server (and the `aerie` CLI writing
-- to the same file) has no such channel, so each revocation is appended here by a trigger,
-- whoever wrote it, and a running server reads the rows after the last `seq` it saw, once a
-- second: an index seek that finds nothing when nothing changed. Writers to an SQLite file
-- are serialised, so `seq` grows in commit order and no row can appear behind the cursor.
CREATE TABLE session_revocations (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id  TEXT    NOT NULL,
    revoked_at  BIGINT  NOT NULL
);
CREATE TRIGGER sessions_revoked_logged
AFTER UPDATE OF revoked_at ON sessions
WHEN OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL
BEGIN
    INSERT INTO session_revocations (session_id, revoked_at) VALUES (NEW.id, NEW.revoked_at);
END;

-- Step-up: when the session's user last proved who they are with a password (login,
-- registration, `POST /api/auth/step-up`). Refreshed access tokens carry it as `auth_time`,
-- so a sensitive change can ask for a recent one. Sessions from before this migration read
-- it as their login time.
ALTER TABLE sessions ADD COLUMN authenticated_at BIGINT;
