//! The listeners' accept loop: plain HTTP and HTTPS (HTTP/1.1 and HTTP/2) with the same
//! admission rules and per-connection bounds, and the plain-HTTP listener that only
//! redirects to HTTPS.
//!
//! Guards against connection floods and slow clients: every connection is admitted per
//! address and holds one of `max_connections` slots ([`super::admission`]); a client must
//! finish its TLS handshake and send its headers within `header_read_timeout` (slowloris), and
//! too many or too large headers are a 431, all before the router runs
//! ([`super::connection`]). And against losing requests at the stop: the clients already
//! connected in the listener's backlog are served their one request, not reset.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum_server::tls_rustls::RustlsConfig;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};

use super::admission::Admission;
use super::connection::Connection;
use super::slots::Claim;
use crate::acme::Http01Answers;
use crate::config::ConnectionLimits;

/// How long in-flight requests may take to finish after shutdown is requested.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) fn bind(address: SocketAddr, setting: &str) -> anyhow::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(address)
        .with_context(|| format!("{setting}: cannot listen on {address}"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

pub(super) async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// The accept loop of every listener, plain HTTP or HTTPS (`tls`). A peer the admission
/// rules refuse (outside the TLS proxy's networks, or an address holding its share of
/// connections) is closed unread; the others each hold a global slot, taken from the
/// connection idle longest when none is free, so a connection flood queues in the kernel
/// instead of exhausting memory and file descriptors. Each connection is then served by
/// [`super::connection`] with the same bounds whatever its protocol.
pub(super) async fn serve(
    listener: std::net::TcpListener,
    app: Router,
    stop: watch::Receiver<bool>,
    limits: ConnectionLimits,
    admission: Admission,
    tls: Option<RustlsConfig>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    // Every connection task holds a sender; when all are gone, every connection has ended.
    let (open, mut all_closed) = mpsc::channel::<Infallible>(1);
    let spawner = Spawner {
        app,
        limits,
        stop: stop.clone(),
        tls,
        open,
    };
    let mut stopped_accepting = std::pin::pin!(stopped(stop));
    let mut in_hand = None;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or a client that reset during accept: back
                    // off briefly instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stopped_accepting => break,
        };
        let Some(claim) = admission.admit(peer) else {
            drop(stream);
            continue;
        };
        // Until a slot frees, this client waits in hand and later ones in the backlog.
        let permit = tokio::select! {
            permit = admission.room(&claim) => permit,
            () = &mut stopped_accepting => {
                in_hand = Some((stream, peer, claim));
                break;
            }
        };
        spawner.spawn(stream, peer, claim, permit, false);
    }
    // The clients the kernel already connected (in hand, or in the backlog) have sent, or are
    // sending, a request they count on: closing the listener now would reset them, and a
    // reset request may not be sent again unless it is idempotent. Each is served that one
    // request, as slots free (the connections still open are finishing theirs). They are
    // taken all at once and the listener closed, so clients arriving later are refused (and
    // may retry elsewhere) rather than prolonging the stop.
    let listener = listener.into_std()?;
    let backlog: Vec<_> = std::iter::from_fn(|| listener.accept().ok()).collect();
    drop(listener);
    let backlog = backlog.into_iter().filter_map(|(stream, peer)| {
        let stream = stream
            .set_nonblocking(true)
            .and_then(|()| TcpStream::from_std(stream));
        Some((stream.ok()?, peer))
    });
    let after_stop = in_hand
        .into_iter()
        .chain(backlog.filter_map(|(stream, peer)| Some((stream, peer, admission.admit(peer)?))));
    for (stream, peer, claim) in after_stop {
        let Ok(permit) =
            tokio::time::timeout(limits.header_read_timeout, admission.freed_room(&claim)).await
        else {
            break; // no slot freed in time: the rest are reset, as when the listener closes
        };
        spawner.spawn(stream, peer, claim, permit, true);
    }
    drop(spawner);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, all_closed.recv()).await;
    Ok(())
}

/// What every connection task of a listener is started with.
struct Spawner {
    app: Router,
    limits: ConnectionLimits,
    stop: watch::Receiver<bool>,
    tls: Option<RustlsConfig>,
    /// Held by every connection task; see `serve`.
    open: mpsc::Sender<Infallible>,
}

impl Spawner {
    /// Serves one admitted connection in its own task, which holds `permit` (its slot) until
    /// the connection ends; `one_request` for a connection taken after the stop.
    fn spawn(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        claim: Claim,
        permit: OwnedSemaphorePermit,
        one_request: bool,
    ) {
        let connection = Connection {
            app: self.app.clone(),
            peer,
            limits: self.limits,
            stop: self.stop.clone(),
            claim,
            one_request,
        };
        let (tls, open) = (self.tls.clone(), self.open.clone());
        tokio::spawn(async move {
            match tls {
                Some(tls) => connection.serve_tls(stream, tls).await,
                None => connection.serve_http1(stream).await,
            }
            drop((permit, open));
        });
    }
}

/// The plain-HTTP listener: `/healthz` for load balancers, a 308 to HTTPS for everything
/// else. The target comes from `AERIE_PUBLIC_URL`, never from the request's `Host` header,
/// so it cannot be turned into an open redirect.
pub(super) fn redirect_router(public_url: Arc<str>, http01: Option<Http01Answers>) -> Router {
    let mut router = Router::new().route(
        "/healthz",
        axum::routing::get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }),
    );
    if let Some(answers) = http01 {
        router = router.route(
            "/.well-known/acme-challenge/{token}",
            axum::routing::get(move |Path(token): Path<String>| {
                let answers = answers.clone();
                async move { acme_challenge(&answers, &token) }
            }),
        );
    }
    router
        .fallback(redirect_to_https)
        .layer(axum::middleware::from_fn_with_state(
            None,
            crate::defense::headers::security_headers,
        ))
        .with_state(public_url)
}

/// An HTTP-01 answer (RFC 8555 §8.3): the key authorization for a token of a pending order,
/// a 404 for any other token (nothing else is looked up or reflected).
fn acme_challenge(answers: &Http01Answers, token: &str) -> Response {
    match answers.answer(token) {
        Some(key_authorization) => (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            key_authorization,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn redirect_to_https(State(public_url): State<Arc<str>>, uri: Uri) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let location = format!("{public_url}{path}");
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, location)],
    )
        .into_response()
}
