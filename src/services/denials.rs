//! Refusals on the audit trail: a signed-in user refused by the access rules
//! (`access_denied`), and an access token that failed verification (`token_rejected`, with
//! the check that failed). ASVS 16.3.2: an attempt to use a privilege one lacks, or a forged
//! credential, must leave a trace.
//!
//! Guards against the trace becoming the attack: recording every refusal would let a flood
//! of bad requests grow the trail (and its write lock) without bound. Each actor (the user,
//! or the client address when there is none) gets at most [`PER_KEY`] events per
//! [`SAMPLE_WINDOW`], and the whole server at most [`PER_WINDOW`]; the refusals left out are
//! counted (`aerie_denials_unrecorded_total`) and the next recorded event of that actor says
//! how many of its own were left out (`"unrecorded": n`). The sampling memory is a
//! [`BoundedMap`] of fingerprints.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::Recorder;
use crate::audit::{AuditEvent, EventType};
use crate::auth::tokens::Rejection;
use crate::bounded_map::BoundedMap;
use crate::clock::{Clock, UnixMillis};
use crate::fingerprint::Fingerprint;
use crate::request_context::RequestContext;

/// The window over which refusals are sampled.
pub const SAMPLE_WINDOW: Duration = Duration::from_secs(60);
/// Events per actor (or address) per window.
pub const PER_KEY: u32 = 5;
/// Events for the whole server per window, whatever the number of actors.
pub const PER_WINDOW: u32 = 300;
/// Actors remembered at once; when full, the oldest windows are forgotten (which can only
/// cost a few extra events, still under [`PER_WINDOW`]).
const MAX_TRACKED: usize = 10_000;

/// What was refused.
#[derive(Debug, Clone, Copy)]
pub enum Denial<'a> {
    /// A signed-in user lacked the permission a route requires.
    Access {
        user_id: i64,
        session_id: &'a str,
        method: &'a str,
        route: &'a str,
        permission: &'a str,
    },
    /// An access token failed verification: `rejection` names the check; `claimed_role` is
    /// what the unverified token said, when it named a known role.
    Token {
        rejection: Rejection,
        claimed_role: Option<&'static str>,
        method: &'a str,
        route: &'a str,
    },
}

/// One actor's window: when it started, events recorded, refusals left out since the last
/// recorded one.
#[derive(Debug, Clone, Copy)]
struct Sample {
    since: UnixMillis,
    recorded: u32,
    unrecorded: u64,
}

struct Sampling {
    actors: BoundedMap<Fingerprint, Sample>,
    window_start: UnixMillis,
    recorded_in_window: u32,
}

/// Records refusals, sampled. Cheap to clone.
#[derive(Clone)]
pub struct Denials {
    recorder: Recorder,
    clock: Arc<dyn Clock>,
    sampling: Arc<Mutex<Sampling>>,
}

impl Denials {
    pub fn new(recorder: Recorder, clock: Arc<dyn Clock>) -> Self {
        Self {
            recorder,
            clock,
            sampling: Arc::new(Mutex::new(Sampling {
                actors: BoundedMap::new(MAX_TRACKED),
                window_start: UnixMillis::MIN,
                recorded_in_window: 0,
            })),
        }
    }

    /// Records `denial` unless its actor or the server is over its budget. A failure to
    /// record is logged, not raised: the request is refused either way.
    pub async fn record(&self, denial: Denial<'_>, request: &RequestContext) {
        let actor = match denial {
            Denial::Access { user_id, .. } => format!("user:{user_id}"),
            Denial::Token { .. } => format!("ip:{}", request.client.ip.as_deref().unwrap_or("-")),
        };
        let Some(unrecorded) = self.admit(&actor) else {
            metrics::counter!("aerie_denials_unrecorded_total").increment(1);
            return;
        };
        let event = event(denial, request, unrecorded);
        if let Err(error) = self.recorder.record(event).await {
            tracing::warn!(%error, "could not record a refusal on the audit trail");
        }
    }

    /// `Some(n)` when this refusal is to be recorded (`n` of the actor's were left out since
    /// its last recorded one); `None` when it is over budget.
    fn admit(&self, actor: &str) -> Option<u64> {
        let now = self.clock.now();
        let window = i64::try_from(SAMPLE_WINDOW.as_millis()).unwrap_or(i64::MAX);
        let mut sampling = self.sampling.lock().ok()?;
        if now.saturating_sub(sampling.window_start) >= window {
            sampling.window_start = now;
            sampling.recorded_in_window = 0;
        }
        let server_full = sampling.recorded_in_window >= PER_WINDOW;
        let fresh = Sample {
            since: now,
            recorded: 0,
            unrecorded: 0,
        };
        let (sample, _) = sampling
            .actors
            .entry(Fingerprint::of(actor), || fresh, |s| s.since);
        if now.saturating_sub(sample.since) >= window {
            *sample = Sample {
                unrecorded: sample.unrecorded,
                ..fresh
            };
        }
        if server_full || sample.recorded >= PER_KEY {
            sample.unrecorded += 1;
            return None;
        }
        sample.recorded += 1;
        let unrecorded = std::mem::take(&mut sample.unrecorded);
        sampling.recorded_in_window += 1;
        Some(unrecorded)
    }
}

fn event(denial: Denial<'_>, request: &RequestContext, unrecorded: u64) -> AuditEvent {
    let mut detail = Map::new();
    let event = match denial {
        Denial::Access {
            user_id,
            session_id,
            method,
            route,
            permission,
        } => {
            detail.insert("method".into(), method.into());
            detail.insert("route".into(), route.into());
            detail.insert("permission".into(), permission.into());
            AuditEvent::new(EventType::AccessDenied)
                .actor(user_id)
                .session(session_id)
        }
        Denial::Token {
            rejection,
            claimed_role,
            method,
            route,
        } => {
            detail.insert("reason".into(), rejection.as_str().into());
            // What the alert rule counts: made-up credentials, not an old token.
            detail.insert("forged".into(), rejection.looks_forged().into());
            detail.insert("method".into(), method.into());
            detail.insert("route".into(), route.into());
            if let Some(role) = claimed_role {
                detail.insert("claimedRole".into(), role.into());
            }
            AuditEvent::new(EventType::TokenRejected)
        }
    };
    if unrecorded > 0 {
        detail.insert("unrecorded".into(), json!(unrecorded));
    }
    event.from_request(request).detail(Value::Object(detail))
}
