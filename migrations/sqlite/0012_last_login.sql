-- Dormant accounts (issue 16.5): when each account last logged in, kept on the account so it
-- survives the pruning of its sessions (`aerie accounts dormant --days N` reads it). Filled
-- from the sessions still held; an account with none counts from its creation.
ALTER TABLE users ADD COLUMN last_login_at BIGINT;
UPDATE users SET last_login_at = (SELECT MAX(s.created_at) FROM sessions s WHERE s.user_id = users.id);
