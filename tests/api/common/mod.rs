//! The black-box test harness: boots the real server on `127.0.0.1:0` against a fresh
//! database (an SQLite file in a temporary folder, or a new PostgreSQL database when
//! `AERIE_TEST_POSTGRES_URL` is set) and talks to it over HTTP. `engine_tests!` runs each
//! test on both engines.

mod app;
mod audit;
mod cli;
mod deployment;
mod fixtures;
mod half_sent;
mod locker;
mod metrics;
mod pebble;
mod process;
mod raw;
mod relay;
mod requests;
mod shapes;
mod smtp;

pub use app::TestApp;
pub use app::fresh_postgres_database;
pub use audit::{audit_rows, rows_of};
pub use cli::{aerie, run_aerie, run_aerie_with};
pub use deployment::{Caller, Deployment, delete_redis_keys, test_redis, two_instances};
pub use fixtures::{
    PASSWORD, execute_sql_at, query_text_at, random_refresh_token, refresh, refresh_token_of,
    refreshed, token_of,
};
pub use half_sent::{HalfSent, start_registration_at, until_the_listener_closes};
pub use locker::Locker;
pub use metrics::{Sample, fresh_metrics_token};
pub use pebble::{PebblePorts, pebble_installed};
pub use process::{
    ServerProcess, refused_to_start, run_to_exit, start_logging_server, start_server,
};
pub use raw::read_head;
pub use relay::Relay;
pub use requests::{Reply, assert_unauthorized, read};
pub use shapes::{
    ARTICLE_KEYS, LISTED_ARTICLE_KEYS, PROFILE_KEYS, assert_keys, assert_timestamp, slugs,
};
pub use smtp::{APP_URL, Mail, SmtpServer};

/// The database engine a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Lists engine tests: for each `async fn name(app: TestApp)` (or `(engine: Engine)`, for a
/// test that boots its own servers) in the calling module, generates `name::sqlite`, which
/// always runs, and `name::postgres`, which runs when `AERIE_TEST_POSTGRES_URL` is set and
/// says loudly that it was skipped otherwise. Attributes written before a name (`#[ignore =
/// "why"]`) are put on both variants, so none is dropped silently.
macro_rules! engine_tests {
    ($($(#[$attribute:meta])* $name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                $(#[$attribute])*
                async fn sqlite() {
                    $crate::common::run_on($crate::common::Engine::Sqlite, super::$name).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                $(#[$attribute])*
                async fn postgres() {
                    $crate::common::run_on($crate::common::Engine::Postgres, super::$name).await;
                }
            }
        )+
    };
}
pub(crate) use engine_tests;

/// Runs one engine test on `engine`: boots what the test takes (a server, or nothing for a
/// test that boots its own), or skips the PostgreSQL variant, saying so, when no PostgreSQL
/// server is configured.
pub async fn run_on<T: Subject, F: Future<Output = ()>>(engine: Engine, test: impl FnOnce(T) -> F) {
    if engine == Engine::Postgres && !postgres_configured() {
        return;
    }
    test(T::boot(engine).await).await;
}

/// Whether the PostgreSQL variants can run; prints why not when they cannot.
pub fn postgres_configured() -> bool {
    let configured = std::env::var("AERIE_TEST_POSTGRES_URL").is_ok();
    if !configured {
        eprintln!("SKIPPED: AERIE_TEST_POSTGRES_URL is not set; PostgreSQL variant not run");
    }
    configured
}

/// What an engine test takes as its argument, made ready for one engine.
pub trait Subject {
    fn boot(engine: Engine) -> impl Future<Output = Self>;
}

/// A test that drives one fresh server.
impl Subject for TestApp {
    async fn boot(engine: Engine) -> Self {
        TestApp::spawn(engine).await
    }
}

/// A test that boots its own servers, with its own settings.
impl Subject for Engine {
    async fn boot(engine: Engine) -> Self {
        engine
    }
}
