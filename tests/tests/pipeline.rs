//! Counts and search through the whole pipeline (outbox → relay → queue → counter / indexer),
//! in both modes, plus the search endpoint's contract.

use std::time::Duration;

use chat_tests::{Reply, TestApp, both_modes};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const LAG: Duration = Duration::from_secs(5);

fn numbers(reply: &Reply) -> Vec<i64> {
    reply.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["number"].as_i64().unwrap())
        .collect()
}

fn search_path(token: &str, chat: i64, q: &str) -> String {
    format!(
        "/chat_applications/{token}/chats/{chat}/messages/search?q={}",
        urlencode(q)
    )
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn counts_follow_creates(app: TestApp) {
    let token = app.new_application("counted").await;
    let c1 = app.new_chat(&token).await;
    let c2 = app.new_chat(&token).await;
    for i in 0..7 {
        app.new_message(&token, c1, &format!("m{i}")).await;
    }
    app.new_message(&token, c2, "other").await;
    app.wait_until(&format!("/chat_applications/{token}"), LAG, |r| {
        r.json["chats_count"] == 2
    })
    .await;
    app.wait_until(
        &format!("/chat_applications/{token}/chats/{c1}"),
        LAG,
        |r| r.json["messages_count"] == 7,
    )
    .await;
    app.wait_until(
        &format!("/chat_applications/{token}/chats/{c2}"),
        LAG,
        |r| r.json["messages_count"] == 1,
    )
    .await;
    // Edits change no count.
    app.call(
        Method::PATCH,
        &format!("/chat_applications/{token}/chats/{c1}/messages/1"),
        Some(json!({"body": "e"})),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        app.get(&format!("/chat_applications/{token}/chats/{c1}"))
            .await
            .json["messages_count"],
        7
    );
}

async fn messages_become_searchable_and_edits_follow(app: TestApp) {
    let token = app.new_application("search").await;
    let chat = app.new_chat(&token).await;
    let other = app.new_chat(&token).await;
    for body in [
        "hello world",
        "help me please",
        "othello is a play",
        "say hello again",
        "Hello, World!",
    ] {
        assert_eq!(
            app.new_message(&token, chat, body).await.status,
            StatusCode::CREATED
        );
    }
    app.new_message(&token, other, "hello from another chat")
        .await;

    let hel = app
        .wait_until(&search_path(&token, chat, "hel"), LAG, |r| {
            numbers(r).len() == 4
        })
        .await;
    let mut found = numbers(&hel);
    found.sort();
    assert_eq!(
        found,
        vec![1, 2, 4, 5],
        "prefix matches hello and help, not othello, only this chat"
    );
    let hit = &hel.json["data"][0];
    assert!(hit["highlight"].as_str().unwrap().contains("<em>"), "{hit}");
    assert!(hit["body"].is_string() && hit["created_at"].is_string());
    assert_eq!(hel.json["next"], Value::Null);

    let both = app.get(&search_path(&token, chat, "hello world")).await;
    let mut found = numbers(&both);
    found.sort();
    assert_eq!(found, vec![1, 5], "every word must match");
    assert_eq!(
        numbers(&app.get(&search_path(&token, chat, "HELLO")).await).len(),
        3,
        "case-insensitive"
    );
    assert!(numbers(&app.get(&search_path(&token, chat, "zebra")).await).is_empty());

    let edit = app
        .call(
            Method::PUT,
            &format!("/chat_applications/{token}/chats/{chat}/messages/2"),
            Some(json!({"body": "zebra crossing"})),
        )
        .await;
    assert_eq!(edit.status, StatusCode::OK);
    app.wait_until(&search_path(&token, chat, "zebra"), LAG, |r| {
        numbers(r) == vec![2]
    })
    .await;
    app.wait_until(&search_path(&token, chat, "help"), LAG, |r| {
        numbers(r).is_empty()
    })
    .await;
}

async fn search_pages_with_an_opaque_cursor(app: TestApp) {
    let token = app.new_application("paged search").await;
    let chat = app.new_chat(&token).await;
    for i in 0..7 {
        app.new_message(&token, chat, &format!("needle number {i}"))
            .await;
    }
    app.wait_until(&search_path(&token, chat, "needle"), LAG, |r| {
        numbers(r).len() == 7
    })
    .await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("{}&limit=3", search_path(&token, chat, "needle"));
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = app.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{page:?}");
        seen.extend(numbers(&page));
        match page.json["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        seen,
        vec![7, 6, 5, 4, 3, 2, 1],
        "equal relevance: newest first, each hit once"
    );
}

async fn search_rejects_bad_input(app: TestApp) {
    let token = app.new_application("bad search").await;
    let chat = app.new_chat(&token).await;
    let base = format!("/chat_applications/{token}/chats/{chat}/messages/search");
    app.get(&base).await.assert_problem(400);
    app.get(&format!("{base}?q=")).await.assert_problem(400);
    app.get(&format!("{base}?q=%20%20"))
        .await
        .assert_problem(400);
    app.get(&format!("{base}?q={}", "a".repeat(257)))
        .await
        .assert_invalid_field("q");
    assert_eq!(
        app.get(&format!("{base}?q={}", "a".repeat(256)))
            .await
            .status,
        StatusCode::OK
    );
    for bad in ["limit=0", "limit=101", "limit=x", "cursor=garbage"] {
        app.get(&format!("{base}?q=x&{bad}"))
            .await
            .assert_problem(400);
    }
    app.get(&search_path("ffffffffffffffffffffffffffffffff", chat, "x"))
        .await
        .assert_problem(404);
    app.get(&search_path(&token, 99, "x"))
        .await
        .assert_problem(404);
    // Query syntax is text: no operator, no error, no injection.
    for q in [
        "\"unbalanced",
        "a* OR b",
        "title:(x)",
        "{\"match_all\":{}}",
        "-",
        "\\",
        "a AND NOT b",
    ] {
        let reply = app.get(&search_path(&token, chat, q)).await;
        assert_eq!(reply.status, StatusCode::OK, "{q}: {reply:?}");
    }
}

async fn search_treats_operators_as_words(app: TestApp) {
    let token = app.new_application("operators").await;
    let chat = app.new_chat(&token).await;
    app.new_message(&token, chat, "cats and dogs").await;
    app.new_message(&token, chat, "cats or birds").await;
    app.wait_until(&search_path(&token, chat, "cats"), LAG, |r| {
        numbers(r).len() == 2
    })
    .await;
    assert_eq!(
        numbers(&app.get(&search_path(&token, chat, "cats AND dogs")).await),
        vec![1]
    );
    assert_eq!(
        numbers(&app.get(&search_path(&token, chat, "OR")).await),
        vec![2]
    );
    assert!(numbers(&app.get(&search_path(&token, chat, "*")).await).is_empty());
    // Punctuation splits words in the index exactly as in the query.
    app.new_message(&token, chat, "see hello.world and foo_bar, don't")
        .await;
    app.wait_until(&search_path(&token, chat, "world"), LAG, |r| {
        numbers(r) == vec![3]
    })
    .await;
    assert_eq!(
        numbers(&app.get(&search_path(&token, chat, "bar")).await),
        vec![3]
    );
    assert_eq!(
        numbers(&app.get(&search_path(&token, chat, "hello.world")).await),
        vec![3]
    );
    assert_eq!(
        numbers(&app.get(&search_path(&token, chat, "don")).await),
        vec![3]
    );
}

both_modes!(
    counts_follow_creates,
    messages_become_searchable_and_edits_follow,
    search_pages_with_an_opaque_cursor,
    search_rejects_bad_input,
    search_treats_operators_as_words,
);
