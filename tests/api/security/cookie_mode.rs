//! Cookie mode for browsers (asvs.md 23, attacks.md §2 S11 and §7 C1, C2, C4, C6–C9): tokens in
//! `__Host-` `HttpOnly` cookies and never in the body, a double-submit CSRF token and a trusted
//! `Origin` on every state change the cookie authenticates, cookies cleared at logout, and
//! clients that send `Authorization` untouched by any of it.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{self, Engine, Reply, TestApp, engine_tests};

/// Trusted without configuration in development (a loopback front end).
const DEV_ORIGIN: &str = "http://localhost:5173";
const EVIL_ORIGIN: &str = "https://evil.example";
/// Trusted only when configured.
const APP_ORIGIN: &str = "https://app.example.com";
const ACCESS: &str = "__Host-aerie-access";
const REFRESH: &str = "__Host-aerie-refresh";
const CSRF: &str = "__Host-aerie-csrf";

/// A request with exactly the headers given (and a JSON body when given).
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Reply {
    let mut request = app.client.request(method, app.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    common::read(request.send().await.expect("request sent")).await
}

/// The session `Set-Cookie` lines of a reply, by cookie name. The login guard's device
/// cookie (`__Host-aerie-device`, set on every login whatever the mode) is not a session
/// cookie: `security/lockout.rs` tests it.
fn set_cookies(reply: &Reply) -> HashMap<String, String> {
    reply
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .map(|line| (line.split('=').next().unwrap_or_default().to_owned(), line))
        .filter(|(name, _)| name != "__Host-aerie-device")
        .collect()
}

/// The value a `Set-Cookie` line sets.
fn value_of(line: &str) -> String {
    line.split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, value)| value.to_owned())
        .expect("name=value")
}

/// What a browser holds after a cookie-mode login, register or refresh.
#[derive(Debug, Clone)]
struct Jar {
    access: String,
    refresh: String,
    csrf: String,
}

impl Jar {
    fn from_reply(reply: &Reply) -> Self {
        let cookies = set_cookies(reply);
        let get = |name: &str| {
            value_of(
                cookies
                    .get(name)
                    .unwrap_or_else(|| panic!("{name} set: {cookies:?}")),
            )
        };
        Self {
            access: get(ACCESS),
            refresh: get(REFRESH),
            csrf: get(CSRF),
        }
    }

    /// The `Cookie` header a browser sends back.
    fn header(&self) -> String {
        format!(
            "{ACCESS}={}; {REFRESH}={}; {CSRF}={}",
            self.access, self.refresh, self.csrf
        )
    }
}

/// Registers `name` through a plain client, then logs in as a browser.
async fn browser_login(app: &TestApp, name: &str, origin: &str) -> (Reply, Jar) {
    app.register_user(name).await;
    let reply = send(
        app,
        Method::POST,
        "/api/users/login",
        &[("X-Aerie-Client", "browser"), ("Origin", origin)],
        Some(
            json!({"user": {"email": format!("{name}@example.com"), "password": common::PASSWORD}}),
        ),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "browser login: {}",
        reply.body
    );
    let jar = Jar::from_reply(&reply);
    (reply, jar)
}

/// A cookie-authenticated article creation with the given CSRF header and origin.
async fn post_article(
    app: &TestApp,
    jar: &Jar,
    csrf: Option<&str>,
    origin: Option<(&str, &str)>,
) -> Reply {
    let cookie = jar.header();
    let mut headers = vec![("Cookie", cookie.as_str())];
    if let Some(token) = csrf {
        headers.push(("X-CSRF-Token", token));
    }
    if let Some(origin) = origin {
        headers.push(origin);
    }
    send(
        app,
        Method::POST,
        "/api/articles",
        &headers,
        Some(json!({"article": {"title": "Forged?", "description": "d", "body": "b"}})),
    )
    .await
}

