//! The shared store: every instance keeps its buckets in one Redis, so a limit holds for the
//! deployment, not per instance (two instances must not mean twice the login guesses).
//!
//! One check is one `EVALSHA` of a small GCRA script that reads the bucket's theoretical
//! arrival time (TAT), decides, and writes the new TAT with its expiry in the same `SET … PX`:
//! atomic on the server, so there is no INCR-then-EXPIRE race (a crash between the two leaving
//! an immortal counter) and no read-modify-write race between instances.
//!
//! Time comes from Redis (`TIME` inside the script), not from the caller. The TAT is compared
//! with "now" on every check; if each instance supplied its own now, an instance whose clock
//! runs ahead would see every bucket as refilled early and one running behind would refuse
//! clients who have budget. One clock for every reader of a key removes the skew altogether;
//! the cost is that a test cannot move Redis time, which is why the manual-clock tests run on
//! the memory store and the Redis tests use long windows.
//!
//! Keys are `{prefix}rl:{policy}:{sha256(key)}` (the key's [`Fingerprint`]). The bucket key
//! holds user input (an email address at login); hashing it gives every key a fixed length and an alphabet of hex digits,
//! so no `:`, `*`, newline or megabyte-long address can make two buckets collide, reach
//! another policy's or another application's keys, or bloat Redis.
//!
//! A hung or unreachable Redis never holds a request: every command is bounded by
//! `AERIE_REDIS_TIMEOUT_MS`, and the caller then does what `AERIE_REDIS_FAILURE` says.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{Client, RedisError, Script};
use secrecy::ExposeSecret;

use super::policy::{Decision, Policy, Rate};
use super::settings::{RedisSettings, StoreFailure};
use crate::clock::Clock;
use crate::fingerprint::Fingerprint;

/// GCRA on one key, in microseconds of Redis server time. KEYS[1] = bucket;
/// ARGV[1] = emission interval (µs), ARGV[2] = burst. Returns {1, remaining} or
/// {0, retry_after_µs}. Mirrors `governor`'s arithmetic so both stores send the same headers.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tau = interval * (tonumber(ARGV[2]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local allow_at = tat - tau
if now < allow_at then
  return {0, allow_at - now}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {1, math.floor((now + interval + tau - new_tat) / interval)}
";

