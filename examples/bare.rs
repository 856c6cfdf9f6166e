//! A bare ceiling for Aerie's reads (issue 17 item 4): the same four routes, running the
//! same SQL on the same database Aerie created, with none of Aerie's layers, so that
//! `bench/run` can say how much the layers cost.
//!
//!     BARE_DATABASE_URL=sqlite:///path/aerie.db BARE_DATA_DIR=/path/to/aerie/data \
//!         cargo run --release --example bare
//!
//! Routes (RealWorld shapes):
//! - `GET /api/articles`: the 20 newest (`limit`/`offset` honoured), in Aerie's three queries
//!   (a page of ids off `articles_newest`, the maintained `article_totals` count, then the rows
//!   of that page with tags, favorites count, favorited and the author's profile);
//! - `GET /api/articles/{slug}`: Aerie's by-slug query, the stored `body_html` returned as is;
//! - `GET /api/user`: the token's user row, by id;
//! - `POST /api/users/login`: the account by the email's blind index, argon2id verified on
//!   tokio's blocking pool (parameters from the stored hash: Aerie's), at most one per core at
//!   once, each blocking thread reusing its own argon2 memory, then an EdDSA token signed with
//!   Aerie's key and Aerie's claims. A login ceiling must be argon2-bound: the plain
//!   `Argon2::default().verify_password` on `spawn_blocking` (19 MiB allocated and zeroed per
//!   call) did 36–43 logins/s against Aerie's 51–65 and held 0.4–1.3 GB RSS after a second of
//!   logins in first tries (BENCHMARKS.md).
//!
//! Tokens: Aerie's own EdDSA access tokens verify here (the public half of Aerie's signing key
//! file, `BARE_SIGNING_KEY_FILE`, default `<BARE_DATA_DIR>/signing-key.pem`), so one token
//! works against both servers. **Each request verifies the signature afresh** (no cache of
//! verified tokens, unlike Aerie), with `jsonwebtoken`'s checks of `iss`, `aud`, `exp`
//! (60 s leeway) and the required claims; nothing else.
//!
//! What Aerie does and this does not: no rate limits, login guard, audit trail, security
//! headers, CSRF, CORS, request ids, tracing, metrics, body or header limits, timeouts,
//! connection caps, statement budgets, session revocation or idle checks, no `kid` lookup
//! (one key), no list cursor (`nextCursor` is never sent), no filters on the list. Login
//! writes nothing (Aerie opens a session, mints a refresh token, records the login and
//! appends an audit record) and answers an unknown email at once (Aerie verifies a dummy
//! hash). Emails are sealed in Aerie's database (field encryption): `GET /api/user` and login
//! return the **sealed** string from the row where Aerie opens it (one XChaCha20-Poly1305
//! open per request that Aerie pays and this does not). The email's blind index for login is
//! computed with Aerie's keyring (`BARE_DATA_KEYS_FILE`, default `<BARE_DATA_DIR>/data-keys`):
//! it is the key the query looks up, not a layer.
//!
//! Settings (environment): `BARE_LISTEN` (default `127.0.0.1:3001`), `BARE_DATABASE_URL`
//! (`sqlite://…` or `postgres://…`, required), `BARE_DATA_DIR`, `BARE_SIGNING_KEY_FILE`,
//! `BARE_DATA_KEYS_FILE`, `BARE_DATABASE_MAX_CONNECTIONS` (default 10, Aerie's),
//! `BARE_TOKEN_ISSUER` (default `aerie`), `BARE_TOKEN_AUDIENCE` (default `aerie-api`).
//! Never for production: it exists to be measured against.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aerie::field_keys::{FieldKeySettings, FieldKeys};
use anyhow::Context as _;
use argon2::password_hash::phc::{Output, PasswordHash};
use argon2::{Algorithm as Argon2Algorithm, Argon2, Block, Params, Version};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, FromRow};

/// Aerie's access token lifetime (`AERIE_ACCESS_TOKEN_TTL_SECS` default).
const TOKEN_TTL_SECS: i64 = 15 * 60;
const TAG_SEPARATOR: char = '\u{1f}';
/// Aerie's `USER_COLUMNS` (src/store/users.rs).
const USER_COLUMNS: &str =
    "id, username, email_sealed AS email, password_hash, bio, image, role, disabled_at";

enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same body on whichever pool backs the server (Aerie's `on_pool!`).
macro_rules! on_db {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            Db::Sqlite($pool) => $body,
            Db::Postgres($pool) => $body,
        }
    };
}

struct Bare {
    db: Db,
    /// Aerie's article select without and with the body (src/store/content.rs).
    list_select: String,
    by_slug: String,
    decoding: DecodingKey,
    validation: Validation,
    encoding: EncodingKey,
    kid: String,
    issuer: String,
    audience: String,
    keys: FieldKeys,
    /// One argon2 verification per core at once (Aerie's default hashing concurrency).
    hashing: tokio::sync::Semaphore,
}

