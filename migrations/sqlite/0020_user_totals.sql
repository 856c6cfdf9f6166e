-- `articlesCount` of `?author=`, `?favorited=` and the feed, kept by triggers (issue 20): one
-- row per user read (per followed author for the feed) instead of counting an author's
-- articles or a user's favorites on every call, which grew with each user's history.
-- A row exists only while one of its counts is above zero, so a restore's triggers rebuild
-- exactly the rows a backup holds (see `store::snapshot`, DERIVED).
CREATE TABLE user_totals (
    user_id    INTEGER PRIMARY KEY,
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

CREATE TRIGGER user_articles_counted AFTER INSERT ON articles
BEGIN
    INSERT INTO user_totals (user_id, articles, favorites) VALUES (NEW.author_id, 1, 0)
        ON CONFLICT (user_id) DO UPDATE SET articles = articles + 1;
END;
CREATE TRIGGER user_articles_uncounted AFTER DELETE ON articles
BEGIN
    UPDATE user_totals SET articles = articles - 1 WHERE user_id = OLD.author_id;
    DELETE FROM user_totals WHERE user_id = OLD.author_id AND articles <= 0 AND favorites <= 0;
END;
CREATE TRIGGER user_favorites_counted AFTER INSERT ON favorites
BEGIN
    INSERT INTO user_totals (user_id, articles, favorites) VALUES (NEW.user_id, 0, 1)
        ON CONFLICT (user_id) DO UPDATE SET favorites = favorites + 1;
END;
CREATE TRIGGER user_favorites_uncounted AFTER DELETE ON favorites
BEGIN
    UPDATE user_totals SET favorites = favorites - 1 WHERE user_id = OLD.user_id;
    DELETE FROM user_totals WHERE user_id = OLD.user_id AND articles <= 0 AND favorites <= 0;
END;
