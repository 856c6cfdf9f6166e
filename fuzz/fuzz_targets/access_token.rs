//! Access-token verification (`aerie::auth::tokens`) on hostile input: it must never panic,
//! and nothing but the token we signed may verify, however it is edited.
//!
//! The first byte picks a mode, so seeds stay readable text:
//! - `0<token>`: the rest, as presented in `Authorization`.
//! - `1<part><edit><bytes>`: a valid token with one segment (header, payload or signature,
//!   chosen by `part`) edited: its decoded bytes replaced, a bit flipped, cut short, or its
//!   text replaced.
//! - `2<header JSON>\n<payload JSON>\n<signature>`: a token assembled from parts (attacks.md
//!   §1: `alg: none`, `kid` traversal, `jku`, embedded `jwk`, `crit`, claim confusion ...).
#![no_main]

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use aerie::auth::keys::SigningKey;
use aerie::auth::tokens::TokenService;
use aerie::clock::ManualClock;
use aerie::domain::Role;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;

struct Fixture {
    service: TokenService,
    valid: String,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let service = TokenService::new(
        SigningKey::generate(),
        "aerie".into(),
        "aerie-api".into(),
        Duration::from_secs(900),
        Arc::new(ManualClock::starting_now()),
    );
    let valid = service.issue(7, "session-1", Role::User, 0);
    Fixture { service, valid }
});

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let fixture = &*FIXTURE;
    let candidate = match mode.wrapping_sub(b'0') % 3 {
        0 => String::from_utf8_lossy(rest).into_owned(),
        1 => mutate(&fixture.valid, rest),
        _ => assemble(rest),
    };
    if fixture.service.verify(&candidate).is_some() {
        assert!(
            same_token(&candidate, &fixture.valid),
            "an edited or forged token verified: {candidate}"
        );
    }
});

/// The valid token with one segment edited as `edit` says.
fn mutate(valid: &str, edit: &[u8]) -> String {
    let mut parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
    let (Some(&part), Some(&kind), Some(bytes)) = (edit.first(), edit.get(1), edit.get(2..)) else {
        return valid.to_owned();
    };
    let Some(segment) = parts.get_mut(usize::from(part % 3)) else {
        return valid.to_owned();
    };
    let mut decoded = URL_SAFE_NO_PAD
        .decode(segment.as_bytes())
        .unwrap_or_default();
    let at = |n: usize| bytes.first().map_or(0, |&b| usize::from(b) % n.max(1));
    match kind % 5 {
        0 => *segment = URL_SAFE_NO_PAD.encode(bytes),
        1 => {
            let i = at(decoded.len());
            if let Some(byte) = decoded.get_mut(i) {
                *byte ^= 1 << (bytes.get(1).copied().unwrap_or(0) % 8);
            }
            *segment = URL_SAFE_NO_PAD.encode(&decoded);
        }
        2 => {
            decoded.truncate(at(decoded.len() + 1));
            *segment = URL_SAFE_NO_PAD.encode(&decoded);
        }
        3 => *segment = String::from_utf8_lossy(bytes).into_owned(),
        _ => {
            let i = at(segment.len() + 1);
            segment.insert_str(i.min(segment.len()), &String::from_utf8_lossy(bytes));
        }
    }
    parts.join(".")
}

/// `header JSON \n payload JSON \n signature`, each part base64url-encoded and joined by dots.
fn assemble(spec: &[u8]) -> String {
    let mut pieces = spec.splitn(3, |&b| b == b'\n');
    let header = URL_SAFE_NO_PAD.encode(pieces.next().unwrap_or_default());
    let payload = URL_SAFE_NO_PAD.encode(pieces.next().unwrap_or_default());
    let signature = URL_SAFE_NO_PAD.encode(pieces.next().unwrap_or_default());
    format!("{header}.{payload}.{signature}")
}

/// Whether `candidate` is the signed token itself: the same signed text (`header.payload`)
/// and the same signature bytes.
fn same_token(candidate: &str, valid: &str) -> bool {
    let split = |t: &str| {
        t.rsplit_once('.')
            .map(|(s, sig)| (s.to_owned(), sig.to_owned()))
    };
    match (split(candidate), split(valid)) {
        (Some((signed, sig)), Some((valid_signed, valid_sig))) => {
            signed == valid_signed
                && URL_SAFE_NO_PAD.decode(sig).ok() == URL_SAFE_NO_PAD.decode(valid_sig).ok()
        }
        _ => false,
    }
}
