//! Micro-benchmarks of what every request (or every write) pays for (issue 17 item 5): token
//! verification (first sight and remembered), the revocation check, a rate-limit check, the
//! security headers, Markdown render + sanitise of a 4 KiB body, and one audit append.
//!
//!     cargo bench --bench hot_paths                 # all, criterion's defaults
//!     cargo bench --bench hot_paths -- token        # those whose name contains "token"
//!
//! Figures and how to read them: BENCHMARKS.md, "Hot paths (criterion)". The audit append
//! writes to a SQLite file in a temporary folder, so it includes a real commit.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a benchmark that cannot set up should stop loudly"
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use aerie::audit::{AuditEvent, AuditLog, EventType};
use aerie::auth::keys::SigningKey;
use aerie::auth::revocations::Revocations;
use aerie::auth::tokens::TokenService;
use aerie::clock::{Clock, SystemClock};
use aerie::defense::headers;
use aerie::defense::rate_limit::{DEFAULT_MAX_TRACKED_KEYS, Policy, RateLimiter, RateLimits};
use aerie::domain::{MarkdownLimits, Role, render_markdown};
use aerie::field_keys::FieldKeySettings;
use aerie::store::{DatabaseSettings, Store};
use axum::http::{HeaderMap, HeaderValue, header};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use secrecy::SecretString;

fn clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

fn tokens() -> TokenService {
    TokenService::new(
        SigningKey::generate(),
        "https://aerie.example".into(),
        "aerie".into(),
        Duration::from_secs(900),
        clock(),
    )
}

fn token_verification(c: &mut Criterion) {
    let service = tokens();
    let now = clock().now();
    let mut group = c.benchmark_group("token");
    // A token this server has not seen: the Ed25519 signature and every claim are checked,
    // then it is remembered. Signing the fresh token is setup, not measured.
    group.bench_function("verify_first_sight", |b| {
        b.iter_batched(
            || service.issue(42, "session-id-0123456789", Role::User, now),
            |token| black_box(service.check(&token)).is_ok(),
            BatchSize::SmallInput,
        );
    });
    // The same token again: answered from the verified-token cache (expiry still checked).
    let token = service.issue(42, "session-id-0123456789", Role::User, now);
    group.bench_function("verify_remembered", |b| {
        b.iter(|| black_box(service.check(black_box(&token))).is_ok());
    });
    group.finish();
}

fn revocation_check(c: &mut Criterion) {
    let revocations = Revocations::new(Duration::from_secs(900), clock());
    let revoked: Vec<String> = (0..10_000)
        .map(|n| format!("revoked-session-{n}"))
        .collect();
    revocations.insert(revoked.iter().map(String::as_str), clock().now());
    c.bench_function("revocation/is_revoked_among_10000", |b| {
        b.iter(|| black_box(revocations.is_revoked(black_box("a-live-session-id"))));
    });
}

fn rate_limit_check(c: &mut Criterion) {
    let limits = RateLimits {
        rates: Vec::new(),
        allowlist: Vec::new(),
        redis: None,
        max_tracked_keys: DEFAULT_MAX_TRACKED_KEYS,
    };
    let limiter = RateLimiter::new(&limits, clock());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    // 1,000 client addresses in turn, so the check finds an existing bucket (the steady
    // state) in a map of realistic size; the default global budget is never exhausted here
    // because time moves on between rounds.
    let addresses: Vec<String> = (0..1000)
        .map(|n| format!("198.51.{}.{}", n / 250, n % 250))
        .collect();
    let mut next = addresses.iter().cycle();
    c.bench_function("rate_limit/check_memory", |b| {
        b.to_async(&runtime).iter(|| {
            let key = next.next().expect("cycle");
            let limiter = &limiter;
            async move { black_box(limiter.check(Policy::Global, key).await).is_ok() }
        });
    });
}

fn security_headers(c: &mut Criterion) {
    let hsts = Some(headers::hsts(false));
    c.bench_function("headers/preset_and_hsts", |b| {
        b.iter_batched(
            || {
                let mut map = HeaderMap::new();
                map.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                map
            },
            |mut map| {
                headers::apply(&mut map, hsts.clone());
                map
            },
            BatchSize::SmallInput,
        );
    });
}

/// About 4 KiB of the Markdown an article holds: headings, emphasis, links, lists, code, a
/// table, a quote, and HTML the sanitiser must strip.
fn article_body() -> String {
    let section = "## A heading with *emphasis*\n\n\
        A paragraph with **bold**, `code`, a [link](https://example.com/path?q=1) and an \
        autolink <https://example.org>. Some more words to make it read like prose, not a \
        test vector.\n\n\
        - one item\n- two items with [a link](https://example.net)\n- three\n\n\
        ```rust\nfn main() { println!(\"hello\"); }\n```\n\n\
        | a | b |\n|---|---|\n| 1 | 2 |\n\n\
        > a quote\n\n\
        <script>alert(1)</script><img src=x onerror=alert(1)>\n\n";
    let mut body = String::new();
    while body.len() < 4096 {
        body.push_str(section);
    }
    body.truncate(4096);
    body
}

fn markdown(c: &mut Criterion) {
    let body = article_body();
    let limits = MarkdownLimits::default();
    c.bench_function("markdown/render_and_sanitise_4kib", |b| {
        b.iter(|| black_box(render_markdown(black_box(&body), &limits)).is_ok());
    });
}

fn audit_append(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let folder = tempfile::tempdir().expect("tempdir");
    let log = runtime.block_on(async {
        let settings = DatabaseSettings {
            url: SecretString::from(format!(
                "sqlite://{}?mode=rwc",
                folder.path().join("bench.db").display()
            )),
            max_connections: 4,
            auto_migrate: true,
            statement_budget: Duration::from_secs(5),
            field_keys: FieldKeySettings {
                file: folder.path().join("data-keys"),
                generate: true,
                legacy_mfa_key: None,
            },
        };
        let store = Store::connect(&settings).await.expect("store");
        store.migrate().await.expect("migrations");
        AuditLog::open(store, &folder.path().join("audit-key"), true, clock()).expect("audit log")
    });
    // One event at a time: the latency of a lone append (seal, chain, commit). Under load the
    // writer batches appends into one commit, so this is the worst case per event.
    c.bench_function("audit/append_sqlite", |b| {
        b.to_async(&runtime).iter(|| async {
            log.record(AuditEvent::new(EventType::LoginFailed).actor(7))
                .await
                .expect("append")
        });
    });
}

criterion_group!(
    hot_paths,
    token_verification,
    revocation_check,
    rate_limit_check,
    security_headers,
    markdown,
    audit_append
);
criterion_main!(hot_paths);
