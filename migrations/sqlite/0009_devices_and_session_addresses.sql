-- New-device and anomaly events (issue 14.5).
--
-- Where each session was last used from: the refresh that moves it to another network records
-- `session_ip_changed`, and `GET /api/auth/sessions` shows it. The opening address and user
-- agent stay in `client_ip` and `user_agent`; sessions from before this migration read these
-- as those.
ALTER TABLE sessions ADD COLUMN last_ip TEXT;
ALTER TABLE sessions ADD COLUMN last_user_agent TEXT;

-- The devices an account has logged in from, coarsely: a SHA-256 of the user agent's family
-- and the network prefix (IPv4 /24, IPv6 /48), never the raw values. A login from one not
-- listed records `login_new_device`. At most a few dozen rows per account (the oldest go).
CREATE TABLE known_devices (
    user_id        INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device         TEXT    NOT NULL,
    first_seen_at  BIGINT  NOT NULL,
    last_seen_at   BIGINT  NOT NULL,
    PRIMARY KEY (user_id, device)
);
