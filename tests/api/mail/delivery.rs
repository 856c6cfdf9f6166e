//! The outbox and its sender.

use std::time::Duration;

use reqwest::StatusCode;

use super::{app_mailing_to, request_reset};
use crate::common::{Engine, Mail, SmtpServer, TestApp, aerie, engine_tests, fresh_metrics_token};

engine_tests!(
    development_without_smtp_writes_each_mail_as_an_eml_file,
    mail_queued_while_the_relay_is_down_arrives_once_it_is_back,
    the_database_holds_no_usable_link_while_mail_waits,
    a_relay_without_starttls_gets_nothing,
    waiting_mail_is_resealed_by_a_data_key_rotation_and_still_arrives,
    a_mail_one_instance_is_delivering_is_not_sent_by_another,
    mail_failing_past_the_threshold_is_alerted_and_counted,
);

async fn development_without_smtp_writes_each_mail_as_an_eml_file(app: TestApp) {
    app.register("hana").await;
    let outbox = app.data_dir.path().join("outbox");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mail = loop {
        let found = std::fs::read_dir(&outbox).ok().and_then(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| p.extension().is_some_and(|x| x == "eml"))
        });
        if let Some(path) = found {
            break Mail::read(&path);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no .eml in {outbox:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(mail.to.contains("hana@example.com"), "{mail:?}");
    assert!(mail.subject.contains("Verify"), "{mail:?}");
    let token = mail.token().expect("a verification link");
    app.post(
        "/api/auth/email/verify",
        None,
        serde_json::json!({ "token": token }),
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
}

async fn mail_queued_while_the_relay_is_down_arrives_once_it_is_back(engine: Engine) {
    let Some(mut smtp) = SmtpServer::start().await else {
        return;
    };
    let app = app_mailing_to(engine, &smtp, &[]).await;
    smtp.stop().await;
    app.register("ivan").await;
    let reply = request_reset(&app, "ivan@example.com").await;
    // The request does not wait for the relay.
    reply.assert_status(StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(smtp.mails().is_empty());
    let queued = app.query_text("SELECT kind FROM mail_outbox").await;
    assert!(
        queued.len() >= 2,
        "both mails wait in the outbox: {queued:?}"
    );

    smtp.restart().await;
    smtp.wait_for("ivan@example.com", "Verify", 30).await;
    smtp.wait_for("ivan@example.com", "Reset", 30).await;
    // Delivered mail leaves the outbox; nothing is sent twice.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        app.query_text("SELECT kind FROM mail_outbox")
            .await
            .is_empty()
    );
    assert_eq!(smtp.mails_to("ivan@example.com").len(), 2);
}

async fn the_database_holds_no_usable_link_while_mail_waits(engine: Engine) {
    let Some(mut smtp) = SmtpServer::start().await else {
        return;
    };
    let app = app_mailing_to(engine, &smtp, &[]).await;
    smtp.stop().await;
    app.register("judy").await;
    request_reset(&app, "judy@example.com").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // What someone with a copy of the database sees while the mails wait.
    let mut copy = Vec::new();
    for sql in [
        "SELECT kind || ' ' || recipient_sealed || ' ' || payload_sealed FROM mail_outbox",
        "SELECT token_hash || ' ' || purpose FROM mail_tokens",
    ] {
        copy.extend(app.query_text(sql).await);
    }
    assert!(copy.len() >= 4, "{copy:?}");
    let mut raw_files = Vec::new();
    if engine == Engine::Sqlite {
        for file in ["aerie.db", "aerie.db-wal"] {
            if let Ok(bytes) = std::fs::read(app.data_dir.path().join(file)) {
                raw_files.push(String::from_utf8_lossy(&bytes).into_owned());
            }
        }
    }

    smtp.restart().await;
    let mails = [
        smtp.wait_for("judy@example.com", "Verify", 30).await,
        smtp.wait_for("judy@example.com", "Reset", 30).await,
    ];
    for mail in &mails {
        let token = mail.token().expect("a link");
        for text in copy.iter().chain(&raw_files) {
            assert!(!text.contains(&token), "a live token is stored readable");
            assert!(
                !text.contains("judy@example.com"),
                "the recipient is stored readable"
            );
        }
    }
    // The reset link still works: what was stored was the hash.
    super::confirm_reset(&app, &mails[1].token().expect("link"), super::NEW_PASSWORD)
        .await
        .assert_status(StatusCode::NO_CONTENT);
}

async fn a_relay_without_starttls_gets_nothing(engine: Engine) {
    // A plain listener that greets like SMTP but offers no STARTTLS: the sender must not
    // fall back to clear text (the default `smtp://` requires STARTTLS).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let received = std::sync::Arc::new(tokio::sync::Mutex::new(Vec::<String>::new()));
    let seen = received.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 plain ESMTP\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    seen.lock().await.push(line.clone());
                    let answer: &[u8] = if line.starts_with("EHLO") {
                        b"250-plain\r\n250 AUTH PLAIN\r\n"
                    } else if line.starts_with("QUIT") {
                        b"221 bye\r\n"
                    } else {
                        b"250 ok\r\n"
                    };
                    if write.write_all(answer).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let url = format!("smtp://127.0.0.1:{port}");
    let app = TestApp::spawn_with(
        engine,
        &[
            ("AERIE_SMTP_URL", &url),
            ("AERIE_APP_URL", super::super::common::APP_URL),
        ],
    )
    .await;
    app.register("mallory").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let lines = received.lock().await.clone();
    assert!(!lines.is_empty(), "the sender tried the relay");
    assert!(
        lines
            .iter()
            .all(|l| !l.starts_with("MAIL") && !l.starts_with("DATA")),
        "mail was sent without TLS: {lines:?}"
    );
    assert!(
        !app.query_text("SELECT kind FROM mail_outbox")
            .await
            .is_empty()
    );
}

/// Mail queued before a `kill -9` of the server is sent by the next start: the outbox is in
/// the database, not in the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_queued_before_a_kill_9_is_sent_after_the_restart() {
    let Some(mut smtp) = SmtpServer::start().await else {
        return;
    };
    smtp.stop().await;
    let data = tempfile::tempdir().expect("tempdir");
    let data_dir = data.path().display().to_string();
    let mail_settings = smtp.settings();
    let mut settings: Vec<(&str, &str)> = vec![
        ("AERIE_LISTEN", "127.0.0.1:0"),
        ("AERIE_DATA_DIR", data_dir.as_str()),
        ("AERIE_LOG_FORMAT", "json"),
    ];
    settings.extend(mail_settings.iter().map(|(k, v)| (*k, v.as_str())));
    let server = crate::common::start_server(data, &settings).await;
    let register = serde_json::json!({"user": {"username": "quinn", "email": "quinn@example.com", "password": crate::common::PASSWORD}});
    let reply = reqwest::Client::new()
        .post(server.http("/api/users"))
        .json(&register)
        .send()
        .await
        .expect("register");
    assert_eq!(reply.status(), StatusCode::CREATED);
    assert!(
        server
            .wait_for_line("mail delivery failed", Duration::from_secs(20))
            .await,
        "the sender tried the relay while it was down"
    );
    // Between attempts, usually; a kill in the middle of one leaves its lease (60 s) to run
    // out first, hence the long wait below.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let data = server.kill_hard().await;

    smtp.restart().await;
    let restarted = crate::common::start_server(data, &settings).await;
    smtp.wait_for("quinn@example.com", "Verify", 90).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(smtp.mails_to("quinn@example.com").len(), 1);
    drop(restarted);
}

/// Mail waiting in the outbox is sealed under the data keys like every other sealed value: a
/// rotation re-seals it, the old key can then be retired, and the mail still goes out.
async fn waiting_mail_is_resealed_by_a_data_key_rotation_and_still_arrives(engine: Engine) {
    let Some(mut smtp) = SmtpServer::start().await else {
        return;
    };
    let app = app_mailing_to(engine, &smtp, &[]).await;
    smtp.stop().await;
    app.register("ivan").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let waiting = app
        .query_text("SELECT recipient_sealed FROM mail_outbox")
        .await;
    assert!(
        !waiting.is_empty() && waiting.iter().all(|v| v.starts_with("f1.1.")),
        "{waiting:?}"
    );
    aerie(&app, "", &["keys", "rotate-data"], "").await;
    let resealed = app
        .query_text("SELECT recipient_sealed || ' ' || payload_sealed FROM mail_outbox")
        .await;
    assert!(
        resealed
            .iter()
            .all(|v| v.starts_with("f1.2.") && v.contains(" f1.2.")),
        "{resealed:?}"
    );
    aerie(&app, "", &["keys", "rotate-data", "--retire"], "").await;
    smtp.restart().await;
    smtp.wait_for("ivan@example.com", "Verify", 30).await;
}

/// A relay that accepts connections and never says a word: a delivery to it hangs until the
/// sender's timeout. Answers its address and how many connections it has taken.
async fn silent_relay() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(stream);
        }
    });
    (format!("smtp://127.0.0.1:{port}"), accepted)
}

