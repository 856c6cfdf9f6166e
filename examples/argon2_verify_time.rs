//! One core's argon2id verification time at the configured parameters, through the same
//! hasher the server uses (one hashing thread). `bench/login_ceiling.sh` divides the core
//! count by it to get the most logins per second the machine can do, and compares the
//! server's measured rate with that ceiling.
//!
//!     cargo run --release --example argon2_verify_time -- [VERIFICATIONS]
//!
//! Prints the median verification time in milliseconds.

use std::time::Instant;

use aerie::auth::password::PasswordHasher;
use secrecy::SecretString;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let count: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(40);
    let hasher = PasswordHasher::new(1)?;
    let password = SecretString::from("correct horse battery staple 42");
    let stored = hasher.hash(&password).await?;
    let mut times = Vec::with_capacity(count.max(1));
    for _ in 0..count.max(1) {
        let started = Instant::now();
        anyhow::ensure!(hasher.verify(&password, Some(&stored)).await?);
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or_default();
    #[expect(
        clippy::print_stdout,
        reason = "the script reads the figure from stdout"
    )]
    {
        println!("{median:.2}");
    }
    Ok(())
}
