//! A test server's own `/metrics`, read one way: one parser of the Prometheus text format,
//! and a series found by its name and labels. Each server has its own registry, so exact
//! counts hold while tests run in parallel.

use std::fmt;

use reqwest::StatusCode;

use super::TestApp;

/// One scrape of `/metrics`.
pub struct Metrics {
    text: String,
}

/// One sample line, parsed: name, labels, value.
pub struct Sample {
    pub name: String,
    labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn matches(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.name == name && labels.iter().all(|(k, v)| self.label(k) == Some(*v))
    }
}

impl Metrics {
    /// Every sample, in the order the server wrote them.
    pub fn samples(&self) -> Vec<Sample> {
        self.text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .map(parse_sample)
            .collect()
    }

    /// The series `name` whose labels include `labels`, if the server has written it.
    #[track_caller]
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<f64> = self
            .samples()
            .into_iter()
            .filter(|sample| sample.matches(name, labels))
            .map(|sample| sample.value)
            .collect();
        assert!(
            matching.len() <= 1,
            "{name} {labels:?} is ambiguous:\n{self}"
        );
        matching.first().copied()
    }

    /// As [`Metrics::get`], with 0 for a series not written yet: a labelled counter appears
    /// at its first increment.
    #[track_caller]
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    /// Asserts the value of a series ([`Metrics::value`]), showing the whole scrape when it
    /// differs.
    #[track_caller]
    pub fn assert_value(&self, name: &str, labels: &[(&str, &str)], expected: f64) {
        let value = self.value(name, labels);
        assert_eq!(value, expected, "{name} {labels:?}:\n{self}");
    }

    /// The scrape as the server wrote it.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn parse_sample(line: &str) -> Sample {
    let (series, value) = line.rsplit_once(' ').expect("`series value`");
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, rest.trim_end_matches('}')),
        None => (series, ""),
    };
    let labels = labels
        .split("\",")
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once("=\"").expect("label=\"value\"");
            (key.to_owned(), value.trim_end_matches('"').to_owned())
        })
        .collect();
    Sample {
        name: name.to_owned(),
        labels,
        value: value.parse().expect("numeric value"),
    }
}

/// A metrics token of the accepted shape, different in every test.
pub fn fresh_metrics_token() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

impl TestApp {
    /// `/metrics` on the main listener, with the configured metrics token.
    pub async fn metrics(&self, token: &str) -> Metrics {
        scrape(self.client.get(self.url("/metrics")).bearer_auth(token)).await
    }

    /// `/metrics` on the internal metrics listener (`AERIE_METRICS_LISTEN`), which needs no
    /// token.
    pub async fn internal_metrics(&self) -> Metrics {
        let internal = self.metrics_address.as_deref().expect("metrics listener");
        scrape(self.client.get(format!("{internal}/metrics"))).await
    }
}

async fn scrape(request: reqwest::RequestBuilder) -> Metrics {
    let response = request.send().await.expect("metrics sent");
    let status = response.status();
    let text = response.text().await.expect("metrics body");
    assert_eq!(status, StatusCode::OK, "{text}");
    Metrics { text }
}
