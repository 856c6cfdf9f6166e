-- Field encryption (issue 16.1): the users' emails are sealed and found by a blind index.
--
-- `email_sealed` holds the address sealed with XChaCha20-Poly1305 under AERIE_DATA_KEYS_FILE
-- (`f1.<key id>.<…>`, the column and the row id as associated data); `email_index` holds an
-- HMAC-SHA256 of the normalised address under the file's index key (`i1.<hex>`), the only
-- thing login and registration look up and keep unique. SQL cannot encrypt, so this renames
-- the columns and leaves existing rows in clear; the server seals them at its next start
-- (and `aerie migrate` does too) before it serves a request, then VACUUMs the SQLite file so
-- the old pages go. A row whose `email_index` has no `i1.` prefix is one still to be sealed.
ALTER TABLE users RENAME COLUMN email TO email_sealed;
ALTER TABLE users RENAME COLUMN email_key TO email_index;
DROP INDEX users_email_key;
CREATE UNIQUE INDEX users_email_index ON users (email_index);
