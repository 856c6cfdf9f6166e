//! Graceful operations (issue 18 item 3), on the real binary: SIGTERM under load turns
//! `/readyz` to 503 before anything is refused, every request under way completes and none
//! is cut mid-response; and a rolling restart of one of two instances, behind a client that
//! routes by `/readyz` and retries idempotent requests, loses nothing.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{
    Caller, Deployment, Engine, Reply, engine_tests, start_registration_at, token_of,
    until_the_listener_closes,
};

/// What a request of the load met. `refused_before_not_ready` marks a connection refused
/// while `/readyz` had not yet been seen answering 503.
#[derive(Debug)]
enum Met {
    Answered(StatusCode),
    /// The listener was closed: the request was never sent.
    Refused {
        readiness_had_failed: bool,
    },
    /// Anything else: a reset, a response cut short, a hang.
    Broken(String),
}

/// SIGTERM while three clients read and write: `/readyz` answers 503 (`shutting_down`)
/// first, while every request still succeeds during the shutdown delay (the clients stop
/// sending a second after it failed, as a load balancer would); then the listener closes
/// and the requests under way, a registration whose body is sent only after the listener
/// closed among them, complete. No request is refused before `/readyz` failed, none is cut.
/// The process exits 0.
async fn sigterm_under_load_fails_readiness_first_and_cuts_no_request(engine: Engine) {
    let Some(deployment) = Deployment::new(
        engine,
        "sigterm_under_load_fails_readiness_first_and_cuts_no_request",
        &[("AERIE_SHUTDOWN_DELAY_SECS", "3")],
    )
    .await
    else {
        return;
    };
    let server = deployment.start().await;
    let address = server.listening.clone();
    let caller = Caller::new(Duration::from_secs(20));
    let user = caller.register(&address, "reader").await;
    let token = token_of(&user);

    let not_ready = Arc::new(AtomicBool::new(false));
    let met: Arc<Mutex<Vec<(Met, bool)>>> = Arc::default();
    let mut load = Vec::new();
    for worker in 0..3 {
        let (caller, address, token) = (caller.clone(), address.clone(), token.clone());
        let (not_ready, met) = (not_ready.clone(), met.clone());
        load.push(tokio::spawn(async move {
            // As behind a load balancer that honours /readyz: no new request once it has
            // failed for a second (the backlog is served at the stop, but a connection the
            // kernel queues in the instant the listener closes is still reset; the
            // balancer's job is to send none).
            let mut failed_at: Option<Instant> = None;
            for n in 0.. {
                if not_ready.load(Ordering::SeqCst) {
                    let since = *failed_at.get_or_insert_with(Instant::now);
                    if since.elapsed() > Duration::from_secs(1) {
                        return;
                    }
                }
                let (method, path, body) = if n % 2 == 0 {
                    (Method::GET, "/api/articles?limit=5".to_owned(), None)
                } else {
                    let title = format!("Under load {worker} {n}");
                    (
                        Method::POST,
                        "/api/articles".to_owned(),
                        Some(json!({"article": {"title": title, "description": "d", "body": "b"}})),
                    )
                };
                let sent_while_not_ready = not_ready.load(Ordering::SeqCst);
                let outcome = match caller
                    .call(&address, method, &path, Some(&token), body)
                    .await
                {
                    Ok(reply) => Met::Answered(reply.status),
                    Err(error) if error.is_connect() => Met::Refused {
                        readiness_had_failed: not_ready.load(Ordering::SeqCst),
                    },
                    Err(error) => Met::Broken(format!("{error:?}")),
                };
                let stop = !matches!(outcome, Met::Answered(_));
                met.lock()
                    .expect("lock")
                    .push((outcome, sent_while_not_ready));
                if stop {
                    return;
                }
            }
        }));
    }
    let answered = || met.lock().expect("lock").len();
    wait_until(|| answered() >= 10, "load before SIGTERM").await;
    let in_flight = start_registration_at(&address, "inflight").await;

    server.terminate();
    // The load balancer's view: /readyz polled until it fails.
    let probe = Caller::new(Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(10);
    let draining = loop {
        let reply = probe
            .call(&address, Method::GET, "/readyz", None, None)
            .await
            .expect("the listener is open during the shutdown delay");
        if reply.status == StatusCode::SERVICE_UNAVAILABLE {
            not_ready.store(true, Ordering::SeqCst);
            break reply;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never failed after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(draining.body["status"], "shutting_down");

    // The listener closes after the delay.
    until_the_listener_closes(&address, Duration::from_secs(15)).await;
    assert_eq!(
        in_flight.finish().await,
        201,
        "the request under way completes after the listener closed"
    );
    for task in load {
        task.await.expect("load task");
    }
    server.exited().await;

    let met = met.lock().expect("lock");
    let served_while_not_ready = met
        .iter()
        .filter(|(m, sent)| *sent && matches!(m, Met::Answered(s) if s.is_success()))
        .count();
    for (outcome, _) in met.iter() {
        match outcome {
            Met::Answered(status) => assert!(status.is_success(), "{status} during shutdown"),
            Met::Refused {
                readiness_had_failed,
            } => assert!(
                readiness_had_failed,
                "a connection was refused before /readyz failed"
            ),
            Met::Broken(error) => panic!("a request was cut: {error}"),
        }
    }
    assert!(
        served_while_not_ready > 0,
        "still serving during the shutdown delay: {met:?}"
    );
    eprintln!(
        "SIGTERM ({engine:?}): {} requests, {served_while_not_ready} served after /readyz failed",
        met.len()
    );
}

engine_tests!(sigterm_under_load_fails_readiness_first_and_cuts_no_request);

/// Waits (at most 20 s) for `done`.
async fn wait_until(done: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A load balancer in the test: routes to the instances whose `/readyz` answered 200 at its
/// last check (every 50 ms), round robin.
#[derive(Clone)]
struct Balancer {
    backends: Arc<Mutex<Vec<(String, bool)>>>,
    next: Arc<AtomicUsize>,
}

impl Balancer {
    fn new(addresses: &[&str]) -> Self {
        let backends = addresses.iter().map(|a| ((*a).to_owned(), true)).collect();
        let balancer = Self {
            backends: Arc::new(Mutex::new(backends)),
            next: Arc::default(),
        };
        let (checked, probe) = (balancer.clone(), Caller::new(Duration::from_secs(2)));
        tokio::spawn(async move {
            // Ends with the test's runtime.
            loop {
                let addresses: Vec<String> = checked
                    .backends
                    .lock()
                    .expect("lock")
                    .iter()
                    .map(|(a, _)| a.clone())
                    .collect();
                for address in addresses {
                    let ready = matches!(
                        probe.call(&address, Method::GET, "/readyz", None, None).await,
                        Ok(reply) if reply.status == StatusCode::OK
                    );
                    if let Some(backend) = checked
                        .backends
                        .lock()
                        .expect("lock")
                        .iter_mut()
                        .find(|(a, _)| *a == address)
                    {
                        backend.1 = ready;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        balancer
    }

    /// The next ready instance, if any.
    fn pick(&self) -> Option<String> {
        let backends = self.backends.lock().expect("lock");
        let ready: Vec<&String> = backends
            .iter()
            .filter(|(_, r)| *r)
            .map(|(a, _)| a)
            .collect();
        (!ready.is_empty())
            .then(|| ready[self.next.fetch_add(1, Ordering::Relaxed) % ready.len()].clone())
    }

    /// Puts `new` in the place of `old` (not ready until its first check).
    fn replace(&self, old: &str, new: &str) {
        for backend in self.backends.lock().expect("lock").iter_mut() {
            if backend.0 == old {
                *backend = (new.to_owned(), false);
            }
        }
    }
}

/// The client: an idempotent request (GET, PUT) is retried on another ready instance after
/// a transport error or a 503; any request is retried when its connection was refused (it
/// was never sent). Answers the final reply and how many attempts it took.
async fn send(
    balancer: &Balancer,
    caller: &Caller,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (Result<Reply, String>, usize) {
    let idempotent = method == Method::GET || method == Method::PUT;
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut attempts = 0;
    loop {
        let Some(address) = balancer.pick() else {
            if Instant::now() > deadline {
                return (Err("no instance ready".into()), attempts);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        attempts += 1;
        let outcome = caller
            .call(&address, method.clone(), path, Some(token), body.clone())
            .await;
        let retry = match &outcome {
            Ok(reply) => idempotent && reply.status == StatusCode::SERVICE_UNAVAILABLE,
            Err(error) => error.is_connect() || idempotent,
        };
        if !retry || Instant::now() > deadline {
            return (outcome.map_err(|e| format!("{e:?}")), attempts);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two instances on one PostgreSQL database and one Redis behind [`Balancer`]; clients
/// create articles, read them and update their profile while instance A is stopped with
/// SIGTERM (a registration under way on it) and started again. Every request ends in a
/// success, the registration under way included, and every article created is there on
/// both instances afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_behind_a_retrying_client_loses_nothing() {
    let Some(deployment) = Deployment::on_postgres_and_redis(
        "a_rolling_restart_behind_a_retrying_client_loses_nothing",
        // No shutdown delay (the development default, and the hard case): A stops listening
        // as soon as it is told to, before the balancer's next check, so the client meets
        // refused connections and must retry.
        &[("AERIE_SHUTDOWN_DELAY_SECS", "0")],
    )
    .await
    else {
        return;
    };
    let a = deployment.start().await;
    let b = deployment.start().await;
    let balancer = Balancer::new(&[&a.listening, &b.listening]);
    let caller = Caller::new(Duration::from_secs(10));

    let stop = Arc::new(AtomicBool::new(false));
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let created: Arc<Mutex<Vec<String>>> = Arc::default();
    let (done, retried) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut clients = Vec::new();
    for worker in 0..3 {
        let user = caller
            .register(&a.listening, &format!("client{worker}"))
            .await;
        let token = token_of(&user);
        let (balancer, caller, stop) = (balancer.clone(), caller.clone(), stop.clone());
        let (failures, created, done, retried) = (
            failures.clone(),
            created.clone(),
            done.clone(),
            retried.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let article = json!({"article": {"title": format!("Rolling {worker} {n}"), "description": "d", "body": "b"}});
                let (reply, attempts) = send(&balancer, &caller, Method::POST, "/api/articles", &token, Some(article)).await;
                let mut steps = vec![(reply, attempts, StatusCode::CREATED, "create")];
                let slug = match &steps[0].0 {
                    Ok(reply) => reply.body["article"]["slug"].as_str().map(str::to_owned),
                    Err(_) => None,
                };
                if let Some(slug) = slug {
                    created.lock().expect("lock").push(slug.clone());
                    let path = format!("/api/articles/{slug}");
                    let (read, attempts) =
                        send(&balancer, &caller, Method::GET, &path, &token, None).await;
                    steps.push((read, attempts, StatusCode::OK, "read"));
                }
                let bio = json!({"user": {"bio": format!("update {n}")}});
                let (update, attempts) = send(&balancer, &caller, Method::PUT, "/api/user", &token, Some(bio)).await;
                steps.push((update, attempts, StatusCode::OK, "update"));
                for (outcome, attempts, want, what) in steps {
                    retried.fetch_add(attempts.saturating_sub(1), Ordering::Relaxed);
                    match outcome {
                        Ok(reply) if reply.status == want => {}
                        Ok(reply) => failures.lock().expect("lock").push(format!("{what}: {} {}", reply.status, reply.body)),
                        Err(error) => failures.lock().expect("lock").push(format!("{what}: {error}")),
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    wait_until(
        || done.load(Ordering::Relaxed) >= 10,
        "load before the restart",
    )
    .await;

    // A registration under way on A when it is told to stop: not idempotent, so only the
    // drain can save it.
    let old = a.listening.clone();
    let in_flight = start_registration_at(&old, "inflight").await;
    a.terminate();
    until_the_listener_closes(&old, Duration::from_secs(15)).await;
    assert_eq!(
        in_flight.finish().await,
        201,
        "the registration under way on A completes"
    );
    a.exited().await;
    let restarted = deployment.start().await;
    balancer.replace(&old, &restarted.listening);
    let before = done.load(Ordering::Relaxed);
    wait_until(
        || {
            balancer
                .backends
                .lock()
                .expect("lock")
                .iter()
                .all(|(_, ready)| *ready)
                && done.load(Ordering::Relaxed) >= before + 10
        },
        "load on both instances after the restart",
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.expect("client task");
    }

    let failures = failures.lock().expect("lock").clone();
    assert!(
        failures.is_empty(),
        "requests lost in the rolling restart: {failures:?}"
    );
    let checker = Caller::new(Duration::from_secs(10));
    let created = created.lock().expect("lock").clone();
    for slug in &created {
        for instance in [&restarted.listening, &b.listening] {
            let reply = checker
                .call(
                    instance,
                    Method::GET,
                    &format!("/api/articles/{slug}"),
                    None,
                    None,
                )
                .await
                .expect("answered");
            assert_eq!(reply.status, StatusCode::OK, "{slug} on {instance}");
        }
    }
    eprintln!(
        "rolling restart: {} rounds, {} articles, {} retries, no request lost",
        done.load(Ordering::Relaxed),
        created.len(),
        retried.load(Ordering::Relaxed)
    );
}

/// A client whose connection was accepted before the stop but whose request had not arrived
/// yet (it connects, then writes) gets its answer, with `Connection: close`: hyper counts such
/// a connection idle and its graceful shutdown would close it, and the request the client
/// then sends, which it may not send again unless it is idempotent, would be lost.
#[tokio::test]
async fn a_client_connected_before_the_stop_gets_its_first_request_answered() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(deployment) = Deployment::new(
        Engine::Sqlite,
        "a_client_connected_before_the_stop_gets_its_first_request_answered",
        &[("AERIE_SHUTDOWN_DELAY_SECS", "0")],
    )
    .await
    else {
        return;
    };
    let server = deployment.start().await;
    let address = server.listening.clone();
    let mut connected = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connected");
    // Connections are taken from the backlog in order: once a later one has been answered,
    // this one is in the server's hand.
    let caller = Caller::new(Duration::from_secs(10));
    let later = caller
        .call(&address, Method::GET, "/api/tags", None, None)
        .await
        .expect("answered");
    assert_eq!(later.status, StatusCode::OK);
    server.terminate();
    until_the_listener_closes(&address, Duration::from_secs(15)).await;
    let request = format!("GET /api/tags HTTP/1.1\r\nHost: {address}\r\n\r\n");
    connected
        .write_all(request.as_bytes())
        .await
        .expect("request sent");
    let mut response = Vec::new();
    let read = tokio::time::timeout(
        Duration::from_secs(20),
        connected.read_to_end(&mut response),
    )
    .await
    .expect("answered and closed");
    assert!(read.is_ok(), "reset: {read:?} {:#?}", server.lines());
    let text = String::from_utf8_lossy(&response).to_ascii_lowercase();
    assert!(
        text.starts_with("http/1.1 200"),
        "{text:.300} {:#?}",
        server.lines()
    );
    assert!(text.contains("connection: close"), "{text:.300}");
    server.exited().await;
}

/// Clients the kernel had already connected when the stop came (waiting for a connection
/// slot, one in the server's hand and two in the listener's backlog) are answered, not
/// reset: closing the listener with them in it would drop requests the server never saw and
/// a client may not send again unless they are idempotent. Each gets its one answer, with
/// `Connection: close`, as slots free.
#[tokio::test]
async fn clients_waiting_in_the_backlog_at_the_stop_are_answered_not_reset() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(deployment) = Deployment::new(
        Engine::Sqlite,
        "clients_waiting_in_the_backlog_at_the_stop_are_answered_not_reset",
        &[
            ("AERIE_SHUTDOWN_DELAY_SECS", "0"),
            ("AERIE_MAX_CONNECTIONS", "1"),
        ],
    )
    .await
    else {
        return;
    };
    let server = deployment.start().await;
    let address = server.listening.clone();
    // The only slot, held by a registration whose body is still to come.
    let holder = start_registration_at(&address, "holder").await;
    let mut waiting = Vec::new();
    for _ in 0..3 {
        let mut stream = tokio::net::TcpStream::connect(&address)
            .await
            .expect("connected by the kernel");
        let request = format!("GET /api/tags HTTP/1.1\r\nHost: {address}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("sent");
        waiting.push(stream);
    }
    server.terminate();
    until_the_listener_closes(&address, Duration::from_secs(15)).await;
    assert_eq!(
        holder.finish().await,
        201,
        "the request under way completes"
    );
    for (n, mut stream) in waiting.into_iter().enumerate() {
        let mut response = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut response))
            .await
            .expect("answered and closed");
        assert!(
            read.is_ok(),
            "waiting client {n} was reset: {read:?} {:#?}",
            server.lines()
        );
        let text = String::from_utf8_lossy(&response).to_ascii_lowercase();
        assert!(
            text.starts_with("http/1.1 200"),
            "waiting client {n}: {text:.300}"
        );
        assert!(
            text.contains("connection: close"),
            "waiting client {n}: {text:.300}"
        );
    }
    server.exited().await;
}
