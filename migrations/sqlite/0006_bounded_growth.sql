-- Bounded growth (issue 22.4).
--
-- The tag list: how many articles use each tag, kept by triggers on article_tags, so
-- `GET /api/tags` reads the N most popular tags off an index instead of grouping every
-- tag row on every anonymous call.
CREATE TABLE tag_counts (
    tag       TEXT    PRIMARY KEY,
    articles  BIGINT  NOT NULL
);
CREATE INDEX tag_counts_popular ON tag_counts (articles DESC, tag);
INSERT INTO tag_counts (tag, articles) SELECT tag, COUNT(*) FROM article_tags GROUP BY tag;

CREATE TRIGGER article_tags_counted AFTER INSERT ON article_tags
BEGIN
    INSERT OR IGNORE INTO tag_counts (tag, articles) VALUES (NEW.tag, 0);
    UPDATE tag_counts SET articles = articles + 1 WHERE tag = NEW.tag;
END;
CREATE TRIGGER article_tags_uncounted AFTER DELETE ON article_tags
BEGIN
    UPDATE tag_counts SET articles = articles - 1 WHERE tag = OLD.tag;
    DELETE FROM tag_counts WHERE tag = OLD.tag AND articles <= 0;
END;

-- Per-user quotas count a user's recent writes; retention finds expired sessions.
CREATE INDEX articles_author_updated ON articles (author_id, updated_at);
CREATE INDEX comments_author_created ON comments (author_id, created_at);
CREATE INDEX sessions_last_seen ON sessions (last_seen_at);
CREATE INDEX sessions_created ON sessions (created_at);

-- Audit archiving: rows exported to a file are pruned behind a checkpoint that names the
-- last pruned row's seq and MAC (and the checkpoint before it), sealed with the audit key.
-- `aerie audit verify` starts the walk from the newest checkpoint. Rows may be deleted only
-- behind a checkpoint; the checkpoints themselves are append-only.
CREATE TABLE audit_archive_checkpoints (
    through_seq  BIGINT  PRIMARY KEY,
    through_mac  TEXT    NOT NULL,
    from_seq     BIGINT  NOT NULL,
    from_mac     TEXT    NOT NULL,
    pruned       BIGINT  NOT NULL,
    at           BIGINT  NOT NULL,
    mac          TEXT    NOT NULL
);
CREATE TRIGGER audit_archive_checkpoints_no_update BEFORE UPDATE ON audit_archive_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_archive_checkpoints is append-only'); END;
CREATE TRIGGER audit_archive_checkpoints_no_delete BEFORE DELETE ON audit_archive_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_archive_checkpoints is append-only'); END;

DROP TRIGGER audit_log_no_delete;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
WHEN OLD.seq > (SELECT COALESCE(MAX(through_seq), 0) FROM audit_archive_checkpoints)
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
