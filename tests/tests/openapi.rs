//! The OpenAPI document covers every endpoint the server routes.

use chat_tests::{Mode, TestApp};
use reqwest::{Method, StatusCode};

/// The foundation issue's endpoint table.
const ENDPOINTS: &[(&str, &str)] = &[
    ("post", "/chat_applications"),
    ("get", "/chat_applications/{token}"),
    ("patch", "/chat_applications/{token}"),
    ("put", "/chat_applications/{token}"),
    ("post", "/chat_applications/{token}/chats"),
    ("get", "/chat_applications/{token}/chats"),
    ("get", "/chat_applications/{token}/chats/{chat_number}"),
    (
        "post",
        "/chat_applications/{token}/chats/{chat_number}/messages",
    ),
    (
        "get",
        "/chat_applications/{token}/chats/{chat_number}/messages",
    ),
    (
        "get",
        "/chat_applications/{token}/chats/{chat_number}/messages/{number}",
    ),
    (
        "patch",
        "/chat_applications/{token}/chats/{chat_number}/messages/{number}",
    ),
    (
        "put",
        "/chat_applications/{token}/chats/{chat_number}/messages/{number}",
    ),
    (
        "get",
        "/chat_applications/{token}/chats/{chat_number}/messages/search",
    ),
    // Deletion.
    ("delete", "/chat_applications/{token}"),
    ("delete", "/chat_applications/{token}/chats/{chat_number}"),
    (
        "delete",
        "/chat_applications/{token}/chats/{chat_number}/messages/{number}",
    ),
    (
        "get",
        "/chat_applications/{token}/chats/{chat_number}/messages/stream",
    ),
    (
        "get",
        "/chat_applications/{token}/chats/{chat_number}/messages/ws",
    ),
    ("get", "/up"),
    ("get", "/readyz"),
    ("get", "/openapi.json"),
];

#[tokio::test]
async fn every_endpoint_is_documented_and_every_documented_operation_is_routed() {
    let app = TestApp::start(Mode::Embedded).await;
    let doc = app.get("/openapi.json").await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(
        doc.json["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc.json["openapi"]
    );
    let paths = doc.json["paths"].as_object().unwrap();
    for (method, path) in ENDPOINTS {
        let op = &paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} is undocumented"))[*method];
        assert!(op.is_object(), "{method} {path} is undocumented");
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{method} {path} has no responses"
        );
    }

    // Every documented operation reaches a handler (no 405, no unknown-route 404).
    let token = app.new_application("doc").await;
    app.new_chat(&token).await;
    app.new_message(&token, 1, "x").await;
    // Deletes go last, innermost first, so they do not take away what the others address.
    let mut calls: Vec<(Method, &String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase().parse::<Method>().unwrap(), path))
        })
        .collect();
    calls.sort_by_key(|(method, path)| (*method == Method::DELETE, std::cmp::Reverse(path.len())));
    let mut operations = 0;
    for (method, path) in calls {
        let concrete = path
            .replace("{token}", &token)
            .replace("{chat_number}", "1")
            .replace("{number}", "1");
        {
            if path.ends_with("/messages/stream") {
                // A live stream does not end: its status is the answer.
                let response = app.client.get(app.url(&concrete)).send().await.unwrap();
                assert_eq!(response.status(), StatusCode::OK, "{method} {path}");
                operations += 1;
                continue;
            }
            let reply = app
                .call(
                    method.clone(),
                    &concrete,
                    Some(serde_json::json!({"name": "n", "body": "b"})),
                )
                .await;
            assert_ne!(
                reply.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            assert_ne!(
                reply.json["detail"], "no such endpoint",
                "{method} {path} is documented but not routed"
            );
            assert!(
                !reply.status.is_server_error(),
                "{method} {path}: {reply:?}"
            );
            operations += 1;
        }
    }
    assert!(
        operations >= ENDPOINTS.len(),
        "{operations} operations documented"
    );
}

#[tokio::test]
async fn documented_schemas_expose_no_internal_id() {
    let doc = chat_api::openapi();
    let json = serde_json::to_value(&doc).unwrap();
    for (name, schema) in json["components"]["schemas"].as_object().unwrap() {
        if let Some(props) = schema["properties"].as_object() {
            assert!(!props.contains_key("id"), "schema {name} exposes an id");
            assert!(
                !props.keys().any(|k| k.ends_with("_id")),
                "schema {name} exposes an internal id"
            );
        }
    }
}
