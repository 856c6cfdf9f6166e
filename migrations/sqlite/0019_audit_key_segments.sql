-- The id of the audit key the chain's next row is sealed with ('' = the first key in
-- AERIE_AUDIT_KEY_FILE). `aerie keys rotate-audit` moves it to a new key in the same
-- transaction as the `audit_key_rotated` row that names it.
ALTER TABLE audit_chain_head ADD COLUMN key_id TEXT NOT NULL DEFAULT '';
