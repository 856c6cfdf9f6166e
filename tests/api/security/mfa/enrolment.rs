//! Turning MFA on and off: a failed enrolment leaves it off, each change is audited and
//! ends the account's other sessions, secrets are sealed at rest, administrators see who has
//! it, and roles that require it get no permissions without it.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{STEP, begin, challenge_for, code_at, confirm, enrolled, wrong_code};
use crate::common::{
    Engine, PASSWORD, TestApp, assert_unauthorized, engine_tests, rows_of, token_of,
};

async fn a_failed_enrolment_leaves_mfa_off(app: TestApp) {
    let token = app.register("bob").await;
    let early = confirm(&app, &token, "123456").await;
    early.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(early.error_on("mfa").is_some(), "{}", early.body);
    let wrong_password = app
        .post(
            "/api/auth/mfa/totp",
            Some(&token),
            json!({"password": "not bob's password 1"}),
        )
        .await;
    wrong_password.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(wrong_password.error_on("password"), Some("is incorrect"));

    let begun = begin(&app, &token).await;
    begun.assert_status(StatusCode::OK);
    let secret = begun.body["secret"].as_str().expect("secret").to_owned();
    let uri = begun.body["otpauthUri"].as_str().expect("uri");
    assert!(uri.starts_with("otpauth://totp/Aerie:bob?"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    let right = code_at(&app, &secret);
    let wrong = wrong_code(&right);
    let refused = confirm(&app, &token, wrong).await;
    refused.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.error_on("code"), Some("is incorrect"));
    confirm(&app, &token, "")
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    // A code is read up to 64 characters (a recovery code with separators is 19): the 64th
    // is checked, the 65th refused unread.
    let longest = confirm(&app, &token, &"7".repeat(64)).await;
    assert_eq!(longest.error_on("code"), Some("is incorrect"));
    let too_long = confirm(&app, &token, &"7".repeat(65)).await;
    too_long.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        too_long.error_on("code"),
        Some("is too long (maximum is 64 characters)")
    );
    // Still off: the password alone logs in.
    let login = app.login("bob@example.com", PASSWORD).await;
    login.assert_status(StatusCode::OK);
    assert!(login.body["user"]["token"].is_string(), "{}", login.body);
    assert!(rows_of(&app, "mfa_enabled").await.is_empty());
    assert_eq!(rows_of(&app, "mfa_enrolment_started").await.len(), 1);
}

async fn turning_mfa_on_ends_other_sessions_and_is_audited(app: TestApp) {
    let other = token_of(&app.register_user("bob").await);
    let current = token_of(&app.login_user("bob").await);
    let begun = begin(&app, &current).await;
    let secret = begun.body["secret"].as_str().expect("secret").to_owned();
    let confirmed = confirm(&app, &current, &code_at(&app, &secret)).await;
    confirmed.assert_status(StatusCode::OK);
    let codes = confirmed.body["recoveryCodes"].as_array().expect("codes");
    assert_eq!(codes.len(), 10);
    app.get("/api/user", Some(&other))
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    app.get("/api/user", Some(&current))
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(rows_of(&app, "mfa_enabled").await.len(), 1);
    app.assert_audited("session_revoked", "reason", "mfa_changed")
        .await;
    // On already: enrolling again is refused, and the secret is not replaced.
    let again = begin(&app, &current).await;
    again.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    let reconfirmed = confirm(&app, &current, &code_at(&app, &secret)).await;
    reconfirmed.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        reconfirmed.error_on("mfa"),
        Some("is already on; turn it off first to enrol again"),
        "confirming twice does not mint new recovery codes"
    );
    app.clock.advance(STEP);
    let challenge = challenge_for(&app, "bob").await;
    super::answer(&app, &challenge, &code_at(&app, &secret))
        .await
        .assert_status(StatusCode::OK);
}

/// `DELETE /api/auth/mfa/totp` with a JSON body.
async fn disable(app: &TestApp, token: &str, body: Value) -> crate::common::Reply {
    let request = app
        .client
        .delete(app.url("/api/auth/mfa/totp"))
        .header("Authorization", format!("Token {token}"))
        .json(&body);
    crate::common::read(request.send().await.expect("sent")).await
}

async fn turning_mfa_off_needs_the_password_or_a_code(app: TestApp) {
    let bob = enrolled(&app, "bob").await;
    let challenge = challenge_for(&app, "bob").await;
    let other = super::answer(&app, &challenge, &code_at(&app, &bob.secret)).await;
    let other = super::token_in(&other);
    let disable = |body: Value| disable(&app, &bob.token, body);
    disable(json!({}))
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    disable(json!({"password": "not bob's password 1"}))
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    disable(json!({"code": "000000", "password": PASSWORD}))
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(rows_of(&app, "mfa_disabled").await.is_empty());
    app.clock.advance(STEP);
    disable(json!({"code": code_at(&app, &bob.secret)}))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let events = app.audit_events("mfa_disabled").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["detail"]["provedWith"], "code");
    app.get("/api/user", Some(&other))
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    let login = app.login("bob@example.com", PASSWORD).await;
    assert!(login.body["user"]["token"].is_string(), "{}", login.body);
    disable(json!({"password": PASSWORD}))
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY);
}

/// An account disabled while a session of it lives (an operator's edit that reached the
/// database before any revocation did) can use that session for nothing MFA guards:
/// stepping up, turning MFA off, enrolling again.
async fn a_disabled_accounts_session_cannot_step_up_or_change_mfa(app: TestApp) {
    let bob = enrolled(&app, "bob").await;
    app.execute_sql("UPDATE users SET disabled_at = 1 WHERE username = 'bob'")
        .await;
    let code = code_at(&app, &bob.secret);
    let replies = [
        super::step_up(&app, &bob.token, json!({"code": code})).await,
        begin(&app, &bob.token).await,
        confirm(&app, &bob.token, &code).await,
        disable(&app, &bob.token, json!({"password": PASSWORD})).await,
    ];
    for reply in &replies {
        assert_unauthorized(reply, &reply.path);
    }
    assert!(rows_of(&app, "mfa_disabled").await.is_empty());
    assert_eq!(rows_of(&app, "mfa_enrolment_started").await.len(), 1);
}

