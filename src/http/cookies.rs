//! Cookie mode: a browser's tokens travel in cookies that its scripts cannot read.
//!
//! Guards against a script injected into the front end stealing the tokens (`HttpOnly`: in
//! cookie mode neither token is ever readable by JavaScript, and no body carries them), the
//! tokens leaking over plain HTTP or to sibling hosts (the `__Host-` prefix makes browsers
//! insist on `Secure`, `Path=/` and no `Domain`, so only this exact origin over HTTPS sets or
//! receives them), and other sites using them (`SameSite=Strict`, plus the CSRF check of
//! [`crate::defense::csrf`] on every state-changing request they authenticate).
//!
//! A client asks for cookie mode per login, register or refresh with `X-Aerie-Client:
//! browser`, or the operator turns it on for every client (`AERIE_COOKIE_MODE`).

use std::time::Duration;

use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponseParts, ResponseParts};

use super::error::Error;
use crate::auth::SessionTimes;
use crate::clock::UnixMillis;
use crate::defense::csrf::{self, CSRF_HEADER};

/// `AERIE_COOKIE_MODE`: whether browsers may hold their tokens in `HttpOnly` cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieMode {
    /// Cookies are never set and never read: every client sends `Authorization`.
    Off,
    /// A client asks for cookies per login, register or refresh (`X-Aerie-Client: browser`).
    OptIn,
    /// Every login, register and refresh answers with cookies and no tokens in the body.
    Always,
}

/// When login, register and refresh deliver tokens in cookies instead of the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieSettings {
    pub mode: CookieMode,
}

/// The access token (a JWT), `HttpOnly`.
pub const ACCESS_COOKIE: &str = "__Host-aerie-access";
/// The refresh token, `HttpOnly`.
pub const REFRESH_COOKIE: &str = "__Host-aerie-refresh";
/// The CSRF token, readable by the front end so it can echo it in `X-CSRF-Token`.
pub const CSRF_COOKIE: &str = "__Host-aerie-csrf";

/// The request header by which a client asks for cookie mode.
const CLIENT_HEADER: &str = "x-aerie-client";

/// Whether a login, register or refresh should answer in cookie mode: always, never, or
/// when the client says it is a browser. Any other `X-Aerie-Client` value is ignored.
pub fn requested(settings: &CookieSettings, headers: &HeaderMap) -> bool {
    match settings.mode {
        CookieMode::Off => false,
        CookieMode::Always => true,
        CookieMode::OptIn => headers
            .get_all(CLIENT_HEADER)
            .iter()
            .any(|value| value.as_bytes().eq_ignore_ascii_case(b"browser")),
    }
}

/// The value of our cookie `name`, unless cookie mode is off or the name is sent more than
/// once (ambiguous: refused rather than guessed). Other cookies are never read.
pub fn read<'a>(settings: &CookieSettings, headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    if settings.mode == CookieMode::Off {
        return None;
    }
    read_any(headers, name)
}

/// The value of cookie `name` whatever the cookie mode (the login device cookie is not a
/// session cookie); none when sent more than once.
pub fn read_any<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut found = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(key, _)| *key == name)
        .map(|(_, value)| value);
    let value = found.next()?;
    (found.next().is_none() && !value.is_empty()).then_some(value)
}

/// The cookies of a session just started or refreshed, with the CSRF token also in the
/// `X-CSRF-Token` response header: a front end on another origin cannot read our cookies.
pub struct SessionCookies {
    pub access: String,
    pub access_lifetime: Duration,
    pub refresh: String,
    /// How long the refresh token can still be used: the idle timeout, cut short by the
    /// session's absolute lifetime. The CSRF cookie lives as long.
    pub refresh_lifetime: Duration,
    pub csrf: String,
}

impl SessionCookies {
    /// How long a session's refresh cookie should live, from `now`.
    pub fn refresh_lifetime(
        session: &SessionTimes,
        session_created_at: UnixMillis,
        now: UnixMillis,
    ) -> Duration {
        let ends = session_created_at
            .saturating_add(i64::try_from(session.max_lifetime.as_millis()).unwrap_or(i64::MAX));
        let left = Duration::from_millis(u64::try_from(ends.saturating_sub(now)).unwrap_or(0));
        left.min(session.idle_timeout)
    }
}

impl IntoResponseParts for SessionCookies {
    type Error = Error;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Error> {
        let headers = res.headers_mut();
        append_cookie(
            headers,
            ACCESS_COOKIE,
            &self.access,
            self.access_lifetime,
            true,
        )?;
        append_cookie(
            headers,
            REFRESH_COOKIE,
            &self.refresh,
            self.refresh_lifetime,
            true,
        )?;
        append_cookie(
            headers,
            CSRF_COOKIE,
            &self.csrf,
            self.refresh_lifetime,
            false,
        )?;
        headers.insert(CSRF_HEADER, header_value(&self.csrf)?);
        Ok(res)
    }
}