/// The same arithmetic without the update: {1, cells left counting the one a check would
/// take} or {0, retry_after_µs}. Login asks this before the password and charges a bucket
/// only after a failure, so a correct login costs no failure budget.
const PEEK: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tau = interval * (tonumber(ARGV[2]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local allow_at = tat - tau
if now < allow_at then
  return {0, allow_at - now}
end
return {1, math.min(tonumber(ARGV[2]), math.floor((now + tau - tat) / interval) + 1)}
";

/// Store failures are logged at most this often; the rest are counted.
const LOG_EVERY_MILLIS: u64 = 10_000;

pub struct RedisBuckets {
    connection: ConnectionManager,
    script: Script,
    peek: Script,
    prefix: String,
    timeout: Duration,
    pub failure: StoreFailure,
    clock: Arc<dyn Clock>,
    last_logged: AtomicI64,
    unlogged: AtomicU64,
}

/// Why a check did not reach a decision.
#[derive(Debug)]
pub enum StoreError {
    Timeout,
    Redis(RedisError),
}

impl RedisBuckets {
    /// Connects lazily: the server starts, and answers per `failure`, while Redis is down.
    pub fn new(settings: &RedisSettings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let client = client(settings)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(Some(settings.timeout))
            // One quick retry; the request's own deadline bounds the rest.
            .set_number_of_retries(1)
            .set_max_delay(settings.timeout);
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| anyhow::anyhow!("AERIE_REDIS_URL: {}", e.category()))?;
        Ok(Self {
            connection,
            script: Script::new(GCRA),
            peek: Script::new(PEEK),
            prefix: settings.prefix.clone(),
            timeout: settings.timeout,
            failure: settings.failure,
            clock,
            last_logged: AtomicI64::new(i64::MIN),
            unlogged: AtomicU64::new(0),
        })
    }

    /// Takes one cell from `key`'s bucket of `policy`.
    pub async fn check(
        &self,
        policy: Policy,
        rate: Rate,
        key: &Fingerprint,
    ) -> Result<Decision, StoreError> {
        self.run(&self.script, policy, rate, key).await
    }

    /// What [`Self::check`] would answer, without taking a cell.
    pub async fn peek(
        &self,
        policy: Policy,
        rate: Rate,
        key: &Fingerprint,
    ) -> Result<Decision, StoreError> {
        self.run(&self.peek, policy, rate, key).await
    }

    async fn run(
        &self,
        script: &Script,
        policy: Policy,
        rate: Rate,
        key: &Fingerprint,
    ) -> Result<Decision, StoreError> {
        let interval = u64::try_from(rate.interval().as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut connection = self.connection.clone();
        let mut invocation = script.key(bucket_key(&self.prefix, policy, key));
        invocation.arg(interval).arg(rate.burst.get());
        let reply: (i64, i64) =
            tokio::time::timeout(self.timeout, invocation.invoke_async(&mut connection))
                .await
                .map_err(|_| StoreError::Timeout)?
                .map_err(StoreError::Redis)?;
        let value = u64::try_from(reply.1).unwrap_or(0);
        Ok(match reply.0 {
            1 => Decision::Allowed {
                remaining: u32::try_from(value).unwrap_or(u32::MAX),
            },
            _ => Decision::Limited {
                retry_after: Duration::from_micros(value),
            },
        })
    }

    /// One PING at start, bounded by `limit`: a refusal that no retry cures (the certificate
    /// is not trusted, the credentials are wrong) is [`Probe::Refused`] with the setting to
    /// change; a Redis that is down or slow is [`Probe::Unreachable`] (the failure policy then
    /// applies until it is back).
    pub async fn probe(&self, limit: Duration) -> Probe {
        let mut connection = self.connection.clone();
        let command = redis::cmd("PING");
        let ping = command.query_async::<String>(&mut connection);
        match tokio::time::timeout(limit, ping).await {
            Ok(Ok(_)) => Probe::Answers,
            Err(_) => Probe::Unreachable("timeout".to_owned()),
            Ok(Err(error)) => classify(&error),
        }
    }

    /// Whether Redis answers a PING within the timeout (for `/readyz`).
    pub async fn ping(&self) -> bool {
        let mut connection = self.connection.clone();
        let command = redis::cmd("PING");
        let ping = command.query_async::<String>(&mut connection);
        matches!(tokio::time::timeout(self.timeout, ping).await, Ok(Ok(_)))
    }

    /// Counts every failure, and logs one every ten seconds with how many went unlogged,
    /// so an outage is visible without a log line per request. Only the error's kind is
    /// logged: messages from the client can quote the connection address.
    pub fn report(&self, error: &StoreError) {
        metrics::counter!("aerie_rate_limit_store_errors_total").increment(1);
        let now = self.clock.now();
        let last = self.last_logged.load(Ordering::Relaxed);
        // Either way from the last line: a clock stepped back by less than the interval only
        // delays the next one.
        let due = now.abs_diff(last) >= LOG_EVERY_MILLIS;
        if !due
            || self
                .last_logged
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let kind = match error {
            StoreError::Timeout => "timeout",
            StoreError::Redis(error) => error.category(),
        };
        tracing::warn!(
            error = kind,
            since_last_log = self.unlogged.swap(0, Ordering::Relaxed),
            on_failure = self.failure.name(),
            "rate-limit store (Redis) unavailable"
        );
    }
}

/// What one PING at start found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Answers,
    /// Down, slow or unreachable: the error's kind (never its message, which may quote the
    /// address).
    Unreachable(String),
    /// Reached, but refused for a reason only a setting can fix: a sentence naming it.
    Refused(String),
}

/// Sorts a failed PING: an untrusted certificate or refused credentials are the operator's
/// to fix; anything else may pass by itself.
fn classify(error: &RedisError) -> Probe {
    if error.kind() == redis::ErrorKind::AuthenticationFailed
        || error
            .code()
            .is_some_and(|code| matches!(code, "NOAUTH" | "WRONGPASS" | "NOPERM"))
    {
        return Probe::Refused(
            "Redis refused the credentials: check the user in AERIE_REDIS_URL and the password in AERIE_REDIS_PASSWORD_FILE (the ACL user needs +@connection +evalsha +eval +script|load +get +set +time on the prefix's keys)".to_owned(),
        );
    }
    if let Some(problem) = certificate_problem(error) {
        return Probe::Refused(format!(
            "the Redis server's TLS certificate was refused ({problem}): trust its CA with AERIE_REDIS_CA_FILE, or check the host name in AERIE_REDIS_URL against the certificate"
        ));
    }
    if error.kind() == redis::ErrorKind::InvalidClientConfig {
        return Probe::Refused(format!(
            "the Redis client cannot be set up with these settings ({})",
            error.category()
        ));
    }
    Probe::Unreachable(error.category().to_owned())
}

/// The certificate verification error in `error`, if that is why the handshake failed:
/// rustls's own words (`invalid peer certificate: UnknownIssuer`), which name no secret. The
/// client wraps the TLS error in I/O errors whose `source` chain skips it, so its text is read.
fn certificate_problem(error: &RedisError) -> Option<String> {
    let text = error.to_string();
    let start = text.find("invalid peer certificate")?;
    Some(text[start..].chars().take(120).collect())
}

/// The client for `settings`: the URL, with the password from `AERIE_REDIS_PASSWORD_FILE`
/// when set, and for `rediss://` a TLS client on rustls/ring that verifies the server's
/// certificate against `AERIE_REDIS_CA_FILE` alone when set, else the system's roots.
/// Errors name the setting, never the URL (it may hold the password).
pub fn client(settings: &RedisSettings) -> anyhow::Result<Client> {
    use redis::IntoConnectionInfo as _;
    // The parser's message can quote the URL, password and all.
    let mut info = settings
        .url
        .expose_secret()
        .into_connection_info()
        .map_err(|_| anyhow::anyhow!("AERIE_REDIS_URL: not a valid redis:// or rediss:// URL"))?;
    if let Some(password) = &settings.password {
        let with_password = info
            .redis_settings()
            .clone()
            .set_password(password.expose_secret());
        info = info.set_redis_settings(with_password);
    }
    if !matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. }) {
        return Client::open(info)
            .map_err(|e| anyhow::anyhow!("AERIE_REDIS_URL: {}", e.category()));
    }
    // The one TLS stack of the build; a no-op when the listener already installed it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let root_cert = match &settings.ca_file {
        None => None,
        Some(file) => {
            let pem = std::fs::read(file)
                .map_err(|e| anyhow::anyhow!("AERIE_REDIS_CA_FILE: {}: {e}", file.display()))?;
            use rustls::pki_types::pem::PemObject as _;
            let certificates = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| anyhow::anyhow!("AERIE_REDIS_CA_FILE: {}: not PEM", file.display()))?;
            if certificates.is_empty() {
                anyhow::bail!(
                    "AERIE_REDIS_CA_FILE: {}: holds no PEM certificate",
                    file.display()
                );
            }
            Some(pem)
        }
    };
    Client::build_with_tls(
        info,
        redis::TlsCertificates {
            client_tls: None,
            root_cert,
        },
    )
    .map_err(|e| anyhow::anyhow!("AERIE_REDIS_CA_FILE: {}", e.category()))
}

