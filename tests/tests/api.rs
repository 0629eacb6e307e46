//! The REST contract, run against both modes.

use chat_tests::{TestApp, both_modes};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

fn assert_timestamp(v: &Value) {
    let s = v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}"));
    chrono_like(s);
}

/// RFC 3339 in UTC, e.g. 2026-12-01T06:43:10.960417Z.
fn chrono_like(s: &str) {
    assert!(
        s.ends_with('Z') && s.len() >= 20 && &s[4..5] == "-" && &s[10..11] == "T",
        "{s}"
    );
}

async fn applications_are_created_read_and_renamed(app: TestApp) {
    let created = app
        .post("/chat_applications", json!({"name": "Support"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    assert_eq!(created.content_type, "application/json");
    let body = &created.json;
    assert_eq!(
        keys(body),
        ["chats_count", "created_at", "name", "token", "updated_at"]
    );
    let token = body["token"].as_str().unwrap();
    assert_eq!(token.len(), 32);
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    assert_eq!(body["name"], "Support");
    assert_eq!(body["chats_count"], 0);
    assert_timestamp(&body["created_at"]);

    let fetched = app.get(&format!("/chat_applications/{token}")).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.json, created.json);

    let path = format!("/chat_applications/{token}");
    let patched = app
        .call(Method::PATCH, &path, Some(json!({"name": "Sales"})))
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{patched:?}");
    assert_eq!(patched.json["name"], "Sales");
    assert_eq!(patched.json["token"], token);
    assert_eq!(patched.json["created_at"], body["created_at"]);

    let put = app
        .call(
            Method::PUT,
            &path,
            Some(json!({"chat_application": {"name": "Rails-style"}})),
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{put:?}");
    assert_eq!(app.get(&path).await.json["name"], "Rails-style");

    let other = app.new_application("Other").await;
    assert_ne!(other, token, "every application gets its own token");
}

async fn rails_wrapped_bodies_are_accepted(app: TestApp) {
    let created = app
        .post(
            "/chat_applications",
            json!({"chat_application": {"name": "Wrapped"}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    assert_eq!(created.json["name"], "Wrapped");
    let token = created.json["token"].as_str().unwrap();
    let chat = app
        .post(
            &format!("/chat_applications/{token}/chats"),
            json!({"chat": {}}),
        )
        .await;
    assert_eq!(chat.status, StatusCode::CREATED, "{chat:?}");
    let message = app
        .post(
            &format!("/chat_applications/{token}/chats/1/messages"),
            json!({"message": {"body": "wrapped hello"}}),
        )
        .await;
    assert_eq!(message.status, StatusCode::CREATED, "{message:?}");
    assert_eq!(message.json["body"], "wrapped hello");
    let edited = app
        .call(
            Method::PATCH,
            &format!("/chat_applications/{token}/chats/1/messages/1"),
            Some(json!({"message": {"body": "wrapped edit"}})),
        )
        .await;
    assert_eq!(edited.json["body"], "wrapped edit", "{edited:?}");
}

async fn chats_are_numbered_per_application(app: TestApp) {
    let a = app.new_application("a").await;
    let b = app.new_application("b").await;
    // No body, an empty JSON object, and no body again: all create.
    let first = app
        .call(Method::POST, &format!("/chat_applications/{a}/chats"), None)
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(
        keys(&first.json),
        ["created_at", "messages_count", "number", "updated_at"]
    );
    assert_eq!(
        (
            first.json["number"].as_i64(),
            first.json["messages_count"].as_i64()
        ),
        (Some(1), Some(0))
    );
    let second = app
        .post(&format!("/chat_applications/{a}/chats"), json!({}))
        .await;
    assert_eq!(second.json["number"], 2, "{second:?}");
    assert_eq!(app.new_chat(&a).await, 3);
    assert_eq!(app.new_chat(&b).await, 1, "numbers are per application");

    let chat = app.get(&format!("/chat_applications/{a}/chats/2")).await;
    assert_eq!(chat.status, StatusCode::OK);
    assert_eq!(chat.json, second.json);
    app.get(&format!("/chat_applications/{a}/chats/4"))
        .await
        .assert_problem(404);
    app.get(&format!("/chat_applications/{b}/chats/2"))
        .await
        .assert_problem(404);
}

async fn messages_are_numbered_per_chat_and_editable(app: TestApp) {
    let token = app.new_application("m").await;
    let c1 = app.new_chat(&token).await;
    let c2 = app.new_chat(&token).await;
    for expected in 1..=3 {
        let reply = app
            .new_message(&token, c1, &format!("hello {expected}"))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
        assert_eq!(
            keys(&reply.json),
            ["body", "created_at", "number", "updated_at"]
        );
        assert_eq!(reply.json["number"], expected);
    }
    assert_eq!(
        app.new_message(&token, c2, "other chat").await.json["number"],
        1
    );

    let path = format!("/chat_applications/{token}/chats/{c1}/messages/2");
    let got = app.get(&path).await;
    assert_eq!(
        (got.status, got.json["body"].as_str()),
        (StatusCode::OK, Some("hello 2"))
    );
    for method in [Method::PATCH, Method::PUT] {
        let edited = app
            .call(
                method.clone(),
                &path,
                Some(json!({"body": format!("edited by {method}")})),
            )
            .await;
        assert_eq!(edited.status, StatusCode::OK, "{edited:?}");
        assert_eq!(edited.json["number"], 2);
        assert_eq!(edited.json["created_at"], got.json["created_at"]);
    }
    assert_eq!(app.get(&path).await.json["body"], "edited by PUT");
    app.get(&format!("/chat_applications/{token}/chats/{c1}/messages/9"))
        .await
        .assert_problem(404);
    app.call(
        Method::PATCH,
        &format!("/chat_applications/{token}/chats/{c1}/messages/9"),
        Some(json!({"body": "x"})),
    )
    .await
    .assert_problem(404);
}

async fn listings_page_by_number(app: TestApp) {
    let token = app.new_application("p").await;
    let chat = app.new_chat(&token).await;
    for i in 1..=7 {
        assert_eq!(
            app.new_message(&token, chat, &format!("m{i}")).await.status,
            StatusCode::CREATED
        );
    }
    let base = format!("/chat_applications/{token}/chats/{chat}/messages");
    let numbers = |v: &Value| -> Vec<i64> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["number"].as_i64().unwrap())
            .collect()
    };
    let all = app.get(&base).await;
    assert_eq!(keys(&all.json), ["data", "next"]);
    assert_eq!(
        (numbers(&all.json), &all.json["next"]),
        ((1..=7).collect(), &Value::Null)
    );

    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = app.get(&format!("{base}?limit=3&after={after}")).await;
        assert_eq!(page.status, StatusCode::OK);
        seen.extend(numbers(&page.json));
        match page.json["next"].as_i64() {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(seen, (1..=7).collect::<Vec<_>>());

    let back = app.get(&format!("{base}?limit=2&before=6")).await;
    assert_eq!(
        (numbers(&back.json), back.json["next"].as_i64()),
        (vec![5, 4], Some(4))
    );
    let tail = app.get(&format!("{base}?before=3")).await;
    assert_eq!(
        (numbers(&tail.json), &tail.json["next"]),
        (vec![2, 1], &Value::Null)
    );

    for _ in 0..3 {
        app.new_chat(&token).await;
    }
    let chats = app
        .get(&format!("/chat_applications/{token}/chats?limit=2&after=1"))
        .await;
    assert_eq!(
        (numbers(&chats.json), chats.json["next"].as_i64()),
        (vec![2, 3], Some(3))
    );
    assert_eq!(
        app.get(&format!("/chat_applications/{token}/chats?limit=200"))
            .await
            .status,
        StatusCode::OK
    );
}

async fn default_page_is_fifty(app: TestApp) {
    let token = app.new_application("d").await;
    let futures: Vec<_> = (0..55).map(|_| app.new_chat(&token)).collect();
    futures::future::join_all(futures).await;
    let page = app.get(&format!("/chat_applications/{token}/chats")).await;
    assert_eq!(page.json["data"].as_array().unwrap().len(), 50);
    assert_eq!(page.json["next"], 50);
}

async fn strings_are_stored_exactly(app: TestApp) {
    let name = "Ünïcødé 🚀 \"quoted\" 'single' \\ back\\slash; DROP TABLE chats; -- 中文 \u{200b}";
    let created = app.post("/chat_applications", json!({"name": name})).await;
    assert_eq!(created.json["name"], name, "{created:?}");
    let token = created.json["token"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/chat_applications/{token}")).await.json["name"],
        name
    );
    let chat = app.new_chat(token).await;
    let body = "' OR '1'='1'; --\n\t<script>alert(1)</script> %_ 𝄞 \u{0} end";
    let reply = app.new_message(token, chat, body).await;
    assert_eq!(reply.json["body"], body, "{reply:?}");
    let read = app
        .get(&format!(
            "/chat_applications/{token}/chats/{chat}/messages/1"
        ))
        .await;
    assert_eq!(read.json["body"], body);
    let long_name: String = "é".repeat(255);
    let ok = app
        .post("/chat_applications", json!({"name": long_name}))
        .await;
    assert_eq!(
        (ok.status, ok.json["name"].as_str()),
        (StatusCode::CREATED, Some(long_name.as_str()))
    );
}

async fn health_endpoints_answer_on_the_public_port(app: TestApp) {
    let up = app.get("/up").await;
    assert_eq!(
        (up.status, up.json["status"].as_str()),
        (StatusCode::OK, Some("up"))
    );
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK, "{ready:?}");
    assert_eq!(ready.json["status"], "ready");
    assert_eq!(ready.json["checks"]["database"]["status"], "ok");
    assert_eq!(ready.json["checks"]["numbering"]["status"], "ok");
}

async fn requests_carry_a_request_id(app: TestApp) {
    let response = app
        .client
        .get(app.url("/up"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123");
    let generated = app.client.get(app.url("/up")).send().await.unwrap();
    assert!(!generated.headers()["x-request-id"].is_empty());
}

both_modes!(
    applications_are_created_read_and_renamed,
    rails_wrapped_bodies_are_accepted,
    chats_are_numbered_per_application,
    messages_are_numbered_per_chat_and_editable,
    listings_page_by_number,
    default_page_is_fifty,
    strings_are_stored_exactly,
    health_endpoints_answer_on_the_public_port,
    requests_carry_a_request_id,
);
