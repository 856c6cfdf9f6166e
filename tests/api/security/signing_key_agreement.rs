//! One signing key set for every instance (issue 18 item 1, the signing-key half): at start
//! an instance compares its keys with the set the deployment published on the shared audit
//! chain, and in production refuses to serve when it lacks the key the others sign with,
//! would sign with one they do not know, or still trusts one they dropped; in development
//! it says so loudly and starts. The real binary, on one SQLite database shared as several
//! instances would share it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::production_defaults::Deployment;
use crate::common::{run_to_exit, start_server};

/// A copy of a signing key file and its `.previous` folder in `dir`, as another host holds
/// it. Answers the copied key file.
fn copy_keys(key: &Path, dir: &Path) -> PathBuf {
    let copy = dir.join("signing-key.pem");
    std::fs::copy(key, &copy).expect("copy key");
    let previous = aerie::auth::keys::previous_keys_dir(key);
    if previous.is_dir() {
        let target = aerie::auth::keys::previous_keys_dir(&copy);
        std::fs::create_dir_all(&target).expect("previous folder");
        for entry in std::fs::read_dir(&previous).expect("read previous") {
            let path = entry.expect("entry").path();
            std::fs::copy(&path, target.join(path.file_name().expect("name"))).expect("copy");
        }
    }
    copy
}

fn kid_of(key: &Path) -> String {
    aerie::auth::keys::SigningKey::load_or_generate(key, false)
        .expect("key loads")
        .kid()
        .to_owned()
}

/// The deployment's settings with another signing key file.
fn with_key<'a>(deployment: &'a Deployment, key: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut settings = deployment.settings(&["AERIE_SIGNING_KEY_FILE"]);
    settings.push(("AERIE_SIGNING_KEY_FILE", key));
    settings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_whose_signing_keys_disagree_with_the_others_does_not_start_in_production() {
    let deployment = Deployment::new();
    deployment.migrate().await;
    let key = deployment.signing_key();
    let original = kid_of(&key);
    // The first instance publishes its set.
    drop(deployment.start().await);

    // A host with a key of its own (generated, or another deployment's).
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let foreign = elsewhere.path().join("foreign.pem");
    aerie::auth::keys::SigningKey::load_or_generate(&foreign, true).expect("foreign key");
    let foreign = foreign.display().to_string();
    let refused = deployment.refused(&with_key(&deployment, &foreign)).await;
    assert!(
        refused.contains("AERIE_SIGNING_KEY_FILE: this instance's signing keys")
            && refused.contains(&format!("lack key {original}")),
        "{refused}"
    );

    // In development the same disagreement starts, loudly, and publishes nothing.
    let mut development = with_key(&deployment, &foreign);
    development.retain(|(name, _)| *name != "AERIE_ENV");
    development.push(("AERIE_LOG_FORMAT", "json"));
    let dev = start_server(tempfile::tempdir().expect("tempdir"), &development).await;
    assert!(
        dev.wait_for_line("production refuses to start", Duration::from_secs(10))
            .await,
        "no loud line in development"
    );
    drop(dev);
    drop(deployment.start().await);

    // A rotation publishes the new set: a host left with the old files is refused, the
    // rotated files start.
    let stale_host = tempfile::tempdir().expect("tempdir");
    let stale = copy_keys(&key, stale_host.path()).display().to_string();
    let rotated = run_to_exit(
        deployment.dir(),
        &["keys", "rotate"],
        &deployment.settings(&[]),
    )
    .await;
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let new = kid_of(&key);
    let refused = deployment.refused(&with_key(&deployment, &stale)).await;
    assert!(refused.contains(&format!("lack key {new}")), "{refused}");
    drop(deployment.start().await);

    // The old key leaked: deleted here, the start publishes the smaller set, and a host
    // that still holds the leaked key is refused until it deletes it too.
    let kept_host = tempfile::tempdir().expect("tempdir");
    let kept = copy_keys(&key, kept_host.path()).display().to_string();
    std::fs::remove_dir_all(aerie::auth::keys::previous_keys_dir(&key)).expect("delete old key");
    drop(deployment.start().await);
    let refused = deployment.refused(&with_key(&deployment, &kept)).await;
    assert!(
        refused.contains("still verifies with key(s)") && refused.contains(&original),
        "{refused}"
    );
    // `aerie doctor --live` names the same finding without starting.
    let doctor = run_to_exit(
        deployment.dir(),
        &["doctor", "--live"],
        &with_key(&deployment, &kept),
    )
    .await;
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert_eq!(doctor.status.code(), Some(1), "{report}");
    assert!(
        report.contains("live checks: 1 finding(s)")
            && report
                .contains("  AERIE_SIGNING_KEY_FILE: this instance still verifies with key(s)"),
        "{report}"
    );
}
