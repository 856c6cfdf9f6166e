-- Nothing to change on PostgreSQL: its servers hear of every revocation through
-- LISTEN/NOTIFY (channel `aerie_revocations`). The SQLite migration of this number adds the
-- revocation log its servers poll instead; the number is kept in step on both engines.
SELECT 1;
