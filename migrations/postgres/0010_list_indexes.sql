-- Reads that stay fast as data grows (issue 20).
--
-- Every article list is newest first, `(created_at DESC, id DESC)`, and each filter pages off
-- an index in that order instead of sorting every match: the tag and favorite rows carry
-- their article's creation time (kept by a trigger; an article's created_at never changes),
-- so `?tag=`, `?favorited=` and `?author=` each read one index range, and OFFSET / the
-- keyset cursor skip index entries, not enriched rows.
ALTER TABLE article_tags ADD COLUMN article_created_at BIGINT NOT NULL DEFAULT 0;
UPDATE article_tags t SET article_created_at = a.created_at FROM articles a WHERE a.id = t.article_id;
ALTER TABLE favorites ADD COLUMN article_created_at BIGINT NOT NULL DEFAULT 0;
UPDATE favorites f SET article_created_at = a.created_at FROM articles a WHERE a.id = f.article_id;

CREATE FUNCTION article_row_dated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.article_created_at := (SELECT created_at FROM articles WHERE id = NEW.article_id);
    RETURN NEW;
END;
$$;
CREATE TRIGGER article_tags_dated BEFORE INSERT ON article_tags
    FOR EACH ROW EXECUTE FUNCTION article_row_dated();
CREATE TRIGGER favorites_dated BEFORE INSERT ON favorites
    FOR EACH ROW EXECUTE FUNCTION article_row_dated();

-- The newest-first indexes; each one supersedes a single-column index that is its prefix
-- (or, for created_at, its order), so writes maintain no more indexes than before.
CREATE INDEX articles_newest ON articles (created_at, id);
CREATE INDEX articles_author_newest ON articles (author_id, created_at, id);
CREATE INDEX article_tags_newest ON article_tags (tag, article_created_at, article_id);
CREATE INDEX favorites_user_newest ON favorites (user_id, article_created_at, article_id);
DROP INDEX articles_created;
DROP INDEX articles_author;
DROP INDEX article_tags_tag;

-- `articlesCount` of the unfiltered list, kept by a trigger: one row read instead of counting
-- every article on each anonymous call. (`?tag=` counts come from tag_counts, 0006.) Article
-- inserts serialize on this row until they commit: a blog's write rate, bounded by quotas.
CREATE TABLE article_totals (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    articles  BIGINT  NOT NULL
);
INSERT INTO article_totals (id, articles) SELECT 1, COUNT(*) FROM articles;

-- Statement-level, so a bulk insert or a cascade updates the row once.
CREATE FUNCTION article_totals_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE article_totals SET articles = articles + (SELECT COUNT(*) FROM added) WHERE id = 1;
    RETURN NULL;
END;
$$;
CREATE FUNCTION article_totals_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE article_totals SET articles = articles - (SELECT COUNT(*) FROM removed) WHERE id = 1;
    RETURN NULL;
END;
$$;
CREATE TRIGGER articles_counted AFTER INSERT ON articles
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION article_totals_added();
CREATE TRIGGER articles_uncounted AFTER DELETE ON articles
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION article_totals_removed();
