//! Registration, login and the current user, on both engines.

mod common;

use common::PASSWORD;
use reqwest::StatusCode;
use serde_json::json;

engine_test! {
    async fn register_returns_201_with_a_user_and_token(app: TestApp) {
        let reply = app
            .post("/api/users", None, json!({"user": {"username": "Jacob", "email": "jake@jake.jake", "password": PASSWORD}}))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        let user = &reply.body["user"];
        assert_eq!(user["username"], "Jacob");
        assert_eq!(user["email"], "jake@jake.jake");
        assert_eq!(user["bio"], serde_json::Value::Null);
        assert_eq!(user["image"], serde_json::Value::Null);
        assert_eq!(user["role"], "user");
        assert!(user["token"].as_str().is_some_and(|t| t.split('.').count() == 3));
        assert!(reply.headers.contains_key("x-request-id"));
    }
}

engine_test! {
    async fn login_then_current_user(app: TestApp) {
        app.register("alice").await;
        let reply = app.post("/api/users/login", None, json!({"user": {"email": "ALICE@example.com", "password": PASSWORD}})).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let token = reply.body["user"]["token"].as_str().expect("token").to_owned();
        let me = app.get("/api/user", Some(&token)).await;
        assert_eq!(me.status, StatusCode::OK);
        assert_eq!(me.body["user"]["username"], "alice");
        assert_eq!(me.body["user"]["token"], token.as_str());
    }
}
