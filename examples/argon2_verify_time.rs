//! Argon2id verification at the configured parameters, through the same hasher the server
//! uses. `bench/login_flood.sh` divides the core count by one thread's time to get the most
//! logins per second the machine could do if hashing scaled with its cores (issue 17's
//! ceiling), and measures with one thread per core, all hashing at once, what the cores do
//! together (they share caches and memory bandwidth, and on a VM perhaps more).
//!
//!     cargo run --release --example argon2_verify_time -- [VERIFICATIONS] [THREADS]
//!
//! With THREADS absent or 1, prints the median verification time of one thread in
//! milliseconds. With THREADS = N, N hashing threads verify VERIFICATIONS each, all at once,
//! and it prints the verifications per second they did together.

use std::time::Instant;

use aerie::auth::password::PasswordHasher;
use secrecy::SecretString;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).map(|n| n.parse::<usize>());
    let count = args.next().transpose()?.unwrap_or(40).max(1);
    let threads = args.next().transpose()?.unwrap_or(1).max(1);
    let hasher = PasswordHasher::new(threads)?;
    let password = SecretString::from("correct horse battery staple 42");
    let stored = hasher.hash(&password).await?;
    let figure = if threads == 1 {
        let mut times = Vec::with_capacity(count);
        for _ in 0..count {
            let started = Instant::now();
            anyhow::ensure!(hasher.verify(&password, Some(&stored)).await?);
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        times.get(times.len() / 2).copied().unwrap_or_default()
    } else {
        let started = Instant::now();
        let callers = (0..threads).map(|_| async {
            for _ in 0..count {
                anyhow::ensure!(hasher.verify(&password, Some(&stored)).await?);
            }
            anyhow::Ok(())
        });
        for outcome in futures_util::future::join_all(callers).await {
            outcome?;
        }
        (threads * count) as f64 / started.elapsed().as_secs_f64()
    };
    #[expect(
        clippy::print_stdout,
        reason = "the script reads the figure from stdout"
    )]
    {
        println!("{figure:.2}");
    }
    Ok(())
}