type Shared = Arc<Bare>;

#[derive(FromRow)]
struct ArticleRow {
    id: i64,
    slug: String,
    title: String,
    description: String,
    body: String,
    body_html: Option<String>,
    created_at: i64,
    updated_at: i64,
    tags: Option<String>,
    favorites_count: i64,
    favorited: i64,
    #[expect(dead_code, reason = "selected by Aerie's query; not shown")]
    author_id: i64,
    author_username: String,
    author_bio: Option<String>,
    author_image: Option<String>,
    author_following: i64,
}

#[derive(FromRow)]
struct UserRow {
    id: i64,
    username: String,
    /// Still sealed: see the module documentation.
    email: String,
    password_hash: String,
    bio: Option<String>,
    image: Option<String>,
    role: String,
    disabled_at: Option<i64>,
}

#[derive(Serialize)]
struct Profile {
    username: String,
    bio: Option<String>,
    image: Option<String>,
    following: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Article {
    slug: String,
    title: String,
    description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_html: Option<String>,
    tag_list: Vec<String>,
    created_at: String,
    updated_at: String,
    favorited: bool,
    favorites_count: i64,
    author: Profile,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ArticleList {
    articles: Vec<Article>,
    articles_count: i64,
}

#[derive(Serialize)]
struct ArticleResponse {
    article: Article,
}

#[derive(Serialize)]
struct UserView {
    email: String,
    token: String,
    username: String,
    bio: Option<String>,
    image: Option<String>,
    role: String,
}

#[derive(Serialize)]
struct UserResponse {
    user: UserView,
}

#[derive(Deserialize)]
struct LoginBody {
    user: LoginUser,
}

#[derive(Deserialize)]
struct LoginUser {
    email: String,
    password: String,
}

/// Aerie's access claims (src/auth/tokens.rs).
#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    sid: String,
    role: String,
    iat: i64,
    exp: i64,
    iss: String,
    aud: String,
    jti: String,
    auth_time: i64,
}

#[derive(Deserialize)]
struct Page {
    limit: Option<i64>,
    offset: Option<i64>,
}

type Answer<T> = Result<Json<T>, StatusCode>;

fn internal(_: impl std::fmt::Display) -> StatusCode {
    StatusCode::INTERNAL_SERVER_ERROR
}

fn rfc3339(millis: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(millis)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn article(row: ArticleRow, with_body: bool) -> Article {
    let mut tag_list: Vec<String> = row
        .tags
        .as_deref()
        .map(|joined| joined.split(TAG_SEPARATOR).map(str::to_owned).collect())
        .unwrap_or_default();
    tag_list.sort();
    Article {
        slug: row.slug,
        title: row.title,
        description: row.description,
        body: with_body.then_some(row.body),
        body_html: if with_body { row.body_html } else { None },
        tag_list,
        created_at: rfc3339(row.created_at),
        updated_at: rfc3339(row.updated_at),
        favorited: row.favorited != 0,
        favorites_count: row.favorites_count,
        author: Profile {
            username: row.author_username,
            bio: row.author_bio,
            image: row.author_image,
            following: row.author_following != 0,
        },
    }
}

/// Aerie's `article_select` (src/store/content.rs), for this engine.
fn article_select(postgres: bool, with_body: bool) -> String {
    let tags_aggregate = if postgres {
        "SELECT string_agg(tag, chr(31)) FROM article_tags WHERE article_id = a.id"
    } else {
        "SELECT group_concat(tag, char(31)) FROM article_tags WHERE article_id = a.id"
    };
    let body = if with_body {
        "a.body, a.body_html"
    } else {
        "'' AS body, CAST(NULL AS TEXT) AS body_html"
    };
    format!(
        "SELECT a.id, a.slug, a.title, a.description, {body}, a.created_at, a.updated_at,
           ({tags_aggregate}) AS tags,
           CAST((SELECT COUNT(*) FROM favorites f WHERE f.article_id = a.id) AS BIGINT) AS favorites_count,
           CAST(CASE WHEN EXISTS (SELECT 1 FROM favorites f WHERE f.article_id = a.id AND f.user_id = $1)
                THEN 1 ELSE 0 END AS BIGINT) AS favorited,
           u.id AS author_id, u.username AS author_username, u.bio AS author_bio, u.image AS author_image,
           CAST(CASE WHEN EXISTS (SELECT 1 FROM follows fo WHERE fo.follower_id = $1 AND fo.followee_id = u.id)
                THEN 1 ELSE 0 END AS BIGINT) AS author_following
         FROM articles a JOIN users u ON u.id = a.author_id"
    )
}

impl Bare {
    /// The user id of a valid `Authorization: Token …`; `Ok(None)` without one.
    fn viewer(&self, headers: &HeaderMap) -> Result<Option<i64>, StatusCode> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(None);
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Token "))
            .ok_or(StatusCode::UNAUTHORIZED)?;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| StatusCode::UNAUTHORIZED)?
            .claims;
        claims
            .sub
            .parse()
            .map(Some)
            .map_err(|_| StatusCode::UNAUTHORIZED)
    }

