//! The OpenAPI document and the /docs page: the document lists exactly the routes of the
//! access table, with the auth scheme and error statuses each one can answer, and the page
//! loads nothing from anywhere.

use aerie::http::access::{Access, ROUTES};
use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{self, Engine, TestApp, engine_tests};

async fn document(app: &TestApp) -> Value {
    let reply = app.get("/openapi.json", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.body
}

fn operation<'a>(document: &'a Value, method: &str, path: &str) -> &'a Value {
    &document["paths"][path][method.to_ascii_lowercase()]
}

fn statuses(operation: &Value) -> Vec<&str> {
    operation["responses"]
        .as_object()
        .map(|r| r.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// A metrics token, so that `/metrics` exists on the main listener and in its document.
const METRICS_TOKEN: (&str, &str) = (
    "AERIE_METRICS_TOKEN",
    "openapi-test-metrics-token-0123456789abcdef",
);

async fn the_document_lists_every_route_of_the_access_table_and_no_other(engine: Engine) {
    let app = TestApp::spawn_with(engine, &[METRICS_TOKEN]).await;
    let document = document(&app).await;
    let version = document["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1."), "{version}");
    for rule in ROUTES {
        let op = operation(&document, rule.method.as_str(), rule.path);
        assert!(
            op.is_object(),
            "{} {} is not documented",
            rule.method,
            rule.path
        );
        assert!(
            statuses(op).iter().any(|s| s.starts_with('2')),
            "{} {} documents no success",
            rule.method,
            rule.path
        );
    }
    let paths = document["paths"].as_object().expect("paths");
    for (path, item) in paths {
        for method in item.as_object().expect("path item").keys() {
            assert!(
                ROUTES
                    .iter()
                    .any(|r| r.path == path && r.method.as_str().eq_ignore_ascii_case(method)),
                "{method} {path} is documented but the server has no such route"
            );
        }
    }
}

/// Without a metrics token `/metrics` does not exist on the main listener (404 whatever the
/// method), so a published document that listed it would promise a route that never answers.
#[tokio::test]
async fn the_document_lists_metrics_only_when_the_route_exists() {
    let without = TestApp::spawn(Engine::Sqlite).await;
    let published = document(&without).await;
    assert!(
        published["paths"].get("/metrics").is_none(),
        "listed without a token"
    );
    assert!(published["paths"].get("/api/user").is_some());
    let page = without
        .client
        .get(without.url("/docs"))
        .send()
        .await
        .expect("sent");
    let page = page.text().await.expect("body");
    assert!(
        !page.contains("/metrics"),
        "the page lists /metrics without a token"
    );

    let with = TestApp::spawn_with(Engine::Sqlite, &[METRICS_TOKEN]).await;
    let published = document(&with).await;
    assert!(
        published["paths"]["/metrics"]["get"].is_object(),
        "not listed with a token"
    );
}

#[tokio::test]
async fn each_route_documents_its_auth_and_error_statuses() {
    let app = TestApp::spawn_with(Engine::Sqlite, &[METRICS_TOKEN]).await;
    let document = document(&app).await;
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["token"]["type"], "apiKey");
    assert_eq!(schemes["token"]["name"], "Authorization");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    for rule in ROUTES {
        let op = operation(&document, rule.method.as_str(), rule.path);
        let listed = statuses(op);
        let what = format!("{} {}", rule.method, rule.path);
        assert!(
            listed.contains(&"429"),
            "{what}: every request counts against the per-IP limit"
        );
        let security = || op["security"].as_array().expect("security");
        match rule.access {
            Access::Public => {}
            // Not a user's token: the metrics token, and 404 without it.
            Access::MetricsToken => {
                assert!(listed.contains(&"404"), "{what}: no 404");
                assert!(
                    security().iter().any(|s| s.get("metricsToken").is_some()),
                    "{what}"
                );
            }
            Access::Authenticated | Access::Permission(_) => {
                assert!(listed.contains(&"401"), "{what}: no 401");
                assert!(
                    security().iter().any(|s| s.get("token").is_some()),
                    "{what}: no security"
                );
            }
        }
        if matches!(rule.access, Access::Permission(_)) {
            assert!(listed.contains(&"403"), "{what}: no 403");
        }
        if op.get("requestBody").is_some() {
            for status in ["400", "413", "415", "422"] {
                assert!(
                    listed.contains(&status),
                    "{what}: a body route without {status}"
                );
            }
        }
        if rule.path.contains('{') {
            assert!(
                listed.contains(&"404"),
                "{what}: a path parameter without 404"
            );
        }
        for (status, response) in op["responses"].as_object().expect("responses") {
            if status.starts_with('4') {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{what} {status}"
                );
            }
        }
    }
    let bodies = [
        ("post", "/api/users"),
        ("put", "/api/user"),
        ("post", "/api/articles"),
        ("put", "/api/user/password"),
        ("post", "/api/auth/refresh"),
        ("put", "/api/admin/users/{username}/role"),
        ("post", "/api/articles/{slug}/comments"),
    ];
    for (method, path) in bodies {
        assert!(
            operation(&document, method, path)
                .get("requestBody")
                .is_some(),
            "{method} {path}"
        );
    }
}

