-- Account lifecycle by email (issue 15).
--
-- `mail_outbox`: each mail a change causes is written here in the same transaction as the
-- change; a background sender delivers it and deletes the row (at-least-once). The
-- recipient and the payload (the template's values, a link's token among them) are sealed
-- under AERIE_DATA_KEYS_FILE with the row id as associated data, so a copy of the database
-- holds no address and no usable link. `next_attempt_at` is wall-clock milliseconds:
-- retries back off exponentially; `failing_since` is the first failure of the current run.
CREATE TABLE mail_outbox (
    id                INTEGER PRIMARY KEY,
    kind              TEXT    NOT NULL,
    recipient_sealed  TEXT    NOT NULL,
    payload_sealed    TEXT    NOT NULL,
    attempts          BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at   BIGINT  NOT NULL,
    created_at        BIGINT  NOT NULL,
    failing_since     BIGINT
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at);

-- Mailed single-use tokens: only the SHA-256 of the token is kept, bound to one purpose and
-- account, with its expiry; `used_at` is set by the one request that spends it. An email
-- change keeps the new address sealed (and its blind index, so a taken address is refused).
CREATE TABLE mail_tokens (
    token_hash         TEXT    PRIMARY KEY,
    purpose            TEXT    NOT NULL,
    user_id            BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    new_email_sealed   TEXT,
    new_email_index    TEXT,
    created_at         BIGINT  NOT NULL,
    expires_at         BIGINT  NOT NULL,
    used_at            BIGINT
);
CREATE INDEX mail_tokens_user ON mail_tokens (user_id);
CREATE INDEX mail_tokens_expiry ON mail_tokens (expires_at);

-- When the account's current address was proven by a mailed link; NULL: not verified.
ALTER TABLE users ADD COLUMN email_verified_at BIGINT;
