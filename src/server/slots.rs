//! Connection slots: a cap per client address (per /64 for IPv6), a global cap, and, when
//! the global cap is full, the oldest idle connection closed to make room.
//!
//! Guards against one address occupying every connection: slow or silent connections from
//! one address are refused at accept, before a byte is read, once it holds
//! `AERIE_MAX_CONNECTIONS_PER_ADDRESS` (an IPv6 client owns its whole /64, as the rate
//! limiter counts it). A trusted proxy (`AERIE_TRUSTED_PROXIES`) is exempt: it carries many
//! clients, and the global cap still bounds it. When the global cap is full, a new client does
//! not wait behind idle connections: the one idle longest (a keep-alive connection between
//! requests, or one that has not finished its headers: a slowloris) is asked to close, and
//! the new client takes its slot. Connections with a request in progress are never chosen;
//! when every connection is busy, new clients wait in the kernel's backlog as before.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::defense::client_ip::is_trusted;

/// One listener's slots.
pub(super) struct Slots {
    permits: Arc<Semaphore>,
    max_per_address: usize,
    /// Trusted proxies: exempt from the per-address cap.
    exempt: Arc<[IpNet]>,
    registry: Arc<Mutex<Registry>>,
    /// When this listener's slots were created: activity times are counted from it.
    epoch: Instant,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    per_address: HashMap<IpAddr, usize>,
    open: BTreeMap<u64, Arc<Activity>>,
}

/// What one connection is doing, shared between its task and the slots.
pub(super) struct Activity {
    in_flight: AtomicUsize,
    /// Whether a request has ever reached the router on this connection.
    begun: AtomicBool,
    /// Whether the next answer is the connection's last, and says so.
    last_answer: AtomicBool,
    /// Whether the connection holds a slot. One still waiting for a slot (in the accept
    /// loop's hand) is never asked to close to make room: least of all for itself, which
    /// would leave the request it already sent unread when its turn came.
    seated: AtomicBool,
    /// Milliseconds after the epoch when the connection last became idle.
    idle_since_ms: AtomicU64,
    epoch: Instant,
    /// Notified when the connection should close (evicted, or idle too long).
    close: Notify,
}

/// A connection's claim on its address's count, held until the connection ends.
pub(super) struct Claim {
    id: u64,
    address: Option<IpAddr>,
    registry: Arc<Mutex<Registry>>,
    pub(super) activity: Arc<Activity>,
}