/// A `$ref` to a schema, followed.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.rsplit('/').next().expect("name");
            &document["components"]["schemas"][name]
        }
        None => schema,
    }
}

#[tokio::test]
async fn request_schemas_are_closed_like_the_server_and_user_allows_a_refresh_token() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let document = document(&app).await;
    let register = &operation(&document, "post", "/api/users")["requestBody"]["content"]["application/json"]
        ["schema"];
    let wrapper = resolve(&document, register);
    assert_eq!(wrapper["additionalProperties"], false, "{wrapper}");
    let user = resolve(&document, &wrapper["properties"]["user"]);
    assert_eq!(user["additionalProperties"], false, "{user}");
    assert_eq!(
        user["required"],
        serde_json::json!(["username", "email", "password"])
    );
    // What the document calls closed, the server really refuses.
    let extra = app.post("/api/users", None, serde_json::json!({"user": {"username": "x", "email": "x@example.com", "password": common::PASSWORD, "role": "admin"}})).await;
    assert_eq!(extra.status, StatusCode::UNPROCESSABLE_ENTITY);
    let user_view = &document["components"]["schemas"]["User"];
    assert!(
        user_view["properties"]["refreshToken"].is_object(),
        "{user_view}"
    );
    let required = user_view["required"].as_array().expect("required");
    assert!(
        !required.iter().any(|r| r == "refreshToken"),
        "refreshToken is optional"
    );
    // Bearer clients always get a token; cookie-mode browsers get it only as a cookie.
    assert!(user_view["properties"]["token"].is_object(), "{user_view}");
    assert!(
        !required.iter().any(|r| r == "token"),
        "token is absent in cookie mode"
    );
}

#[tokio::test]
async fn docs_page_is_html_that_loads_nothing_from_anywhere() {
    let app = TestApp::spawn_with(Engine::Sqlite, &[METRICS_TOKEN]).await;
    let response = app.client.get(app.url("/docs")).send().await.expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        csp.starts_with("default-src 'none'"),
        "the API's strict CSP applies: {csp}"
    );
    let page = response.text().await.expect("body").to_ascii_lowercase();
    for loader in [
        "<script", "<link", "<style", "<img", "<iframe", "style=", "src=", "@import", "url(",
    ] {
        assert!(
            !page.contains(loader),
            "the page loads or styles something: {loader}"
        );
    }
    for link in page.split("href=\"").skip(1) {
        let target = link.split('"').next().unwrap_or_default();
        assert!(
            target.starts_with('#') || target == "openapi.json",
            "a link off the page: {target}"
        );
    }
    for rule in ROUTES {
        assert!(
            page.contains(&rule.path.to_ascii_lowercase()),
            "{} missing from /docs",
            rule.path
        );
    }
    assert!(page.contains("schema-errorbody"));
}