/// Two instances share one outbox. The one delivering a mail holds it (a lease in the
/// database) for as long as the attempt may take, so the other does not send it too: one
/// link, one mail, even while the first instance's relay is slow.
async fn a_mail_one_instance_is_delivering_is_not_sent_by_another(engine: Engine) {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let (silent, accepted) = silent_relay().await;
    let first = TestApp::spawn_with(
        engine,
        &[
            ("AERIE_SMTP_URL", &silent),
            ("AERIE_APP_URL", crate::common::APP_URL),
        ],
    )
    .await;
    first.register("vera").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while accepted.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first instance never tried its relay"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The first instance is now stuck delivering vera's mail; a second one looks every
    // half second.
    let settings = smtp.settings();
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let second = first.spawn_sibling_with(&settings).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        smtp.mails().is_empty(),
        "the second instance sent a mail the first was delivering"
    );
    // Mail nobody holds is the second instance's to send.
    super::request_reset(&second, "vera@example.com").await;
    smtp.wait_for("vera@example.com", "Reset", 20).await;
}

/// Mail that keeps failing raises `mail_delivery_failing` once it has failed for longer than
/// `AERIE_MAIL_ALERT_AFTER_SECS`, with the outbox depth; `/metrics` shows the depth all
/// along, and both settle once the relay is back.
async fn mail_failing_past_the_threshold_is_alerted_and_counted(engine: Engine) {
    let Some(mut smtp) = SmtpServer::start().await else {
        return;
    };
    let token = fresh_metrics_token();
    let app = app_mailing_to(
        engine,
        &smtp,
        &[
            ("AERIE_MAIL_ALERT_AFTER_SECS", "1"),
            ("AERIE_METRICS_TOKEN", &token),
        ],
    )
    .await;
    // A working relay raises nothing.
    app.register("wade").await;
    smtp.wait_for("wade@example.com", "Verify", 20).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(app.audit_events("mail_delivery_failing").await.is_empty());
    let depth = "aerie_mail_outbox_depth";
    app.metrics(&token).await.assert_value(depth, &[], 0.0);

    smtp.stop().await;
    app.register("xena").await;
    request_reset(&app, "xena@example.com").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let alert = loop {
        if let Some(alert) = app.audit_events("mail_delivery_failing").await.pop() {
            break alert;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no mail_delivery_failing alert"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(alert["detail"]["outboxDepth"], 2, "{alert}");
    assert!(
        alert["detail"]["failingForSecs"].as_i64() >= Some(1),
        "{alert}"
    );
    app.metrics(&token).await.assert_value(depth, &[], 2.0);

    smtp.restart().await;
    smtp.wait_for("xena@example.com", "Reset", 30).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    app.metrics(&token).await.assert_value(depth, &[], 0.0);
    assert_eq!(app.audit_events("mail_delivery_failing").await.len(), 1);
}