/// A new access token for the same session (a step-up): only the access cookie changes.
pub struct AccessCookie {
    pub token: String,
    pub lifetime: Duration,
}

impl IntoResponseParts for AccessCookie {
    type Error = Error;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Error> {
        append_cookie(
            res.headers_mut(),
            ACCESS_COOKIE,
            &self.token,
            self.lifetime,
            true,
        )?;
        Ok(res)
    }
}

/// Expires every session cookie (logout).
pub struct ClearedCookies;

impl IntoResponseParts for ClearedCookies {
    type Error = Error;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Error> {
        let headers = res.headers_mut();
        for (name, http_only) in [
            (ACCESS_COOKIE, true),
            (REFRESH_COOKIE, true),
            (CSRF_COOKIE, false),
        ] {
            append_cookie(headers, name, "", Duration::ZERO, http_only)?;
        }
        Ok(res)
    }
}

/// One `Set-Cookie` with the attributes the `__Host-` prefix demands (`Secure`, `Path=/`, no
/// `Domain`) and `SameSite=Strict`.
pub(in crate::http) fn append_cookie(
    headers: &mut HeaderMap,
    name: &str,
    value: &str,
    lifetime: Duration,
    http_only: bool,
) -> Result<(), Error> {
    let http_only = if http_only { "; HttpOnly" } else { "" };
    let line = format!(
        "{name}={value}; Max-Age={}; Path=/; Secure{http_only}; SameSite=Strict",
        lifetime.as_secs()
    );
    headers.append(SET_COOKIE, header_value(&line)?);
    Ok(())
}

fn header_value(text: &str) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(text).map_err(|_| Error::Internal("cookie value is not a header".into()))
}

/// The CSRF token for a refreshed session: the one the browser already holds when it is
/// well formed (so a front end's copy stays valid), else a fresh one.
pub fn csrf_token_to_keep(settings: &CookieSettings, headers: &HeaderMap) -> String {
    read(settings, headers, CSRF_COOKIE)
        .filter(|token| csrf::is_well_formed(token))
        .map_or_else(csrf::mint_token, str::to_owned)
}

/// The device token the client presents: the cookie, or the header for clients without a
/// cookie jar. Sent twice (ambiguous), or not ASCII: none.
pub fn device_token(headers: &HeaderMap) -> Option<&str> {
    read_any(headers, crate::defense::login_guard::DEVICE_COOKIE).or_else(|| {
        let mut values = headers
            .get_all(crate::defense::login_guard::DEVICE_HEADER)
            .iter();
        let value = values.next()?;
        values
            .next()
            .is_none()
            .then(|| value.to_str().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(mode: CookieMode) -> CookieSettings {
        CookieSettings { mode }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn only_our_cookie_sent_once_is_read() {
        let on = settings(CookieMode::OptIn);
        let sent = headers(&[("cookie", "a=1; __Host-aerie-access=tok; b=2")]);
        assert_eq!(read(&on, &sent, ACCESS_COOKIE), Some("tok"));
        assert_eq!(read(&settings(CookieMode::Off), &sent, ACCESS_COOKIE), None);
        let twice = headers(&[
            ("cookie", "__Host-aerie-access=one"),
            ("cookie", "__Host-aerie-access=two"),
        ]);
        assert_eq!(read(&on, &twice, ACCESS_COOKIE), None);
        let lookalike = headers(&[("cookie", "aerie-access=tok; __host-aerie-access=tok")]);
        assert_eq!(read(&on, &lookalike, ACCESS_COOKIE), None);
        let empty = headers(&[("cookie", "__Host-aerie-access=")]);
        assert_eq!(read(&on, &empty, ACCESS_COOKIE), None);
    }

    #[test]
    fn cookie_mode_is_asked_for_or_configured() {
        let browser = headers(&[("x-aerie-client", "browser")]);
        let other = headers(&[("x-aerie-client", "mobile")]);
        assert!(requested(&settings(CookieMode::OptIn), &browser));
        assert!(!requested(&settings(CookieMode::OptIn), &other));
        assert!(!requested(&settings(CookieMode::OptIn), &headers(&[])));
        assert!(requested(&settings(CookieMode::Always), &headers(&[])));
        assert!(!requested(&settings(CookieMode::Off), &browser));
    }

    #[test]
    fn the_refresh_cookie_never_outlives_the_session() {
        let day: UnixMillis = 24 * 60 * 60 * 1000;
        let session = SessionTimes {
            refresh_grace: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(7 * 24 * 60 * 60),
            max_lifetime: Duration::from_secs(30 * 24 * 60 * 60),
            max_live_per_user: 20,
        };
        assert_eq!(
            SessionCookies::refresh_lifetime(&session, 0, 0),
            session.idle_timeout
        );
        assert_eq!(
            SessionCookies::refresh_lifetime(&session, 0, 29 * day),
            Duration::from_secs(24 * 60 * 60)
        );
        assert_eq!(
            SessionCookies::refresh_lifetime(&session, 0, 31 * day),
            Duration::ZERO
        );
    }
}
