-- `articlesCount` of `?author=`, `?favorited=` and the feed, kept by triggers (issue 20): one
-- row per user read (per followed author for the feed) instead of counting an author's
-- articles or a user's favorites on every call, which grew with each user's history.
-- A row exists only while one of its counts is above zero, so a restore's triggers rebuild
-- exactly the rows a backup holds (see `store::snapshot`, DERIVED). Writes by one user
-- serialize on that user's row until they commit; other users' writes do not wait.
CREATE TABLE user_totals (
    user_id    BIGINT  PRIMARY KEY,
    articles   BIGINT  NOT NULL,
    favorites  BIGINT  NOT NULL
);
INSERT INTO user_totals (user_id, articles, favorites)
SELECT id,
       (SELECT COUNT(*) FROM articles WHERE author_id = users.id),
       (SELECT COUNT(*) FROM favorites WHERE user_id = users.id)
  FROM users
 WHERE EXISTS (SELECT 1 FROM articles WHERE author_id = users.id)
    OR EXISTS (SELECT 1 FROM favorites WHERE user_id = users.id);

-- Statement-level, each user's row updated once per statement: a bulk insert, or the cascade
-- when an author's account is deleted, would otherwise update one row thousands of times in
-- one transaction, each update walking the row's growing chain of versions. Rows are locked
-- in user id order, so two statements touching the same users cannot deadlock on them.
CREATE FUNCTION user_totals_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'articles' THEN
        INSERT INTO user_totals (user_id, articles, favorites)
        SELECT author_id, COUNT(*), 0 FROM added GROUP BY author_id ORDER BY author_id
            ON CONFLICT (user_id) DO UPDATE SET articles = user_totals.articles + EXCLUDED.articles;
    ELSE
        INSERT INTO user_totals (user_id, articles, favorites)
        SELECT user_id, 0, COUNT(*) FROM added GROUP BY user_id ORDER BY user_id
            ON CONFLICT (user_id) DO UPDATE SET favorites = user_totals.favorites + EXCLUDED.favorites;
    END IF;
    RETURN NULL;
END;
$$;
CREATE FUNCTION user_totals_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'articles' THEN
        UPDATE user_totals t SET articles = t.articles - r.n
          FROM (SELECT author_id AS user_id, COUNT(*) AS n FROM removed GROUP BY author_id) r
         WHERE t.user_id = r.user_id;
        DELETE FROM user_totals t USING (SELECT DISTINCT author_id AS user_id FROM removed) r
         WHERE t.user_id = r.user_id AND t.articles <= 0 AND t.favorites <= 0;
    ELSE
        UPDATE user_totals t SET favorites = t.favorites - r.n
          FROM (SELECT user_id, COUNT(*) AS n FROM removed GROUP BY user_id) r
         WHERE t.user_id = r.user_id;
        DELETE FROM user_totals t USING (SELECT DISTINCT user_id FROM removed) r
         WHERE t.user_id = r.user_id AND t.articles <= 0 AND t.favorites <= 0;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER user_articles_counted AFTER INSERT ON articles
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION user_totals_added();
CREATE TRIGGER user_articles_uncounted AFTER DELETE ON articles
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION user_totals_removed();
CREATE TRIGGER user_favorites_counted AFTER INSERT ON favorites
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION user_totals_added();
CREATE TRIGGER user_favorites_uncounted AFTER DELETE ON favorites
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION user_totals_removed();