async fn article_count(app: &TestApp) -> u64 {
    app.get("/api/articles", None).await.body["articlesCount"]
        .as_u64()
        .expect("count")
}

#[track_caller]
fn assert_forbidden(reply: &Reply, case: &str) {
    assert_eq!(
        reply.status,
        StatusCode::FORBIDDEN,
        "{case}: {}",
        reply.body
    );
    assert_eq!(
        reply.body,
        json!({"errors": {"access": ["is denied"]}}),
        "{case}"
    );
}

async fn browser_login_sets_host_cookies_with_exact_attributes_and_no_tokens_in_the_body(
    app: TestApp,
) {
    let (reply, jar) = browser_login(&app, "bob", DEV_ORIGIN).await;
    let cookies = set_cookies(&reply);
    assert_eq!(cookies.len(), 3, "{cookies:?}");
    assert_eq!(
        cookies[ACCESS],
        format!(
            "{ACCESS}={}; Max-Age=900; Path=/; Secure; HttpOnly; SameSite=Strict",
            jar.access
        )
    );
    assert_eq!(
        cookies[REFRESH],
        format!(
            "{REFRESH}={}; Max-Age=604800; Path=/; Secure; HttpOnly; SameSite=Strict",
            jar.refresh
        )
    );
    // Readable by the front end, which echoes it in X-CSRF-Token.
    assert_eq!(
        cookies[CSRF],
        format!(
            "{CSRF}={}; Max-Age=604800; Path=/; Secure; SameSite=Strict",
            jar.csrf
        )
    );
    assert_eq!(jar.access.split('.').count(), 3, "a JWT");
    assert_eq!(jar.refresh.len(), 43);
    assert_eq!(jar.csrf.len(), 43);
    assert_eq!(
        reply.headers["x-csrf-token"],
        jar.csrf.as_str(),
        "for front ends on another origin"
    );
    common::assert_keys(
        &reply.body["user"],
        &["email", "username", "bio", "image", "role", "emailVerified"],
    );
    for secret in [&jar.access, &jar.refresh] {
        assert!(!reply.body.to_string().contains(secret.as_str()));
    }
    let registered = send(
        &app,
        Method::POST,
        "/api/users",
        &[("X-Aerie-Client", "browser")],
        Some(json!({"user": {"username": "carol", "email": "carol@example.com", "password": common::PASSWORD}})),
    )
    .await;
    registered.assert_status(StatusCode::CREATED);
    assert_eq!(set_cookies(&registered).len(), 3);
    common::assert_keys(
        &registered.body["user"],
        &["email", "username", "bio", "image", "role", "emailVerified"],
    );
}

