//! What tests set up through the API (accounts, sessions, articles) or, where no route
//! does it, straight in the database.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Engine, Reply, TestApp, assert_keys};

/// `POST /api/auth/refresh` with a refresh token in the body.
pub async fn refresh(app: &TestApp, refresh_token: &str) -> Reply {
    app.post(
        "/api/auth/refresh",
        None,
        json!({ "refreshToken": refresh_token }),
    )
    .await
}

/// Refreshes and returns the new User object, asserting success.
pub async fn refreshed(app: &TestApp, refresh_token: &str) -> Value {
    let reply = refresh(app, refresh_token).await;
    assert_eq!(reply.status, StatusCode::OK, "refresh: {}", reply.body);
    reply.body["user"].clone()
}

/// A password that passes the strength policy.
pub const PASSWORD: &str = "correct horse battery staple 42";

impl TestApp {
    /// The server clock's current time in the API's timestamp format.
    pub fn now_timestamp(&self) -> String {
        use aerie::clock::Clock;
        aerie::clock::rfc3339(self.clock.now())
    }

    /// Registers `name` (email `name@example.com`) and returns the access token.
    pub async fn register(&self, name: &str) -> String {
        token_of(&self.register_user(name).await)
    }

    /// Registers `name` and returns the whole User object (with `token` and `refreshToken`).
    pub async fn register_user(&self, name: &str) -> Value {
        let reply = self
            .post("/api/users", None, json!({"user": {"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}}))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "register {name}: {}",
            reply.body
        );
        reply.body["user"].clone()
    }

    /// Logs in as the login form does; the reply is the test's to check.
    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.post(
            "/api/users/login",
            None,
            json!({"user": {"email": email, "password": password}}),
        )
        .await
    }

    /// `POST /api/users/login` with extra request headers (a device token, a forwarded
    /// address).
    pub async fn login_with(&self, email: &str, password: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = self
            .client
            .post(self.url("/api/users/login"))
            .json(&json!({"user": {"email": email, "password": password}}));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        super::read(request.send().await.expect("request sent")).await
    }

    /// A login that appears to come from `ip` (the app must trust 127.0.0.1 as a proxy).
    pub async fn login_from(&self, email: &str, password: &str, ip: &str) -> Reply {
        self.login_with(email, password, &[("X-Forwarded-For", ip)])
            .await
    }

    /// Logs `name` in again (a new session) and returns the User object.
    pub async fn login_user(&self, name: &str) -> Value {
        let reply = self.login(&format!("{name}@example.com"), PASSWORD).await;
        assert_eq!(reply.status, StatusCode::OK, "login {name}: {}", reply.body);
        reply.body["user"].clone()
    }

    /// A store on the test's database, beside the server's (for what the library does
    /// outside a request: retention runs, audit archiving).
    pub async fn store(&self) -> aerie::store::Store {
        // The data folder holds the data keys the server seals with.
        let data_dir = self.data_dir.path().display().to_string();
        let config = aerie::config::Config::from_vars([
            ("AERIE_DATABASE_URL", self.database_url.as_str()),
            ("AERIE_DATA_DIR", data_dir.as_str()),
        ])
        .expect("valid configuration");
        aerie::store::Store::connect(&config.database)
            .await
            .expect("database opens")
    }

    /// The audit events of one type, oldest first, each as `{"row": .., "detail": ..}`.
    pub async fn audit_events(&self, event_type: &str) -> Vec<Value> {
        let store = self.store().await;
        let rows = store.audit_rows_after(0, 10_000).await.expect("audit rows");
        store.close().await;
        rows.into_iter()
            .filter(|row| row.event_type == event_type)
            .map(|row| {
                let detail: Value = serde_json::from_str(&row.detail).expect("JSON detail");
                json!({"seq": row.seq, "subject": row.subject_id, "session": row.session_id, "detail": detail})
            })
            .collect()
    }

    /// Asserts that an audit event of `event_type` was recorded whose detail has `key` set
    /// to `value`.
    pub async fn assert_audited(&self, event_type: &str, key: &str, value: &str) {
        let events = self.audit_events(event_type).await;
        assert!(
            events.iter().any(|event| event["detail"][key] == value),
            "no {event_type} with {key} {value:?}: {events:#?}"
        );
    }

    /// Runs one SQL statement directly on the test database (to set up what no route does,
    /// such as disabling an account).
    pub async fn execute_sql(&self, sql: &str) {
        execute_sql_at(self.engine, &self.database_url, sql).await;
    }

    /// Runs one query directly on the test database and answers its single text column,
    /// row by row (to look at what is stored, as someone holding a copy of it would).
    pub async fn query_text(&self, sql: &str) -> Vec<String> {
        query_text_at(self.engine, &self.database_url, sql).await
    }

    /// Sets an account's role directly in the database, as `aerie user set-role` does (a
    /// fresh database has no admin, and no route may create the first one).
    pub async fn set_role(&self, username: &str, role: &str) {
        assert!(
            [username, role]
                .iter()
                .all(|s| s.chars().all(|c| c.is_ascii_alphanumeric())),
            "test names only"
        );
        self.execute_sql(&format!(
            "UPDATE users SET role = '{role}' WHERE username_key = '{}'",
            username.to_lowercase()
        ))
        .await;
    }

    /// Reads one article, which must exist, and returns the Article object.
    pub async fn article(&self, slug: &str, token: Option<&str>) -> Value {
        let reply = self.get(&format!("/api/articles/{slug}"), token).await;
        reply.assert_status(StatusCode::OK);
        reply.body["article"].clone()
    }

    /// Comments on an article and returns the Comment object.
    pub async fn add_comment(&self, token: &str, slug: &str, body: &str) -> Value {
        let reply = self
            .post(
                &format!("/api/articles/{slug}/comments"),
                Some(token),
                json!({"comment": {"body": body}}),
            )
            .await;
        reply.assert_status(StatusCode::OK);
        assert_keys(&reply.body, &["comment"]);
        reply.body["comment"].clone()
    }

    /// Moves the server clock one second on, so what is created next is strictly newer.
    pub fn tick(&self) {
        self.clock.advance(Duration::from_secs(1));
    }

    /// Creates an article and returns its slug.
    pub async fn create_article(&self, token: &str, title: &str, tags: &[&str]) -> String {
        let reply = self
            .post("/api/articles", Some(token), json!({"article": {"title": title, "description": "about it", "body": "# Body\n\ntext", "tagList": tags}}))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "create article: {}",
            reply.body
        );
        reply.body["article"]["slug"]
            .as_str()
            .expect("slug")
            .to_owned()
    }
}

/// Runs one statement directly on the `engine` database at `database_url` (another
/// deployment's, a restore's target).
pub async fn execute_sql_at(engine: Engine, database_url: &str, sql: &str) {
    match engine {
        Engine::Sqlite => execute_on::<sqlx::SqliteConnection>(database_url, sql).await,
        Engine::Postgres => execute_on::<sqlx::PgConnection>(database_url, sql).await,
    }
}

/// [`TestApp::query_text`] on the `engine` database at `database_url`.
pub async fn query_text_at(engine: Engine, database_url: &str, sql: &str) -> Vec<String> {
    match engine {
        Engine::Sqlite => query_text_on::<sqlx::SqliteConnection>(database_url, sql).await,
        Engine::Postgres => query_text_on::<sqlx::PgConnection>(database_url, sql).await,
    }
}

/// Runs one statement on its own connection of type `C` (one per engine).
async fn execute_on<C>(database_url: &str, sql: &str)
where
    C: sqlx::Connection,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
    <C::Database as sqlx::Database>::Arguments: sqlx::IntoArguments<C::Database>,
{
    let mut connection = C::connect(database_url)
        .await
        .expect("connect to the test database");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut connection)
        .await
        .expect("statement runs");
}

/// Runs one query returning one text column on its own connection of type `C`.
async fn query_text_on<C>(database_url: &str, sql: &str) -> Vec<String>
where
    C: sqlx::Connection,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
    <C::Database as sqlx::Database>::Arguments: sqlx::IntoArguments<C::Database>,
    String: sqlx::Type<C::Database> + for<'r> sqlx::Decode<'r, C::Database>,
    for<'r> (String,): sqlx::FromRow<'r, <C::Database as sqlx::Database>::Row>,
{
    let mut connection = C::connect(database_url)
        .await
        .expect("connect to the test database");
    let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut connection)
        .await
        .expect("query runs");
    rows.into_iter().map(|(text,)| text).collect()
}

/// The access token of a User object (its `token`).
pub fn token_of(user: &Value) -> String {
    user["token"].as_str().expect("token").to_owned()
}

/// The refresh token of a User object (its `refreshToken`).
pub fn refresh_token_of(user: &Value) -> String {
    user["refreshToken"]
        .as_str()
        .expect("refreshToken")
        .to_owned()
}

/// A value shaped like a refresh token (256 random bits, base64url) that the server never
/// issued.
pub fn random_refresh_token() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}