    fn issue(&self, user: &UserRow) -> Result<String, StatusCode> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(internal)?
            .as_secs();
        let now = i64::try_from(now).map_err(internal)?;
        let claims = Claims {
            sub: user.id.to_string(),
            sid: URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>()),
            role: user.role.clone(),
            iat: now,
            exp: now + TOKEN_TTL_SECS,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            jti: URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>()),
            auth_time: now,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding).map_err(internal)
    }
}

async fn list_articles(
    State(bare): State<Shared>,
    headers: HeaderMap,
    Query(page): Query<Page>,
) -> Answer<ArticleList> {
    let viewer = bare.viewer(&headers)?;
    let limit = page.limit.unwrap_or(20).clamp(1, 100);
    let offset = page.offset.unwrap_or(0).max(0);
    let ids_sql = "SELECT d.id AS id, d.created_at AS created_at FROM articles d ORDER BY d.created_at DESC, d.id DESC LIMIT $1 OFFSET $2";
    let count_sql = "SELECT articles FROM article_totals WHERE id = 1";
    let (ids, total, rows) = on_db!(&bare.db, |pool| {
        let ids: Vec<(i64, i64)> = sqlx::query_as(ids_sql)
            .bind(limit + 1)
            .bind(offset)
            .fetch_all(pool)
            .await
            .map_err(internal)?;
        let ids: Vec<i64> = ids
            .into_iter()
            .map(|(id, _)| id)
            .take(usize::try_from(limit).unwrap_or(0))
            .collect();
        let total: i64 = sqlx::query_scalar(count_sql)
            .fetch_one(pool)
            .await
            .map_err(internal)?;
        let rows: Vec<ArticleRow> = if ids.is_empty() {
            Vec::new()
        } else {
            let places: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!("{} WHERE a.id IN ({})", bare.list_select, places.join(", "));
            let mut query = sqlx::query_as(AssertSqlSafe(sql)).bind(viewer);
            for id in &ids {
                query = query.bind(*id);
            }
            query.fetch_all(pool).await.map_err(internal)?
        };
        (ids, total, rows)
    });
    let mut by_id: HashMap<i64, ArticleRow> = rows.into_iter().map(|r| (r.id, r)).collect();
    let articles = ids
        .iter()
        .filter_map(|id| by_id.remove(id))
        .map(|row| article(row, false))
        .collect();
    Ok(Json(ArticleList {
        articles,
        articles_count: total,
    }))
}

