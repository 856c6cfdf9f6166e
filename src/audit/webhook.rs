//! Alert delivery to `AERIE_ALERT_WEBHOOK`: a JSON POST per alert.
//!
//! Guards against alerting taking the server down with it: posts go through a bounded queue
//! to one background task that retries, so a slow or dead receiver never blocks a request,
//! and a flood drops alerts (with a log line) instead of growing memory. Redirects are never
//! followed, so the receiver cannot bounce alerts elsewhere.
//!
//! Guards against leaking the webhook itself: its path is often the only secret (Slack and
//! Teams hooks are bearer URLs), so nothing here formats the URL, and a delivery error is
//! logged without it ([`reqwest::Error::without_url`]; reqwest's own text names the URL).

use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

/// What the webhook posts: a JSON body, and the rule it names in the log when every attempt
/// failed.
pub trait Notice: Serialize + Send + Sync + 'static {
    fn rule(&self) -> &'static str;
}

/// Alerts waiting for the webhook; beyond this they are dropped (and logged as dropped).
const QUEUE: usize = 256;
/// Tries per alert, with doubling pauses between them.
const ATTEMPTS: u32 = 4;
const FIRST_RETRY: Duration = Duration::from_millis(250);
const POST_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts the sender task for `url` (inside the Tokio runtime) and answers its queue.
pub fn start<A: Notice>(url: String) -> mpsc::Sender<A> {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(deliver(url, rx));
    tx
}

/// The webhook sender: one alert at a time, each retried with doubling pauses.
async fn deliver<A: Notice>(url: String, mut queue: mpsc::Receiver<A>) {
    let Some(client) = client() else { return };
    while let Some(alert) = queue.recv().await {
        post_with_retries(&client, &url, &alert).await;
    }
}

/// POSTs one alert, retrying on failure; true once the receiver answered 2xx.
async fn post_with_retries<A: Notice>(client: &reqwest::Client, url: &str, alert: &A) -> bool {
    let mut pause = FIRST_RETRY;
    for attempt in 1..=ATTEMPTS {
        match client.post(url).json(alert).send().await {
            Ok(response) if response.status().is_success() => return true,
            Ok(response) => {
                tracing::warn!(
                    status = response.status().as_u16(),
                    attempt,
                    "alert webhook refused an alert"
                );
            }
            Err(error) => {
                let error = error.without_url();
                tracing::warn!(%error, attempt, "alert webhook unreachable");
            }
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
    }
    tracing::error!(
        rule = alert.rule(),
        "alert webhook: gave up after {ATTEMPTS} attempts"
    );
    false
}

/// Sends one alert to `url` right away (for commands that exit soon after).
pub async fn send_now<A: Notice>(url: &str, alert: &A) -> bool {
    match client() {
        Some(client) => post_with_retries(&client, url, alert).await,
        None => false,
    }
}

/// The webhook's HTTP client: a timeout per post and no redirects.
fn client() -> Option<reqwest::Client> {
    let built = reqwest::Client::builder()
        .timeout(POST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build();
    match built {
        Ok(client) => Some(client),
        Err(error) => {
            let error = error.without_url();
            tracing::error!(%error, "alert webhook: cannot build an HTTP client; alerts only logged");
            None
        }
    }
}
