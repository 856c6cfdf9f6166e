//! A fixed set of hashing threads, each with its own argon2 memory, fed through a bounded
//! channel. Fixed, so a login flood cannot grow the thread count (each thread of tokio's
//! blocking pool used to keep its own malloc arena full of freed 19 MiB blocks); dedicated and
//! at a low scheduling priority (nice 10), so the Tokio workers serving reads win the CPU
//! whenever both want it and hashing takes mostly what is left.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};

use super::HashError;
use super::argon::{Memory, MemoryGauge};

/// The hashing threads' nice value. A Tokio worker at nice 0 that wakes preempts a hashing
/// thread, and under contention gets about ten times its CPU share (weights 1024 : 110), yet
/// hashing is not starved outright: at 19 (weight 15) a busy host, or a test suite running
/// many servers in one process, made logins take seconds.
pub(super) const HASHING_NICE: i32 = 10;

/// One computation, given the thread's memory. It carries its own way to answer.
pub(super) type Job = Box<dyn FnOnce(&mut Memory) + Send>;

/// The threads' inbox; dropping the last `Pool` closes it and the threads end.
pub(super) struct Pool {
    jobs: SyncSender<Job>,
    threads: usize,
    /// The argon2 memory the threads hold, summed.
    memory: Arc<MemoryGauge>,
    /// Threads running now.
    alive: Arc<AtomicUsize>,
    /// The kernel's id of each thread (Linux only), as `ps -L` and /proc show them.
    thread_ids: Vec<i32>,
}

impl Pool {
    /// Starts `threads` hashing threads. Each allocates its argon2 memory on its first job
    /// and keeps it.
    pub(super) fn start(threads: usize) -> Result<Self, HashError> {
        let threads = threads.max(1);
        // Room for one job per thread: callers hold a permit per job (see
        // `PasswordHasher::run`), so the channel is never full when a job is sent.
        let (jobs, inbox) = std::sync::mpsc::sync_channel::<Job>(threads);
        let inbox = Arc::new(Mutex::new(inbox));
        let memory = Arc::new(MemoryGauge::default());
        let alive = Arc::new(AtomicUsize::new(0));
        let (ready, readied) = std::sync::mpsc::channel();
        for index in 0..threads {
            let inbox = inbox.clone();
            let memory = memory.clone();
            let alive = Alive::enter(alive.clone());
            let ready = ready.clone();
            std::thread::Builder::new()
                .name(format!("aerie-argon2-{index}"))
                .spawn(move || work(&inbox, memory, &ready, alive))
                .map_err(|e| HashError::Argon2(format!("starting a hashing thread: {e}")))?;
        }
        drop(ready);
        // Every thread is running (and has its priority) before the first job.
        let mut thread_ids = Vec::with_capacity(threads);
        for _ in 0..threads {
            thread_ids.extend(readied.recv().map_err(|_| HashError::PoolClosed)?);
        }
        Ok(Self {
            jobs,
            threads,
            memory,
            alive,
            thread_ids,
        })
    }

    /// Hands a job to an idle thread. Fails only if the caller broke the one-permit-per-job
    /// rule or every thread has ended.
    pub(super) fn send(&self, job: Job) -> Result<(), HashError> {
        self.jobs.try_send(job).map_err(|_| HashError::PoolClosed)
    }

    pub(super) fn threads(&self) -> usize {
        self.threads
    }

    pub(super) fn memory_bytes(&self) -> usize {
        self.memory.bytes.load(Ordering::Relaxed)
    }

    pub(super) fn memory_allocations(&self) -> usize {
        self.memory.allocations.load(Ordering::Relaxed)
    }

    pub(super) fn threads_alive(&self) -> usize {
        self.alive.load(Ordering::Relaxed)
    }

    pub(super) fn thread_ids(&self) -> &[i32] {
        &self.thread_ids
    }
}

/// One hashing thread: lower its priority, then run jobs (in the memory the first one allocates) until every
/// sender is gone. A job that panics loses its answer (its caller sees `PoolClosed`), not the
/// thread: the pool stays at its size.
fn work(
    inbox: &Mutex<Receiver<Job>>,
    memory: Arc<MemoryGauge>,
    ready: &Sender<Option<i32>>,
    _alive: Alive,
) {
    lower_priority();
    let mut memory = Memory::new(memory);
    let _ = ready.send(kernel_thread_id());
    loop {
        // One idle thread waits on the channel at a time; the others wait for the lock.
        let next = match inbox.lock() {
            Ok(inbox) => inbox.recv(),
            Err(_) => return,
        };
        let Ok(job) = next else { return };
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut memory)));
    }
}

/// Sets this thread's nice value (Linux keeps one per thread). Failing to is not fatal: the
/// pool's size still bounds what hashing takes, only not its priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(error) =
        rustix::process::setpriority_process(Some(rustix::thread::gettid()), HASHING_NICE)
    {
        tracing::warn!(%error, "could not lower the password hashing threads' priority");
    }
}

fn kernel_thread_id() -> Option<i32> {
    #[cfg(target_os = "linux")]
    return Some(rustix::thread::gettid().as_raw_nonzero().get());
    #[cfg(not(target_os = "linux"))]
    None
}

/// Counts a thread as running from before it is spawned until it ends.
struct Alive(Arc<AtomicUsize>);

impl Alive {
    fn enter(count: Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;
    use std::time::{Duration, Instant};

    use super::*;

    /// Whether `settled` holds within ten seconds: threads end on their own schedule once the
    /// inbox closes, and a gauge that never settles must fail the test, not hang it.
    fn settles(settled: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if settled() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        settled()
    }

    /// The gauges the metrics report (threads alive, argon2 bytes held) fall back to zero when
    /// the pool is dropped: a server that stops its hasher, or a test process running many
    /// servers, must not report memory and threads that are gone.
    #[test]
    fn the_gauges_return_to_zero_when_the_pool_ends() {
        let pool = Pool::start(2).expect("pool");
        let (memory, alive) = (Arc::clone(&pool.memory), Arc::clone(&pool.alive));
        assert_eq!(alive.load(Ordering::Relaxed), 2);
        // Both threads hash at once (each job waits for the other), so each allocates its block.
        let together = Arc::new(Barrier::new(3));
        for _ in 0..2 {
            let together = Arc::clone(&together);
            let job: Job = Box::new(move |memory: &mut Memory| {
                memory.hash(b"a password").expect("hash");
                together.wait();
            });
            pool.send(job).expect("a thread is idle");
        }
        together.wait();
        assert_eq!(
            memory.bytes.load(Ordering::Relaxed),
            2 * 19 * 1024 * 1024,
            "one configured block per thread"
        );
        drop(pool);
        assert!(
            settles(|| alive.load(Ordering::Relaxed) == 0),
            "threads still counted alive: {}",
            alive.load(Ordering::Relaxed)
        );
        assert!(
            settles(|| memory.bytes.load(Ordering::Relaxed) == 0),
            "argon2 memory still counted: {} bytes",
            memory.bytes.load(Ordering::Relaxed)
        );
    }
}