async fn get_article(
    State(bare): State<Shared>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Answer<ArticleResponse> {
    let viewer = bare.viewer(&headers)?;
    let sql = bare.by_slug.as_str();
    let row: Option<ArticleRow> = on_db!(&bare.db, |pool| sqlx::query_as(AssertSqlSafe(sql))
        .bind(viewer)
        .bind(&slug)
        .fetch_optional(pool)
        .await
        .map_err(internal)?);
    let row = row.ok_or(StatusCode::NOT_FOUND)?;
    Ok(Json(ArticleResponse {
        article: article(row, true),
    }))
}

fn user_answer(row: UserRow, token: String) -> Json<UserResponse> {
    Json(UserResponse {
        user: UserView {
            email: row.email,
            token,
            username: row.username,
            bio: row.bio,
            image: row.image,
            role: row.role,
        },
    })
}

async fn current_user(State(bare): State<Shared>, headers: HeaderMap) -> Answer<UserResponse> {
    let id = bare.viewer(&headers)?.ok_or(StatusCode::UNAUTHORIZED)?;
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    let row: Option<UserRow> = on_db!(&bare.db, |pool| sqlx::query_as(AssertSqlSafe(sql.as_str()))
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(internal)?);
    let row = row.ok_or(StatusCode::UNAUTHORIZED)?;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Token "))
        .unwrap_or_default()
        .to_owned();
    Ok(user_answer(row, token))
}

async fn login(State(bare): State<Shared>, Json(body): Json<LoginBody>) -> Answer<UserResponse> {
    let LoginUser { email, password } = body.user;
    let index = bare.keys.email_index(&email.trim().to_lowercase());
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email_index = $1");
    let row: Option<UserRow> = on_db!(&bare.db, |pool| sqlx::query_as(AssertSqlSafe(sql.as_str()))
        .bind(&index)
        .fetch_optional(pool)
        .await
        .map_err(internal)?);
    let row = row
        .filter(|row| row.disabled_at.is_none())
        .ok_or(StatusCode::UNAUTHORIZED)?;
    let stored = row.password_hash.clone();
    let _permit = bare.hashing.acquire().await.map_err(internal)?;
    let matches = tokio::task::spawn_blocking(move || verify(password.as_bytes(), &stored))
        .await
        .map_err(internal)?;
    if !matches {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let token = bare.issue(&row)?;
    Ok(user_answer(row, token))
}

thread_local! {
    /// This blocking thread's argon2 memory, kept between verifications.
    static ARGON2_MEMORY: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Whether `password` matches the PHC string `stored` (algorithm, version, parameters and
/// salt from it), computed in this thread's kept memory; anything unparsable is a mismatch.
fn verify(password: &[u8], stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        Argon2Algorithm::try_from(parsed.algorithm.as_str()),
        Params::try_from(&parsed),
    ) else {
        return false;
    };
    let Ok(version) = parsed
        .version
        .map_or(Ok(Version::default()), Version::try_from)
    else {
        return false;
    };
    let mut buffer = [0u8; Output::MAX_LENGTH];
    let Some(out) = buffer.get_mut(..expected.len()) else {
        return false;
    };
    ARGON2_MEMORY.with_borrow_mut(|blocks| {
        if blocks.len() < params.block_count() {
            blocks.resize(params.block_count(), Block::new());
        }
        Argon2::new(algorithm, version, params)
            .hash_password_into_with_memory(password, salt.as_ref(), out, blocks.as_mut_slice())
            .is_ok()
    }) && Output::new(out).is_ok_and(|computed| computed == expected)
}

async fn ready(State(bare): State<Shared>) -> StatusCode {
    let ok = on_db!(&bare.db, |pool| sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .is_ok());
    if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

fn setting(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

async fn connect(url: &str, max: u32) -> anyhow::Result<Db> {
    if url.starts_with("postgres") {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        Ok(Db::Postgres(pool))
    } else {
        // Aerie's connection settings, without its statement budget.
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(false)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        Ok(Db::Sqlite(pool))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = setting("BARE_DATABASE_URL").context("BARE_DATABASE_URL is required")?;
    let data_dir = PathBuf::from(setting("BARE_DATA_DIR").unwrap_or_else(|| "data".into()));
    let key_file = setting("BARE_SIGNING_KEY_FILE")
        .map_or_else(|| data_dir.join("signing-key.pem"), PathBuf::from);
    let data_keys =
        setting("BARE_DATA_KEYS_FILE").map_or_else(|| data_dir.join("data-keys"), PathBuf::from);
    let max = setting("BARE_DATABASE_MAX_CONNECTIONS")
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(10);

    let pem = std::fs::read_to_string(&key_file)
        .with_context(|| format!("signing key {}", key_file.display()))?;
    let signing = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem)
        .map_err(|_| anyhow::anyhow!("{}: not a PKCS#8 Ed25519 key", key_file.display()))?;
    let public = signing.verifying_key().to_bytes();
    let der = signing.to_pkcs8_der().map_err(|e| anyhow::anyhow!("{e}"))?;
    let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(public).get(..12).unwrap_or_default());
    let decoding = DecodingKey::from_ed_components(&URL_SAFE_NO_PAD.encode(public))?;
    let issuer = setting("BARE_TOKEN_ISSUER").unwrap_or_else(|| "aerie".into());
    let audience = setting("BARE_TOKEN_AUDIENCE").unwrap_or_else(|| "aerie-api".into());
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    validation.set_issuer(&[&issuer]);
    validation.set_audience(&[&audience]);
    let keys = FieldKeys::load(
        &FieldKeySettings {
            file: data_keys,
            generate: false,
            legacy_mfa_key: None,
        },
        std::sync::Arc::new(aerie::clock::SystemClock),
    )?;

    let db = connect(&url, max).await?;
    let postgres = matches!(db, Db::Postgres(_));
    let bare = Arc::new(Bare {
        db,
        list_select: article_select(postgres, false),
        by_slug: format!("{} WHERE a.slug = $2", article_select(postgres, true)),
        decoding,
        validation,
        encoding: EncodingKey::from_ed_der(der.as_bytes()),
        kid,
        issuer,
        audience,
        keys,
        hashing: tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(1, usize::from),
        ),
    });
    let app = Router::new()
        .route("/api/articles", get(list_articles))
        .route("/api/articles/{slug}", get(get_article))
        .route("/api/user", get(current_user))
        .route("/api/users/login", post(login))
        .route("/readyz", get(ready))
        .with_state(bare);
    let listen = setting("BARE_LISTEN").unwrap_or_else(|| "127.0.0.1:3001".into());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
