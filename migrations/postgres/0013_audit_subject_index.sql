-- Data export (issue 16.5): `GET /api/user/export` lists the audit events about the caller;
-- this keeps that one index range instead of a scan of the whole trail.
CREATE INDEX audit_log_subject ON audit_log (subject_id);