#[tokio::test]
async fn api_docs_can_be_turned_off() {
    let app = TestApp::spawn_with(Engine::Sqlite, &[("AERIE_EXPOSE_API_DOCS", "false")]).await;
    for path in ["/openapi.json", "/docs"] {
        let reply = app.get(path, None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            reply.error_on("route"),
            Some("not found"),
            "{path}: {}",
            reply.body
        );
    }
}

async fn unknown_query_parameters_are_refused_not_ignored(app: TestApp) {
    let token = app.register("query").await;
    for path in [
        "/api/articles?tag=x&limit=5&offset=0&author=a&favorited=b",
        "/api/articles/feed?limit=5&offset=0",
        "/api/admin/users?query=q",
    ] {
        let reply = app.get(path, Some(&token)).await;
        assert_ne!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: {}",
            reply.body
        );
    }
    for path in [
        "/api/articles?tags=x",
        "/api/articles?limt=5",
        "/api/articles/feed?tag=x",
        "/api/articles/feed?author=a",
    ] {
        let reply = app.get(path, Some(&token)).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: {}",
            reply.body
        );
        assert!(reply.error_on("query").is_some(), "{path}: {}", reply.body);
    }
}

async fn nullable_fields_are_documented_as_always_present(app: TestApp) {
    let document = document(&app).await;
    // RealWorld clients read `bio` and `image` as null when unset, never as missing.
    for schema in ["User", "Profile"] {
        let required = &document["components"]["schemas"][schema]["required"];
        for field in ["bio", "image"] {
            assert!(
                required
                    .as_array()
                    .is_some_and(|r| r.iter().any(|f| f == field)),
                "{schema}.{field}"
            );
        }
    }
    let user = app.register_user("nulls").await;
    assert!(user["bio"].is_null() && user.get("bio").is_some());
    assert!(user["image"].is_null() && user.get("image").is_some());
}

engine_tests!(
    the_document_lists_every_route_of_the_access_table_and_no_other,
    unknown_query_parameters_are_refused_not_ignored,
    nullable_fields_are_documented_as_always_present,
);

/// Schemathesis 4 found the document calling `tagList: [""]` and an empty title valid while
/// the server refuses them: the document now states the domain's bounds and refused
/// characters, and what it calls invalid the server refuses.
#[tokio::test]
async fn text_fields_state_the_servers_bounds() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let published = document(&app).await;
    let schemas = &published["components"]["schemas"];
    let tag = &schemas["TagList"]["items"];
    assert_eq!(tag["minLength"], 1, "{tag}");
    assert_eq!(tag["maxLength"], aerie::domain::TAG_MAX_CHARS, "{tag}");
    assert!(
        tag["pattern"]
            .as_str()
            .is_some_and(|p| p.contains("\\u0000-\\u001f")),
        "{tag}"
    );
    assert_eq!(
        schemas["TagList"]["maxItems"], 10,
        "the default tags-per-article quota"
    );
    for (name, max) in [
        ("TitleText", aerie::domain::TITLE_MAX_CHARS),
        ("DescriptionText", aerie::domain::DESCRIPTION_MAX_CHARS),
        ("ArticleBodyText", aerie::domain::ARTICLE_BODY_MAX_CHARS),
        ("CommentBodyText", aerie::domain::COMMENT_BODY_MAX_CHARS),
    ] {
        assert_eq!(schemas[name]["minLength"], 1, "{name}");
        assert_eq!(schemas[name]["maxLength"], max, "{name}");
    }
    let token = app.register("bounds").await;
    for tags in [
        serde_json::json!([""]),
        serde_json::json!(["a\u{7}b"]),
        serde_json::json!(["   "]),
    ] {
        let reply = app
            .post(
                "/api/articles",
                Some(&token),
                serde_json::json!({"article": {"title": "T", "description": "D", "body": "B", "tagList": tags}}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{tags}");
        assert!(reply.error_on("tagList").is_some(), "{}", reply.body);
    }
    // The document states this server's quota, not only the domain's ceiling.
    let strict =
        TestApp::spawn_with(Engine::Sqlite, &[("AERIE_QUOTA_TAGS_PER_ARTICLE", "3")]).await;
    let published = document(&strict).await;
    assert_eq!(published["components"]["schemas"]["TagList"]["maxItems"], 3);
}
