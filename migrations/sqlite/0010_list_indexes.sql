-- Reads that stay fast as data grows (issue 20).
--
-- Every article list is newest first, `(created_at DESC, id DESC)`, and each filter pages off
-- an index in that order instead of sorting every match: the tag and favorite rows carry
-- their article's creation time (kept by triggers; an article's created_at never changes),
-- so `?tag=`, `?favorited=` and `?author=` each read one index range, and OFFSET / the
-- keyset cursor skip index entries, not enriched rows.
ALTER TABLE article_tags ADD COLUMN article_created_at BIGINT NOT NULL DEFAULT 0;
UPDATE article_tags SET article_created_at = (SELECT created_at FROM articles WHERE id = article_id);
ALTER TABLE favorites ADD COLUMN article_created_at BIGINT NOT NULL DEFAULT 0;
UPDATE favorites SET article_created_at = (SELECT created_at FROM articles WHERE id = article_id);

CREATE TRIGGER article_tags_dated AFTER INSERT ON article_tags
BEGIN
    UPDATE article_tags SET article_created_at = (SELECT created_at FROM articles WHERE id = NEW.article_id)
     WHERE article_id = NEW.article_id AND tag = NEW.tag;
END;
CREATE TRIGGER favorites_dated AFTER INSERT ON favorites
BEGIN
    UPDATE favorites SET article_created_at = (SELECT created_at FROM articles WHERE id = NEW.article_id)
     WHERE user_id = NEW.user_id AND article_id = NEW.article_id;
END;

-- The newest-first indexes; each one supersedes a single-column index that is its prefix
-- (or, for created_at, its order), so writes maintain no more indexes than before.
CREATE INDEX articles_newest ON articles (created_at, id);
CREATE INDEX articles_author_newest ON articles (author_id, created_at, id);
CREATE INDEX article_tags_newest ON article_tags (tag, article_created_at, article_id);
CREATE INDEX favorites_user_newest ON favorites (user_id, article_created_at, article_id);
DROP INDEX articles_created;
DROP INDEX articles_author;
DROP INDEX article_tags_tag;

-- `articlesCount` of the unfiltered list, kept by triggers: one row read instead of counting
-- every article on each anonymous call. (`?tag=` counts come from tag_counts, 0006.)
CREATE TABLE article_totals (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    articles  BIGINT  NOT NULL
);
INSERT INTO article_totals (id, articles) SELECT 1, COUNT(*) FROM articles;
CREATE TRIGGER articles_counted AFTER INSERT ON articles
BEGIN
    UPDATE article_totals SET articles = articles + 1 WHERE id = 1;
END;
CREATE TRIGGER articles_uncounted AFTER DELETE ON articles
BEGIN
    UPDATE article_totals SET articles = articles - 1 WHERE id = 1;
END;
