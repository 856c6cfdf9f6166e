//! Settings that are valid but weaken a defence, found at start-up.
//!
//! Guards against an unsafe deployment going unnoticed: configuration that the validator
//! accepts on purpose (a lab, a trusted network) can still be a mistake in production. Each
//! finding is a WARN log line and a `config_warning` audit event, so it reaches whoever
//! reviews the trail, not only whoever watched the server start. Development mode itself is
//! not one of them: it is the default of a developer's machine, announced when it starts, and
//! production is always asked for by name.

use ipnet::IpNet;

use super::Config;

/// Step-up windows longer than this no longer mean "the user just typed their password".
const STEP_UP_WARNING_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// One weakened defence: the setting and what it costs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    pub setting: &'static str,
    pub message: &'static str,
}

/// Every finding for `config`, in a fixed order.
pub fn warnings(config: &Config) -> Vec<ConfigWarning> {
    let mut found = Vec::new();
    let mut warn = |setting, message| found.push(ConfigWarning { setting, message });
    if too_broad(&config.trusted_proxies) {
        warn(
            "AERIE_TRUSTED_PROXIES",
            "trusts forwarded headers from a whole address family or more: clients can choose the IP they are limited and logged by",
        );
    }
    if too_broad(&config.tls.terminated_by_proxy) {
        warn(
            "AERIE_TLS_TERMINATED_BY_PROXY",
            "plain HTTP is served to a whole address family or more as if TLS had ended at a proxy",
        );
    }
    if too_broad(&config.rate_limits.allowlist) {
        warn(
            "AERIE_RATE_LIMIT_ALLOWLIST",
            "exempts a whole address family or more from rate limiting",
        );
    }
    if config
        .alerts
        .webhook
        .as_deref()
        .is_some_and(|url| url.starts_with("http://") && !is_loopback_url(url))
    {
        warn(
            "AERIE_ALERT_WEBHOOK",
            "alerts are posted unencrypted over the network",
        );
    }
    if config
        .metrics
        .listen
        .is_some_and(|address| !address.ip().is_loopback())
    {
        warn(
            "AERIE_METRICS_LISTEN",
            "the token-free metrics listener is reachable beyond this machine",
        );
    }
    if config.tokens.profile == crate::auth::ClientProfile::RealWorld {
        warn(
            "AERIE_CLIENT_PROFILE",
            "access tokens live as long as their session (the idle timeout is checked on every use, revocation stays instant): a copied token works until its session ends, and anything that trusts Aerie's tokens without asking Aerie (JWKS alone) accepts them that long",
        );
    }
    if config.accounts.step_up.max_age > STEP_UP_WARNING_AGE {
        warn(
            "AERIE_STEP_UP_MAX_AGE_SECS",
            "a session's password authentication counts as recent for more than an hour: a stolen token can change the email or password",
        );
    }
    let defaults = crate::domain::MarkdownLimits::default();
    if config.content.limits.max_html_bytes > 4 * defaults.max_html_bytes {
        warn(
            "AERIE_MARKDOWN_MAX_HTML_BYTES",
            "one body may render to more HTML than four times the default cap",
        );
    }
    if config.content.limits.max_nesting_depth > 4 * defaults.max_nesting_depth {
        warn(
            "AERIE_MARKDOWN_MAX_NESTING_DEPTH",
            "bodies may nest quotes and lists more than four times the default depth",
        );
    }
    // Below this, a spray of a few thousand one-try keys starts evicting live counters.
    const FEW_KEYS: usize = 10_000;
    if config.rate_limits.max_tracked_keys < FEW_KEYS {
        warn(
            "AERIE_RATE_LIMIT_MAX_KEYS",
            "a small bucket map: a spray of a few thousand targets evicts the buckets with budget left, and a wider one reaches spent buckets",
        );
    }
    if config.alerts.max_tracked < FEW_KEYS {
        warn(
            "AERIE_ALERT_MAX_TRACKED",
            "a small counter map: a spray of a few thousand addresses evicts failed-login counters",
        );
    }
    if config.passwords.min_score < 3 {
        warn(
            "AERIE_PASSWORD_MIN_SCORE",
            "passwords that zxcvbn rates as guessable are accepted",
        );
    }
    found
}

