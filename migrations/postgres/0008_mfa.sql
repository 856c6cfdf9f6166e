-- TOTP multi-factor authentication (issue 14.2).
--
-- One TOTP secret per account, sealed (XChaCha20-Poly1305 under the MFA key file, with the
-- account id and column as associated data: a sealed value copied to another row does not
-- open). `confirmed_at` is NULL while enrolment waits for its first code: MFA is on only
-- once it is set. `last_used_step` is the newest 30-second step a code was accepted for;
-- a code is accepted only for a later step, so none is accepted twice.
CREATE TABLE mfa_totp (
    user_id         BIGINT  PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret_sealed   TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    confirmed_at    BIGINT,
    last_used_step  BIGINT
);

-- Ten single-use recovery codes per account, stored as SHA-256 digests (80 random bits
-- each, so the digest cannot be reversed by guessing).
CREATE TABLE mfa_recovery_codes (
    user_id    BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT    NOT NULL,
    used_at    BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

-- Login challenges between the password and the code: SHA-256 of the value handed to the
-- client, the client fingerprint it is bound to, its expiry and the wrong codes so far.
-- Taking one deletes it, so each is used once.
CREATE TABLE mfa_challenges (
    challenge_hash  TEXT     PRIMARY KEY,
    user_id         BIGINT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_hash     TEXT     NOT NULL,
    expires_at      BIGINT   NOT NULL,
    failures        BIGINT   NOT NULL DEFAULT 0
);
CREATE INDEX mfa_challenges_expiry ON mfa_challenges (expires_at);
CREATE INDEX mfa_challenges_user ON mfa_challenges (user_id);
