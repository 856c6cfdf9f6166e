-- The audit trail: append-only, each row sealed by an HMAC over its content and the previous
-- row's MAC (key in a file, never in the database), so an edit, deletion, reordering or
-- insertion breaks the chain at that row. The trigger stops accidents; the chain catches
-- whoever drops it. In production the server's role gets only INSERT and SELECT here.
CREATE TABLE audit_log (
    seq         BIGINT  PRIMARY KEY,   -- 1, 2, 3, ... without gaps
    at          BIGINT  NOT NULL,      -- Unix milliseconds, UTC
    event_type  TEXT    NOT NULL,
    severity    TEXT    NOT NULL,
    actor_id    BIGINT,
    subject_id  BIGINT,
    session_id  TEXT,
    client_ip   TEXT,
    user_agent  TEXT,
    request_id  TEXT,
    detail      TEXT    NOT NULL,      -- JSON, sealed as stored (TEXT, not JSONB, keeps its bytes)
    prev_mac    TEXT    NOT NULL,
    mac         TEXT    NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);

-- One row: the chain's head. Appends lock it first (row lock), so several instances never
-- fork the chain.
CREATE TABLE audit_chain_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT  NOT NULL,
    mac  TEXT    NOT NULL
);
INSERT INTO audit_chain_head (id, seq, mac) VALUES (1, 0, '');

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