/// A database dump alone must not yield the secrets that mint codes.
async fn totp_secrets_are_sealed_at_rest(app: TestApp) {
    let bob = enrolled(&app, "bob").await;
    let stored = app.query_text("SELECT secret_sealed FROM mfa_totp").await;
    let [sealed] = stored.as_slice() else {
        panic!("one enrolment: {stored:?}");
    };
    assert!(sealed.starts_with("f1.1."), "{sealed}");
    assert!(!sealed.contains(&bob.secret));
    let raw = totp_rs::Secret::try_from_base32(&bob.secret).expect("base32");
    let hex: String = raw.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert!(!sealed.to_lowercase().contains(&hex));
}

async fn admins_see_who_has_mfa(app: TestApp) {
    enrolled(&app, "bob").await;
    app.register("carol").await;
    app.register("admin").await;
    app.set_role("admin", "admin").await;
    let admin = token_of(&app.login_user("admin").await);
    let list = app.get("/api/admin/users", Some(&admin)).await;
    list.assert_status(StatusCode::OK);
    let mfa_of = |name: &str| {
        list.body["users"]
            .as_array()
            .and_then(|users| users.iter().find(|u| u["username"] == name))
            .map(|u| u["mfa"].clone())
    };
    assert_eq!(mfa_of("bob"), Some(json!(true)));
    assert_eq!(mfa_of("carol"), Some(json!(false)));
}

/// `AERIE_MFA_REQUIRED_ROLES=admin`: an administrator without MFA is refused every
/// administrative route, with a message naming the enrolment route, until they enrol.
async fn required_roles_get_no_permissions_until_they_enrol(engine: Engine) {
    let app = TestApp::spawn_with(engine, &[("AERIE_MFA_REQUIRED_ROLES", "admin")]).await;
    app.register("admin").await;
    app.set_role("admin", "admin").await;
    let admin = token_of(&app.login_user("admin").await);
    let refused = app.get("/api/admin/users", Some(&admin)).await;
    refused.assert_status(StatusCode::FORBIDDEN);
    let message = refused.error_on("mfa").expect("an mfa message");
    assert!(message.contains("POST /api/auth/mfa/totp"), "{message}");
    // Their own account still works, so they can enrol.
    app.get("/api/user", Some(&admin))
        .await
        .assert_status(StatusCode::OK);
    let begun = begin(&app, &admin).await;
    let secret = begun.body["secret"].as_str().expect("secret").to_owned();
    confirm(&app, &admin, &code_at(&app, &secret))
        .await
        .assert_status(StatusCode::OK);
    app.get("/api/admin/users", Some(&admin))
        .await
        .assert_status(StatusCode::OK);
}

/// `AERIE_MFA_REQUIRED_ROLES=editor`: the permissions checked inside a route (editing or
/// deleting someone else's article or comment) are withheld too, and the refusal says how to
/// get them back; a user whose role never held them gets the plain 403, and so does the
/// editor for a permission enrolling would not give them (telling them to enrol would be a
/// false promise, and would tell them which routes an enrolment opens).
async fn withheld_editor_permissions_say_how_to_enrol(engine: Engine) {
    let app = TestApp::spawn_with(engine, &[("AERIE_MFA_REQUIRED_ROLES", "editor")]).await;
    let author = app.register("author").await;
    let slug = app
        .create_article(&author, "Someone else's words", &[])
        .await;
    let comment = app.add_comment(&author, &slug, "first").await;
    app.register("ed").await;
    app.set_role("ed", "editor").await;
    let editor = token_of(&app.login_user("ed").await);
    let plain = app.register("pat").await;
    let path = format!("/api/articles/{slug}");
    let edit = json!({"article": {"body": "edited by someone else"}});
    let comment_path = format!("{path}/comments/{}", comment["id"]);
    for (who, token) in [("editor", &editor), ("plain user", &plain)] {
        let edited = app.put(&path, Some(token), edit.clone()).await;
        edited.assert_status(StatusCode::FORBIDDEN);
        let deleted = app.delete(&comment_path, Some(token)).await;
        deleted.assert_status(StatusCode::FORBIDDEN);
        for reply in [&edited, &deleted] {
            let told_to_enrol = reply
                .error_on("mfa")
                .is_some_and(|message| message.contains("POST /api/auth/mfa/totp"));
            assert_eq!(told_to_enrol, who == "editor", "{who}: {}", reply.body);
        }
    }
    let not_an_editors = app.get("/api/admin/users", Some(&editor)).await;
    not_an_editors.assert_status(StatusCode::FORBIDDEN);
    assert_eq!(
        not_an_editors.error_on("mfa"),
        None,
        "{}",
        not_an_editors.body
    );
    assert_eq!(
        app.article(&slug, None).await["body"],
        "# Body\n\ntext",
        "nothing changed"
    );
}

engine_tests!(
    a_failed_enrolment_leaves_mfa_off,
    turning_mfa_on_ends_other_sessions_and_is_audited,
    turning_mfa_off_needs_the_password_or_a_code,
    a_disabled_accounts_session_cannot_step_up_or_change_mfa,
    totp_secrets_are_sealed_at_rest,
    admins_see_who_has_mfa,
    required_roles_get_no_permissions_until_they_enrol,
    withheld_editor_permissions_say_how_to_enrol,
);
