//! A TCP relay the test controls, put between Aerie and a dependency (PostgreSQL, Redis) to
//! make it go away and come back without touching the shared server: [`Relay::cut`] drops
//! every open link at once and holds new connections silent (accepted, never answered, as
//! a black-holed network does), [`Relay::restore`] relays again. [`Relay::cut_links`] only
//! drops the open links, as a restart of the dependency or a network blip does.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running relay from `127.0.0.1:port` to a target; dropped, it stops accepting and every
/// link it holds ends.
pub struct Relay {
    pub port: u16,
    /// Bumped to end every open link (and every held one).
    generation: watch::Sender<u64>,
    /// While true, new connections are held silent instead of relayed.
    down: Arc<AtomicBool>,
    accept_loop: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Starts relaying to `target` (`host:port`).
    pub async fn to(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let port = listener.local_addr().expect("relay address").port();
        let (generation, _) = watch::channel(0u64);
        let down = Arc::new(AtomicBool::new(false));
        let (links, is_down, target) = (generation.clone(), down.clone(), target.to_owned());
        let accept_loop = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let mut ended = links.subscribe();
                let (target, held) = (target.clone(), is_down.load(Ordering::SeqCst));
                tokio::spawn(async move {
                    if held {
                        // Black hole: keep the connection open and read nothing, until the
                        // next cut or restore.
                        let _ = ended.changed().await;
                        drop(inbound);
                        return;
                    }
                    link(inbound, &target, ended).await;
                });
            }
        });
        Self {
            port,
            generation,
            down,
            accept_loop,
        }
    }

    /// A relay to the host and port of `url` (`postgres://…`, `redis://…`), and `url` with
    /// its host and port replaced by the relay's.
    pub async fn for_url(url: &str, default_port: u16) -> (Self, String) {
        let mut parsed = url::Url::parse(url).expect("a URL");
        let target = format!(
            "{}:{}",
            parsed.host_str().expect("a host"),
            parsed.port().unwrap_or(default_port)
        );
        let relay = Self::to(&target).await;
        parsed.set_host(Some("127.0.0.1")).expect("set host");
        parsed.set_port(Some(relay.port)).expect("set port");
        (relay, parsed.to_string())
    }

    /// The dependency goes away: every open link is dropped, and new connections are held
    /// silent until [`Self::restore`].
    pub fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cut_links();
    }

    /// The dependency is back: held connections are dropped and new ones relayed.
    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
        self.cut_links();
    }

    /// Drops every open link at once; new connections are relayed (unless cut).
    pub fn cut_links(&self) {
        self.generation.send_modify(|n| *n += 1);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept_loop.abort();
        self.cut_links();
    }
}

/// Copies both ways between `inbound` and a new connection to `target` until either side
/// closes or the links are cut.
async fn link(mut inbound: TcpStream, target: &str, mut ended: watch::Receiver<u64>) {
    let Ok(mut outbound) = TcpStream::connect(target).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        _ = ended.changed() => {}
    }
}