async fn the_access_cookie_authenticates_reads_without_echoing_the_token(app: TestApp) {
    let (_, jar) = browser_login(&app, "bob", DEV_ORIGIN).await;
    let cookie = jar.header();
    let me = send(&app, Method::GET, "/api/user", &[("Cookie", &cookie)], None).await;
    me.assert_status(StatusCode::OK);
    assert_eq!(me.body["user"]["username"], "bob");
    assert!(me.body["user"].get("token").is_none(), "{}", me.body);
    let feed = send(
        &app,
        Method::GET,
        "/api/articles/feed",
        &[("Cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(feed.status, StatusCode::OK);
    // Only our cookie counts: the same token under another name is no credential.
    let renamed = format!("token={}", jar.access);
    let other = send(
        &app,
        Method::GET,
        "/api/user",
        &[("Cookie", &renamed)],
        None,
    )
    .await;
    assert_eq!(other.status, StatusCode::UNAUTHORIZED);
}

/// Cookie tossing: an attacker who can plant a cookie in the victim's browser (a sibling
/// subdomain on a browser that ignores `__Host-`, a script injected elsewhere on the site)
/// adds an access cookie of their own beside the victim's. Whichever the server picked, one of
/// them would act as someone they are not (the victim's requests landing in the attacker's
/// account, to harvest what the victim types). Two cookies of the same name are ambiguous and
/// neither is read, in either order.
async fn a_tossed_second_access_cookie_is_refused_not_guessed(app: TestApp) {
    let (_, victim) = browser_login(&app, "victim", DEV_ORIGIN).await;
    let (_, attacker) = browser_login(&app, "tosser", DEV_ORIGIN).await;
    for (first, second) in [(&attacker, &victim), (&victim, &attacker)] {
        let cookie = format!("{ACCESS}={}; {ACCESS}={}", first.access, second.access);
        let me = send(&app, Method::GET, "/api/user", &[("Cookie", &cookie)], None).await;
        assert_eq!(me.status, StatusCode::UNAUTHORIZED, "{}", me.body);
    }
    // Each alone is the credential it was issued as.
    for (jar, name) in [(&victim, "victim"), (&attacker, "tosser")] {
        let cookie = format!("{ACCESS}={}", jar.access);
        let me = send(&app, Method::GET, "/api/user", &[("Cookie", &cookie)], None).await;
        me.assert_status(StatusCode::OK);
        assert_eq!(me.body["user"]["username"], name);
    }
}

async fn cross_site_state_changes_with_the_cookie_are_refused_and_change_nothing(app: TestApp) {
    let (_, jar) = browser_login(&app, "bob", DEV_ORIGIN).await;
    let evil = ("Origin", EVIL_ORIGIN);
    let trusted = ("Origin", DEV_ORIGIN);
    let wrong = common::random_refresh_token();
    for (csrf, origin, case) in [
        (None, Some(evil), "C1: foreign origin, no CSRF token"),
        (
            Some(jar.csrf.as_str()),
            Some(evil),
            "foreign origin with the right token",
        ),
        (None, Some(trusted), "C4: trusted origin, no CSRF token"),
        (
            Some(wrong.as_str()),
            Some(trusted),
            "C4: trusted origin, wrong CSRF token",
        ),
        (
            Some(jar.csrf.as_str()),
            None,
            "C2: no Origin and no Referer",
        ),
        (
            Some(jar.csrf.as_str()),
            Some(("Origin", "null")),
            "null origin",
        ),
        (
            Some(jar.csrf.as_str()),
            Some(("Referer", "https://evil.example/page")),
            "foreign referer",
        ),
    ] {
        assert_forbidden(&post_article(&app, &jar, csrf, origin).await, case);
    }
    // C4, planted: a token the server never minted, sent alike as cookie and header (what a
    // page that can toss cookies would send). It has the length of ours, not the alphabet.
    let planted = Jar {
        csrf: "!".repeat(jar.csrf.len()),
        ..jar.clone()
    };
    assert_forbidden(
        &post_article(&app, &planted, Some(&planted.csrf), Some(trusted)).await,
        "C4: a matching pair of tokens of a shape never minted",
    );
    assert_eq!(article_count(&app).await, 0, "nothing was created");
    let referer = post_article(
        &app,
        &jar,
        Some(&jar.csrf),
        Some(("Referer", "http://localhost:5173/editor")),
    )
    .await;
    assert_eq!(
        referer.status,
        StatusCode::CREATED,
        "a trusted Referer stands in for Origin: {}",
        referer.body
    );
    let ok = post_article(&app, &jar, Some(&jar.csrf), Some(trusted)).await;
    ok.assert_status(StatusCode::CREATED);
    assert_eq!(article_count(&app).await, 2);
    // A cookie-authenticated read that names a foreign origin is refused too.
    let cookie = jar.header();
    let read = send(
        &app,
        Method::GET,
        "/api/user",
        &[("Cookie", &cookie), evil],
        None,
    )
    .await;
    assert_forbidden(&read, "cross-origin read with the cookie");
}

async fn login_csrf_from_a_foreign_origin_is_refused(app: TestApp) {
    app.register_user("bob").await;
    let reply = send(
        &app,
        Method::POST,
        "/api/users/login",
        &[("X-Aerie-Client", "browser"), ("Origin", EVIL_ORIGIN)],
        Some(json!({"user": {"email": "bob@example.com", "password": common::PASSWORD}})),
    )
    .await;
    assert_forbidden(&reply, "C8: browser login from another site");
    assert!(set_cookies(&reply).is_empty());
}

async fn refresh_by_cookie_rotates_the_cookies(app: TestApp) {
    let (_, jar) = browser_login(&app, "bob", DEV_ORIGIN).await;
    let cookie = jar.header();
    let no_origin = send(
        &app,
        Method::POST,
        "/api/auth/refresh",
        &[("Cookie", &cookie)],
        Some(json!({})),
    )
    .await;
    assert_forbidden(&no_origin, "refresh by cookie without an origin");
    let foreign = send(
        &app,
        Method::POST,
        "/api/auth/refresh",
        &[("Cookie", &cookie), ("Origin", EVIL_ORIGIN)],
        Some(json!({})),
    )
    .await;
    assert_forbidden(&foreign, "refresh by cookie from another site");
    let reply = send(
        &app,
        Method::POST,
        "/api/auth/refresh",
        &[("Cookie", &cookie), ("Origin", DEV_ORIGIN)],
        Some(json!({})),
    )
    .await;
    reply.assert_status(StatusCode::OK);
    common::assert_keys(
        &reply.body["user"],
        &["email", "username", "bio", "image", "role", "emailVerified"],
    );
    let next = Jar::from_reply(&reply);
    assert_ne!(next.access, jar.access);
    assert_ne!(next.refresh, jar.refresh);
    assert_eq!(
        next.csrf, jar.csrf,
        "the front end's copy of the CSRF token stays valid"
    );
    assert_eq!(reply.headers["x-csrf-token"], jar.csrf.as_str());
    let me = send(
        &app,
        Method::GET,
        "/api/user",
        &[("Cookie", &next.header())],
        None,
    )
    .await;
    assert_eq!(me.status, StatusCode::OK);
    // The rotated-out cookie is dead (and, presented after the grace window, is reuse).
    app.clock.advance(Duration::from_secs(6));
    let stale = send(
        &app,
        Method::POST,
        "/api/auth/refresh",
        &[("Cookie", &cookie), ("Origin", DEV_ORIGIN)],
        Some(json!({})),
    )
    .await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED);
    // A body token with the browser header is answered in cookies too.
    let other = app.login_user("bob").await;
    let by_body = send(
        &app,
        Method::POST,
        "/api/auth/refresh",
        &[("X-Aerie-Client", "browser")],
        Some(json!({"refreshToken": other["refreshToken"]})),
    )
    .await;
    by_body.assert_status(StatusCode::OK);
    assert_eq!(set_cookies(&by_body).len(), 3);
    assert!(by_body.body["user"].get("refreshToken").is_none());
}

async fn logout_clears_the_cookies_and_the_old_cookie_is_refused(app: TestApp) {
    let (_, jar) = browser_login(&app, "bob", DEV_ORIGIN).await;
    let cookie = jar.header();
    let forged = send(
        &app,
        Method::POST,
        "/api/auth/logout",
        &[("Cookie", &cookie), ("Origin", EVIL_ORIGIN)],
        Some(json!({})),
    )
    .await;
    assert_forbidden(&forged, "forced logout from another site");
    let reply = send(
        &app,
        Method::POST,
        "/api/auth/logout",
        &[
            ("Cookie", &cookie),
            ("Origin", DEV_ORIGIN),
            ("X-CSRF-Token", &jar.csrf),
        ],
        Some(json!({})),
    )
    .await;
    reply.assert_status(StatusCode::NO_CONTENT);
    let cleared = set_cookies(&reply);
    assert_eq!(
        cleared[ACCESS],
        format!("{ACCESS}=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Strict")
    );
    assert_eq!(
        cleared[REFRESH],
        format!("{REFRESH}=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Strict")
    );
    assert_eq!(
        cleared[CSRF],
        format!("{CSRF}=; Max-Age=0; Path=/; Secure; SameSite=Strict")
    );
    let me = send(&app, Method::GET, "/api/user", &[("Cookie", &cookie)], None).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED, "the old access cookie");
    let refresh = send(
        &app,
        Method::POST,
        "/api/auth/refresh",
        &[("Cookie", &cookie), ("Origin", DEV_ORIGIN)],
        Some(json!({})),
    )
    .await;
    assert_eq!(
        refresh.status,
        StatusCode::UNAUTHORIZED,
        "the old refresh cookie"
    );
    // A stale cookie the page cannot delete does not lock it out of public pages.
    let public = send(
        &app,
        Method::GET,
        "/api/articles",
        &[("Cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(public.status, StatusCode::OK);

    let (_, jar) = browser_login(&app, "alice", DEV_ORIGIN).await;
    let cookie = jar.header();
    let all = send(
        &app,
        Method::POST,
        "/api/auth/logout-all",
        &[
            ("Cookie", &cookie),
            ("Origin", DEV_ORIGIN),
            ("X-CSRF-Token", &jar.csrf),
        ],
        Some(json!({})),
    )
    .await;
    all.assert_status(StatusCode::NO_CONTENT);
    assert!(
        set_cookies(&all)
            .values()
            .all(|line| line.contains("Max-Age=0;"))
    );
    let me = send(&app, Method::GET, "/api/user", &[("Cookie", &cookie)], None).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
}

async fn bearer_clients_are_unaffected(app: TestApp) {
    app.register_user("bob").await;
    let user = app.login_user("bob").await;
    let token = user["token"].as_str().expect("token in the body");
    assert!(user["refreshToken"].is_string());
    // No CSRF token, a foreign origin: the Authorization header cannot be forged by a
    // browser, so nothing more is asked.
    let auth = format!("Token {token}");
    let reply = send(
        &app,
        Method::POST,
        "/api/articles",
        &[("Authorization", &auth), ("Origin", EVIL_ORIGIN)],
        Some(json!({"article": {"title": "Mine", "description": "d", "body": "b"}})),
    )
    .await;
    reply.assert_status(StatusCode::CREATED);
    assert!(set_cookies(&reply).is_empty());
    let logout = send(
        &app,
        Method::POST,
        "/api/auth/logout",
        &[("Authorization", &auth)],
        Some(json!({})),
    )
    .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    assert!(
        set_cookies(&logout).is_empty(),
        "no cookies for a bearer client"
    );
    // C9: the header wins; a valid cookie is no fallback for a bad header.
    let (_, jar) = browser_login(&app, "alice", DEV_ORIGIN).await;
    let cookie = jar.header();
    let bad_header = send(
        &app,
        Method::GET,
        "/api/user",
        &[("Authorization", "Token nope"), ("Cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(bad_header.status, StatusCode::UNAUTHORIZED);
}

/// The engines this run covers.
fn engines() -> Vec<Engine> {
    let mut engines = vec![Engine::Sqlite];
    if common::postgres_configured() {
        engines.push(Engine::Postgres);
    }
    engines
}

/// C6, C7: configured origins are trusted for the CSRF check and CORS with credentials;
/// look-alikes are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_origins_are_trusted_and_lookalikes_are_not() {
    for engine in engines() {
        let app = TestApp::spawn_with(engine, &[("AERIE_CORS_ORIGINS", APP_ORIGIN)]).await;
        let (_, jar) = browser_login(&app, "bob", APP_ORIGIN).await;
        for lookalike in [
            "https://app.example.com.evil.io",
            "http://app.example.com",
            "https://evilapp.example.com",
        ] {
            let reply =
                post_article(&app, &jar, Some(&jar.csrf), Some(("Origin", lookalike))).await;
            assert_forbidden(&reply, lookalike);
            let preflight = app
                .client
                .request(Method::OPTIONS, app.url("/api/articles"))
                .header("Origin", lookalike)
                .header("Access-Control-Request-Method", "POST")
                .send()
                .await
                .expect("preflight");
            assert!(
                preflight
                    .headers()
                    .get("access-control-allow-origin")
                    .is_none(),
                "{lookalike}"
            );
            assert!(
                preflight
                    .headers()
                    .get("access-control-allow-credentials")
                    .is_none(),
                "{lookalike}"
            );
        }
        let reply = post_article(&app, &jar, Some(&jar.csrf), Some(("Origin", APP_ORIGIN))).await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "{engine:?}: {}",
            reply.body
        );
        let preflight = app
            .client
            .request(Method::OPTIONS, app.url("/api/articles"))
            .header("Origin", APP_ORIGIN)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "content-type,x-csrf-token,x-aerie-client",
            )
            .send()
            .await
            .expect("preflight");
        let headers = preflight.headers();
        assert_eq!(headers["access-control-allow-origin"], APP_ORIGIN);
        assert_eq!(headers["access-control-allow-credentials"], "true");
        let allowed = headers["access-control-allow-headers"]
            .to_str()
            .expect("ascii");
        assert!(
            allowed.contains("x-csrf-token") && allowed.contains("x-aerie-client"),
            "{allowed}"
        );
        let simple = send(
            &app,
            Method::GET,
            "/api/tags",
            &[("Origin", APP_ORIGIN)],
            None,
        )
        .await;
        let exposed = simple.headers["access-control-expose-headers"]
            .to_str()
            .expect("ascii");
        assert!(exposed.contains("x-csrf-token"), "{exposed}");
    }
}

/// `AERIE_COOKIE_MODE=always` answers every login in cookies; `off` never sets nor reads them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_mode_always_and_off() {
    for engine in engines() {
        let always = TestApp::spawn_with(engine, &[("AERIE_COOKIE_MODE", "always")]).await;
        let registered = always.register_user("bob").await;
        assert!(
            registered.get("token").is_none(),
            "{engine:?}: {registered}"
        );
        let login = send(
            &always,
            Method::POST,
            "/api/users/login",
            &[],
            Some(json!({"user": {"email": "bob@example.com", "password": common::PASSWORD}})),
        )
        .await;
        assert_eq!(login.status, StatusCode::OK);
        assert_eq!(set_cookies(&login).len(), 3, "{engine:?}");
        assert!(login.body["user"].get("token").is_none());

        let off = TestApp::spawn_with(engine, &[("AERIE_COOKIE_MODE", "off")]).await;
        let user = off.register_user("bob").await;
        let login = send(
            &off,
            Method::POST,
            "/api/users/login",
            &[("X-Aerie-Client", "browser")],
            Some(json!({"user": {"email": "bob@example.com", "password": common::PASSWORD}})),
        )
        .await;
        assert_eq!(login.status, StatusCode::OK);
        assert!(set_cookies(&login).is_empty(), "{engine:?}");
        assert!(login.body["user"]["token"].is_string());
        let cookie = format!("{ACCESS}={}", user["token"].as_str().expect("token"));
        let me = send(&off, Method::GET, "/api/user", &[("Cookie", &cookie)], None).await;
        assert_eq!(
            me.status,
            StatusCode::UNAUTHORIZED,
            "cookies are not read when off"
        );
    }
}

engine_tests!(
    browser_login_sets_host_cookies_with_exact_attributes_and_no_tokens_in_the_body,
    the_access_cookie_authenticates_reads_without_echoing_the_token,
    a_tossed_second_access_cookie_is_refused_not_guessed,
    cross_site_state_changes_with_the_cookie_are_refused_and_change_nothing,
    login_csrf_from_a_foreign_origin_is_refused,
    refresh_by_cookie_rotates_the_cookies,
    logout_clears_the_cookies_and_the_old_cookie_is_refused,
    bearer_clients_are_unaffected,
);
