//! `aerie serve`, `aerie migrate`, `aerie maintenance prune` and `aerie dev-cert`: running the
//! server and the housekeeping it also does on its own.

#![expect(clippy::print_stdout, reason = "the CLI's output is its interface")]

use std::path::Path;
use std::sync::Arc;

use crate::clock::SystemClock;
use crate::config::Config;
use crate::server::{Server, shutdown_signal};
use crate::services::retention::Retention;
use crate::store::Store;

pub async fn serve(config: Config) -> anyhow::Result<()> {
    if !config.is_production() {
        tracing::warn!(
            "development mode: keys are generated into the data folder and http:// is allowed; set AERIE_ENV=production for a real deployment"
        );
    }
    let server = Server::build(config, Arc::new(SystemClock)).await?;
    tracing::info!(address = %server.local_addr()?, "listening");
    server.run(shutdown_signal()).await?;
    Ok(())
}

pub async fn migrate(config: Config) -> anyhow::Result<()> {
    let store = Store::connect(&config.database).await?;
    store.migrate().await?;
    let sealed = store.finish_field_encryption().await;
    store.close().await;
    println!("migrations applied");
    let sealed = sealed?;
    if sealed > 0 {
        println!("sealed {sealed} row(s) left in clear by the upgrade to field encryption");
    }
    Ok(())
}

pub async fn prune(config: Config) -> anyhow::Result<()> {
    let store = Store::connect(&config.database).await?;
    let retention = Retention::new(
        store.clone(),
        Arc::new(SystemClock),
        config.retention,
        config.sessions,
        config.tokens.access_token_ttl,
    );
    let pruned = retention.run_once().await;
    store.close().await;
    let pruned = pruned?;
    println!(
        "deleted {} sessions and {} refresh tokens",
        pruned.sessions, pruned.refresh_tokens
    );
    Ok(())
}

pub fn dev_cert(out: &Path) -> anyhow::Result<()> {
    let files = crate::tls::write_dev_certificate(out)?;
    println!(
        "wrote {}/ca.pem (trust this in your browser or client), cert.pem and key.pem",
        out.display()
    );
    println!(
        "serve HTTPS with:\n  AERIE_TLS_CERT={} AERIE_TLS_KEY={} aerie",
        files.cert.display(),
        files.key.display()
    );
    Ok(())
}
