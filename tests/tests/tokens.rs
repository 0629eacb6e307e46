//! Token rotation over HTTP, in both modes: the old token stops working (at once, or after the
//! grace period), everything else stays, and replicas agree at once.

use std::time::Duration;

use chat_tests::{Mode, TestApp};
use reqwest::{Method, StatusCode};

async fn rotate(app: &TestApp, token: &str) -> chat_tests::Reply {
    app.call(
        Method::POST,
        &format!("/chat_applications/{token}/rotate_token"),
        None,
    )
    .await
}

async fn rotation_keeps_everything_but_the_token(mode: Mode) {
    let app = TestApp::start(mode).await;
    let old = app.new_application("rotating").await;
    let chat = app.new_chat(&old).await;
    assert_eq!(
        app.new_message(&old, chat, "before").await.status,
        StatusCode::CREATED
    );

    let rotated = rotate(&app, &old).await;
    assert_eq!(rotated.status, StatusCode::OK, "{rotated:?}");
    let new = rotated.json["token"].as_str().unwrap().to_owned();
    assert_eq!(new.len(), 32);
    assert_ne!(new, old);
    assert_eq!(rotated.json["name"], "rotating");

    for path in [
        format!("/chat_applications/{old}"),
        format!("/chat_applications/{old}/chats/{chat}"),
        format!("/chat_applications/{old}/chats/{chat}/messages"),
    ] {
        app.get(&path).await.assert_problem(404);
    }
    rotate(&app, &old).await.assert_problem(404);

    let reply = app.get(&format!("/chat_applications/{new}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    // Responses echo the token the client sent.
    assert_eq!(reply.json["token"], new.as_str());
    let messages = app
        .get(&format!("/chat_applications/{new}/chats/{chat}/messages"))
        .await;
    assert_eq!(messages.json["data"][0]["body"], "before");
    let next = app.new_message(&new, chat, "after").await;
    assert_eq!(next.json["number"], 2, "numbering continues: {next:?}");
    assert_eq!(app.new_chat(&new).await, chat + 1);
}

#[tokio::test]
async fn rotation_keeps_everything_but_the_token_embedded() {
    rotation_keeps_everything_but_the_token(Mode::Embedded).await;
}

#[tokio::test]
async fn rotation_keeps_everything_but_the_token_mysql() {
    rotation_keeps_everything_but_the_token(Mode::MySql).await;
}

#[tokio::test]
async fn a_grace_period_keeps_the_old_token_working_for_a_while() {
    let app = TestApp::start_with(Mode::MySql, |s| s.token_grace_s = 2).await;
    let old = app.new_application("graceful").await;
    let chat = app.new_chat(&old).await;
    let new = rotate(&app, &old).await.json["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // A second replica sees the rotation at once: there is no token cache to go stale.
    let replica = app.replica().await;
    for (server, token) in [
        (&app, &old),
        (&app, &new),
        (&replica, &old),
        (&replica, &new),
    ] {
        let reply = server
            .get(&format!("/chat_applications/{token}/chats/{chat}"))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{token}: {reply:?}");
    }
    let again = rotate(&app, &old).await;
    again.assert_problem(409);
    assert_eq!(
        again.json["type"],
        "https://chatsystem.dev/problems/token-rotated"
    );

    tokio::time::sleep(Duration::from_millis(2300)).await;
    for server in [&app, &replica] {
        server
            .get(&format!("/chat_applications/{old}"))
            .await
            .assert_problem(404);
        let reply = server.get(&format!("/chat_applications/{new}")).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn rotating_an_unknown_or_malformed_token_is_404() {
    let app = TestApp::start(Mode::Embedded).await;
    rotate(&app, "ffffffffffffffffffffffffffffffff")
        .await
        .assert_problem(404);
    rotate(&app, "not-a-token").await.assert_problem(404);
    let get = app
        .call(
            Method::GET,
            "/chat_applications/ffffffffffffffffffffffffffffffff/rotate_token",
            None,
        )
        .await;
    get.assert_problem(405);
}