impl Slots {
    pub(super) fn new(max_total: usize, max_per_address: usize, exempt: Arc<[IpNet]>) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_total)),
            max_per_address,
            exempt,
            registry: Arc::default(),
            epoch: Instant::now(),
        }
    }

    /// Counts a connection from `peer` against its address; `None` when the address already
    /// holds its share.
    pub(super) fn claim(&self, peer: SocketAddr) -> Option<Claim> {
        let address = (!is_trusted(peer.ip(), &self.exempt)).then(|| address_key(peer.ip()));
        let mut registry = lock(&self.registry);
        if let Some(address) = address {
            let held = registry.per_address.entry(address).or_insert(0);
            if *held >= self.max_per_address {
                return None;
            }
            *held += 1;
        }
        let id = registry.next_id;
        registry.next_id += 1;
        let activity = Arc::new(Activity {
            in_flight: AtomicUsize::new(0),
            begun: AtomicBool::new(false),
            last_answer: AtomicBool::new(false),
            seated: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(millis_since(self.epoch)),
            epoch: self.epoch,
            close: Notify::new(),
        });
        registry.open.insert(id, activity.clone());
        drop(registry);
        Some(Claim {
            id,
            address,
            registry: self.registry.clone(),
            activity,
        })
    }

    /// A global slot for `claim`'s connection: at once when one is free; otherwise the
    /// connection idle longest is asked to close and its slot is awaited (or any other that
    /// frees first). Also says whether a connection was asked to close.
    pub(super) async fn room(&self, claim: &Claim) -> (OwnedSemaphorePermit, bool) {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            claim.activity.seated.store(true, Ordering::Release);
            return (permit, false);
        }
        let evicted = self.evict_oldest_idle();
        (self.freed(claim).await, evicted)
    }

    /// A global slot as soon as one frees, no connection asked to close: after the stop,
    /// when every connection waiting for one has a request to answer, and those open are
    /// ending anyway.
    pub(super) async fn freed(&self, claim: &Claim) -> OwnedSemaphorePermit {
        #[expect(
            clippy::expect_used,
            reason = "the semaphore is never closed while the listener runs"
        )]
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        claim.activity.seated.store(true, Ordering::Release);
        permit
    }

    /// Asks the connection holding a slot that has been idle longest to close; false if
    /// none is idle.
    fn evict_oldest_idle(&self) -> bool {
        let registry = lock(&self.registry);
        let oldest = registry
            .open
            .values()
            .filter(|activity| activity.seated.load(Ordering::Acquire) && activity.is_idle())
            .min_by_key(|activity| activity.idle_since_ms.load(Ordering::Acquire));
        match oldest {
            Some(activity) => {
                activity.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// A request in progress on a connection; dropping it marks the request answered.
pub(super) struct Busy(Arc<Activity>);

impl Busy {
    /// Whether this answer is the connection's last ([`Activity::answer_last`]).
    pub(super) fn is_last(&self) -> bool {
        self.0.last_answer.load(Ordering::Relaxed)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.finished();
    }
}

impl Activity {
    /// A request has reached the router: the connection is busy until the guard drops.
    pub(super) fn busy(self: &Arc<Self>) -> Busy {
        self.started();
        Busy(self.clone())
    }

    fn started(&self) {
        self.begun.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether a request has ever reached the router on this connection. hyper counts a
    /// connection whose first request is still arriving as idle, like a kept-alive one.
    pub(super) fn has_begun(&self) -> bool {
        self.begun.load(Ordering::Relaxed)
    }

    /// Makes the next answer the connection's last: it says `Connection: close`.
    pub(super) fn answer_last(&self) {
        self.last_answer.store(true, Ordering::Relaxed);
    }

    fn finished(&self) {
        self.idle_since_ms
            .store(millis_since(self.epoch), Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// Whether no request is in progress (one may still be being read or answered).
    pub(super) fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// How long the connection has had no request in progress; `None` while it has one.
    pub(super) fn idle_for(&self) -> Option<Duration> {
        if !self.is_idle() {
            return None;
        }
        let since = self.idle_since_ms.load(Ordering::Acquire);
        Some(Duration::from_millis(
            millis_since(self.epoch).saturating_sub(since),
        ))
    }

    /// Completes when the connection is asked to close.
    pub(super) async fn close_requested(&self) {
        self.close.notified().await;
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut registry = lock(&self.registry);
        registry.open.remove(&self.id);
        if let Some(address) = self.address
            && let Some(held) = registry.per_address.get_mut(&address)
        {
            *held = held.saturating_sub(1);
            if *held == 0 {
                registry.per_address.remove(&address);
            }
        }
    }
}

/// The unit a client is counted by: its IPv4 address (an IPv4-mapped IPv6 address is the
/// IPv4 client), or its IPv6 /64, which one subscriber usually holds whole.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & (u128::MAX << 64);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

fn millis_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The registry stays consistent whatever a panicking holder did: every update is one
/// insert or remove.
fn lock(registry: &Mutex<Registry>) -> MutexGuard<'_, Registry> {
    registry.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().expect("ip"), 40000)
    }

    #[test]
    fn an_address_holds_at_most_its_share_and_gets_it_back() {
        let slots = Slots::new(100, 2, Arc::from([]));
        let first = slots.claim(peer("192.0.2.1")).expect("first");
        let _second = slots.claim(peer("192.0.2.1")).expect("second");
        assert!(slots.claim(peer("192.0.2.1")).is_none());
        assert!(slots.claim(peer("::ffff:192.0.2.1")).is_none(), "mapped");
        assert!(slots.claim(peer("192.0.2.2")).is_some(), "another address");
        drop(first);
        assert!(slots.claim(peer("192.0.2.1")).is_some());
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let slots = Slots::new(100, 1, Arc::from([]));
        let _held = slots.claim(peer("2001:db8:1:2::1")).expect("first");
        assert!(
            slots.claim(peer("2001:db8:1:2:ffff::9")).is_none(),
            "same /64"
        );
        assert!(slots.claim(peer("2001:db8:1:3::1")).is_some(), "next /64");
    }

    #[test]
    fn trusted_proxies_are_exempt() {
        let proxies: Arc<[IpNet]> = Arc::from(["10.0.0.0/8".parse::<IpNet>().expect("net")]);
        let slots = Slots::new(100, 1, proxies);
        let held: Vec<_> = (0..5)
            .filter_map(|_| slots.claim(peer("10.1.2.3")))
            .collect();
        assert_eq!(held.len(), 5);
    }

    /// A connection from `ip` that holds a slot, as the accept loop seats it.
    fn seated(slots: &Slots, ip: &str) -> Claim {
        let claim = slots.claim(peer(ip)).expect("claimed");
        claim.activity.seated.store(true, Ordering::Release);
        claim
    }

    /// Whether `claim`'s connection has been asked to close.
    fn notified(claim: &Claim) -> bool {
        let waiting = claim.activity.close.notified();
        let mut waiting = std::pin::pin!(waiting);
        waiting.as_mut().enable()
    }

    #[test]
    fn the_longest_idle_connection_is_evicted_and_busy_ones_never() {
        let slots = Slots::new(100, 100, Arc::from([]));
        let busy = seated(&slots, "192.0.2.1");
        busy.activity.started();
        let old = seated(&slots, "192.0.2.2");
        let young = seated(&slots, "192.0.2.3");
        young.activity.started();
        young.activity.finished();
        assert!(slots.evict_oldest_idle());
        assert!(notified(&old), "the oldest idle one is asked to close");
        assert!(!notified(&young));
        assert!(
            !notified(&busy),
            "a connection in the middle of a request is never chosen"
        );
        drop((old, young));
        assert!(!slots.evict_oldest_idle(), "only busy connections left");
    }

    /// A client waiting for a slot has sent, or is sending, its request: asked to close, it
    /// would be closed unread, reset, the moment its turn came.
    #[tokio::test]
    async fn a_connection_waiting_for_a_slot_is_never_asked_to_close() {
        use futures_util::FutureExt;
        let slots = Slots::new(1, 100, Arc::from([]));
        let serving = slots.claim(peer("192.0.2.1")).expect("serving");
        let (held, evicted) = slots.room(&serving).await;
        assert!(!evicted);
        serving.activity.started(); // a request in progress: not evictable
        let waiting = slots.claim(peer("192.0.2.2")).expect("waiting");
        let mut room = std::pin::pin!(slots.room(&waiting));
        assert!(room.as_mut().now_or_never().is_none(), "no slot free yet");
        assert!(!notified(&waiting), "not asked to close for its own room");
        serving.activity.finished();
        drop((held, serving));
        let (_seat, evicted) = room.await;
        assert!(!evicted);
        assert!(!notified(&waiting));
        assert!(
            slots.evict_oldest_idle(),
            "once seated, it may be asked to close like any idle connection"
        );
        assert!(notified(&waiting));
    }
}