/// `{prefix}rl:{policy}:{hex sha256(key)}`: see the module doc for why the key is hashed.
pub fn bucket_key(prefix: &str, policy: Policy, key: &Fingerprint) -> String {
    format!("{prefix}rl:{}:{}", policy.name(), key.hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_controlled_keys_cannot_collide_or_escape_the_prefix() {
        let long = "a".repeat(100_000);
        let keys = [
            "account:bob@example.com",
            "account:bob@example.com\n",
            "account:bob@example.com:*",
            "account:*",
            "account:bob@example.com:rl:global:x",
            long.as_str(),
        ];
        let mut seen = std::collections::HashSet::new();
        for key in keys {
            let bucket = bucket_key("aerie:", Policy::LoginAccount, &Fingerprint::of(key));
            assert!(bucket.starts_with("aerie:rl:login-account:"), "{bucket}");
            let tail = &bucket["aerie:rl:login-account:".len()..];
            assert_eq!(tail.len(), 64);
            assert!(tail.bytes().all(|b| b.is_ascii_hexdigit()));
            assert!(seen.insert(bucket));
        }
        assert_ne!(
            bucket_key("aerie:", Policy::LoginIp, &Fingerprint::of("k")),
            bucket_key("aerie:", Policy::LoginAccount, &Fingerprint::of("k")),
            "policies are separate"
        );
    }

    #[test]
    fn failure_modes_parse_and_auth_closed_refuses_only_credential_policies() {
        assert_eq!(StoreFailure::parse("open"), Some(StoreFailure::Open));
        assert_eq!(StoreFailure::parse("closed"), Some(StoreFailure::Closed));
        assert_eq!(StoreFailure::parse("Closed"), None);
        let mode = StoreFailure::parse("auth-closed").expect("valid");
        for policy in [
            Policy::LoginIp,
            Policy::LoginAccount,
            Policy::Register,
            Policy::Refresh,
            Policy::Mfa,
        ] {
            assert!(mode.refuses(policy), "{policy:?}");
        }
        assert!(!mode.refuses(Policy::Global));
        assert!(!mode.refuses(Policy::Writes));
    }

    /// The peek script against a live Redis (`AERIE_TEST_REDIS_URL`), beside the check.
    #[tokio::test]
    async fn a_peek_on_redis_agrees_with_the_check_and_takes_nothing() {
        let Ok(url) = std::env::var("AERIE_TEST_REDIS_URL") else {
            eprintln!("SKIPPED: AERIE_TEST_REDIS_URL is not set");
            return;
        };
        let settings = RedisSettings {
            url: url.into(),
            password: None,
            ca_file: None,
            prefix: format!("aerie-unit:{}:", uuid::Uuid::new_v4().simple()),
            timeout: Duration::from_secs(2),
            failure: StoreFailure::Closed,
        };
        let clock = std::sync::Arc::new(crate::clock::ManualClock::starting_now());
        let store = RedisBuckets::new(&settings, clock).expect("store");
        let rate = Rate::parse("5/900").expect("rate");
        let key = Fingerprint::of("k");
        let peek = store
            .peek(Policy::LoginPair, rate, &key)
            .await
            .expect("peek");
        assert!(
            matches!(peek, Decision::Allowed { remaining: 5 }),
            "{peek:?}"
        );
        let check = store
            .check(Policy::LoginPair, rate, &key)
            .await
            .expect("check");
        assert!(
            matches!(check, Decision::Allowed { remaining: 4 }),
            "{check:?}"
        );
        let peek = store
            .peek(Policy::LoginPair, rate, &key)
            .await
            .expect("peek");
        assert!(
            matches!(peek, Decision::Allowed { remaining: 4 }),
            "{peek:?}"
        );
    }
}
