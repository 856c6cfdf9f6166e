-- Accounts, sessions and the Conduit content model. Times are Unix milliseconds (UTC).
CREATE TABLE users (
    id             BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username       TEXT    NOT NULL,
    username_key   TEXT    NOT NULL,  -- lowercase username: uniqueness ignores case
    email          TEXT    NOT NULL,
    email_key      TEXT    NOT NULL,  -- lowercase email: uniqueness and login ignore case
    password_hash  TEXT    NOT NULL,
    bio            TEXT,
    image          TEXT,
    role           TEXT    NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'editor', 'admin')),
    disabled_at    BIGINT,
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL
);
CREATE UNIQUE INDEX users_username_key ON users (username_key);
CREATE UNIQUE INDEX users_email_key ON users (email_key);

CREATE TABLE sessions (
    id            TEXT    PRIMARY KEY,
    user_id       BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    BIGINT  NOT NULL,
    last_seen_at  BIGINT  NOT NULL,
    client_ip     TEXT,
    user_agent    TEXT,
    revoked_at    BIGINT
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE follows (
    follower_id  BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    followee_id  BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (follower_id, followee_id)
);
CREATE INDEX follows_followee ON follows (followee_id);

CREATE TABLE articles (
    id           BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug         TEXT    NOT NULL,
    title        TEXT    NOT NULL,
    description  TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    author_id    BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL
);
CREATE UNIQUE INDEX articles_slug_key ON articles (slug);
CREATE INDEX articles_author ON articles (author_id);
CREATE INDEX articles_created ON articles (created_at);

CREATE TABLE article_tags (
    article_id  BIGINT NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    tag         TEXT   NOT NULL,
    PRIMARY KEY (article_id, tag)
);
CREATE INDEX article_tags_tag ON article_tags (tag);

CREATE TABLE favorites (
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    article_id  BIGINT NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, article_id)
);
CREATE INDEX favorites_article ON favorites (article_id);

CREATE TABLE comments (
    id          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    article_id  BIGINT  NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    author_id   BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    body        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);
CREATE INDEX comments_article ON comments (article_id);
