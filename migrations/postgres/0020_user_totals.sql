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

CREATE FUNCTION user_articles_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO user_totals (user_id, articles, favorites) VALUES (NEW.author_id, 1, 0)
            ON CONFLICT (user_id) DO UPDATE SET articles = user_totals.articles + 1;
        RETURN NEW;
    END IF;
    UPDATE user_totals SET articles = articles - 1 WHERE user_id = OLD.author_id;
    DELETE FROM user_totals WHERE user_id = OLD.author_id AND articles <= 0 AND favorites <= 0;
    RETURN OLD;
END;
$$;
CREATE TRIGGER user_articles_count AFTER INSERT OR DELETE ON articles
    FOR EACH ROW EXECUTE FUNCTION user_articles_count();

CREATE FUNCTION user_favorites_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO user_totals (user_id, articles, favorites) VALUES (NEW.user_id, 0, 1)
            ON CONFLICT (user_id) DO UPDATE SET favorites = user_totals.favorites + 1;
        RETURN NEW;
    END IF;
    UPDATE user_totals SET favorites = favorites - 1 WHERE user_id = OLD.user_id;
    DELETE FROM user_totals WHERE user_id = OLD.user_id AND articles <= 0 AND favorites <= 0;
    RETURN OLD;
END;
$$;
CREATE TRIGGER user_favorites_count AFTER INSERT OR DELETE ON favorites
    FOR EACH ROW EXECUTE FUNCTION user_favorites_count();