/// A network wider than a /8 (IPv4) or a /16 (IPv6) is no longer "our proxies": it reaches
/// beyond any one organisation's private range.
fn too_broad(networks: &[IpNet]) -> bool {
    networks.iter().any(|network| match network {
        IpNet::V4(net) => net.prefix_len() < 8,
        IpNet::V6(net) => net.prefix_len() < 16,
    })
}

fn is_loopback_url(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|url| match url.host() {
        Some(url::Host::Domain(host)) => host == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Vec<&'static str> {
        let mut vars = vars.to_vec();
        // A TLS proxy must also be trusted (a configuration error otherwise): trust exactly it.
        if let Some((_, proxy)) = vars
            .iter()
            .find(|(name, _)| *name == "AERIE_TLS_TERMINATED_BY_PROXY")
        {
            vars.push(("AERIE_TRUSTED_PROXIES", proxy));
        }
        let config = Config::from_vars(vars).expect("valid configuration");
        warnings(&config).into_iter().map(|w| w.setting).collect()
    }

    #[test]
    fn the_defaults_weaken_nothing() {
        assert!(settings(&[]).is_empty());
    }

    #[test]
    fn each_weakened_defence_is_named() {
        for (setting, value) in [
            ("AERIE_TRUSTED_PROXIES", "0.0.0.0/0"),
            ("AERIE_TRUSTED_PROXIES", "::/0"),
            ("AERIE_RATE_LIMIT_ALLOWLIST", "0.0.0.0/0"),
            ("AERIE_ALERT_WEBHOOK", "http://alerts.example.com/hook"),
            ("AERIE_METRICS_LISTEN", "0.0.0.0:9100"),
            ("AERIE_PASSWORD_MIN_SCORE", "1"),
            ("AERIE_STEP_UP_MAX_AGE_SECS", "86400"),
            ("AERIE_MARKDOWN_MAX_HTML_BYTES", "8388608"),
            ("AERIE_MARKDOWN_MAX_NESTING_DEPTH", "200"),
            ("AERIE_RATE_LIMIT_MAX_KEYS", "100"),
            ("AERIE_ALERT_MAX_TRACKED", "100"),
            ("AERIE_CLIENT_PROFILE", "realworld"),
        ] {
            assert_eq!(
                settings(&[(setting, value)]),
                [setting],
                "{setting}={value}"
            );
        }
    }

    #[test]
    fn a_broad_tls_proxy_is_named_beside_the_trusted_proxies() {
        assert_eq!(
            settings(&[("AERIE_TLS_TERMINATED_BY_PROXY", "0.0.0.0/1")]),
            ["AERIE_TRUSTED_PROXIES", "AERIE_TLS_TERMINATED_BY_PROXY"]
        );
    }

    #[test]
    fn narrow_and_local_settings_do_not_warn() {
        for (setting, value) in [
            ("AERIE_TRUSTED_PROXIES", "10.1.2.0/24"),
            ("AERIE_TLS_TERMINATED_BY_PROXY", "10.0.0.0/8"),
            ("AERIE_TRUSTED_PROXIES", "fd00:1::/64"),
            ("AERIE_RATE_LIMIT_ALLOWLIST", "127.0.0.1/32"),
            ("AERIE_ALERT_WEBHOOK", "http://127.0.0.1:9000/hook"),
            ("AERIE_ALERT_WEBHOOK", "https://alerts.example.com/hook"),
            ("AERIE_METRICS_LISTEN", "127.0.0.1:9100"),
            ("AERIE_STEP_UP_MAX_AGE_SECS", "3600"),
            ("AERIE_PASSWORD_MIN_SCORE", "4"),
            ("AERIE_RATE_LIMIT_MAX_KEYS", "10000"),
            ("AERIE_ALERT_MAX_TRACKED", "50000"),
        ] {
            assert!(
                settings(&[(setting, value)]).is_empty(),
                "{setting}={value}"
            );
        }
    }
}
