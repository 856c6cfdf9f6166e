-- Refresh tokens: only a SHA-256 hash of each opaque token is stored. A session is one refresh
-- family: every token rotated from the one issued at login names the same session. A rotated
-- token keeps its row (rotated_at set) so presenting it again is recognised as reuse.
CREATE TABLE refresh_tokens (
    token_hash  TEXT    PRIMARY KEY,
    session_id  TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at   BIGINT  NOT NULL,
    rotated_at  BIGINT
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);
CREATE INDEX sessions_revoked ON sessions (revoked_at);
