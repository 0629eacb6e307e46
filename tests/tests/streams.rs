//! Live streams of a chat over SSE and WebSocket: across replicas (MySQL + Redis) and embedded,
//! resume with `Last-Event-ID` while messages keep arriving, reset, slow clients, caps, errors.

use std::collections::HashSet;
use std::time::Duration;

use chat_tests::{Mode, TestApp};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(10);

/// One parsed server-sent event.
#[derive(Debug, Clone)]
struct Sse {
    event: String,
    id: Option<String>,
    data: Value,
}

/// An open SSE response, parsed as it arrives.
struct SseClient {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl SseClient {
    async fn open(app: &TestApp, path: &str, last_event_id: Option<&str>) -> SseClient {
        let mut request = app.client.get(app.url(path));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.expect("stream request");
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        SseClient {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event (heartbeat comments skipped), or `None` at the end of the stream.
    async fn next(&mut self) -> Option<Sse> {
        loop {
            if let Some(at) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..at + 2).collect();
                let mut event = Sse {
                    event: "message".into(),
                    id: None,
                    data: Value::Null,
                };
                let mut any = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event.event = v.trim().to_owned();
                        any = true;
                    } else if let Some(v) = line.strip_prefix("id:") {
                        event.id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        event.data = serde_json::from_str(v.trim()).expect("JSON data");
                        any = true;
                    }
                }
                if any {
                    return Some(event);
                }
                continue;
            }
            let chunk = tokio::time::timeout(WAIT, self.body.next())
                .await
                .expect("an event in time")?
                .ok()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    async fn expect(&mut self) -> Sse {
        self.next().await.expect("stream still open")
    }
}

fn stream_path(token: &str, chat: i64) -> String {
    format!("/chat_applications/{token}/chats/{chat}/messages/stream")
}

fn id_key(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap();
    (ms.parse().unwrap(), seq.parse().unwrap())
}

/// Public payload only: no internal id of any kind.
fn assert_public(data: &Value) {
    let fields: HashSet<&str> = data
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        fields,
        HashSet::from(["number", "body", "version", "created_at", "updated_at"]),
        "{data}"
    );
}

/// A subscriber on `reader` sees every message created on `writer`, exactly once and in the
/// log's order, including across a reconnect with `Last-Event-ID` while messages keep coming.
async fn exactly_once_across_a_reconnect(writer: &TestApp, reader: &TestApp) {
    const N: i64 = 120;
    let token = writer.new_application("streamed").await;
    let chat = writer.new_chat(&token).await;
    let path = stream_path(&token, chat);
    let mut first = SseClient::open(reader, &path, None).await;

    let creator = {
        let (client, base, token) = (writer.client.clone(), writer.base.clone(), token.clone());
        tokio::spawn(async move {
            // Four writers at once: numbers are not created in commit order.
            let mut tasks = Vec::new();
            for lane in 0..4 {
                let (client, base, token) = (client.clone(), base.clone(), token.clone());
                tasks.push(tokio::spawn(async move {
                    for i in 0..N / 4 {
                        let reply = client
                            .post(format!(
                                "{base}/chat_applications/{token}/chats/{chat}/messages"
                            ))
                            .json(&json!({ "body": format!("m{lane}-{i}") }))
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(reply.status(), StatusCode::CREATED);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
        })
    };

    let mut seen: Vec<(String, i64)> = Vec::new();
    while seen.len() < 30 {
        let event = first.expect().await;
        assert_eq!(event.event, "message.created", "{event:?}");
        assert_public(&event.data);
        seen.push((event.id.unwrap(), event.data["number"].as_i64().unwrap()));
    }
    drop(first);
    let last = seen.last().unwrap().0.clone();
    let mut resumed = SseClient::open(reader, &path, Some(&last)).await;
    while seen.len() < N as usize {
        let event = resumed.expect().await;
        assert_eq!(event.event, "message.created", "{event:?}");
        seen.push((event.id.unwrap(), event.data["number"].as_i64().unwrap()));
    }
    creator.await.unwrap();

    let numbers: HashSet<i64> = seen.iter().map(|(_, n)| *n).collect();
    assert_eq!(numbers.len(), N as usize, "a message came twice");
    assert_eq!(numbers, (1..=N).collect::<HashSet<_>>());
    let ids: Vec<(u64, u64)> = seen.iter().map(|(id, _)| id_key(id)).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids out of order");
    // The same order as the whole log read from the start.
    let mut replay = SseClient::open(reader, &format!("{path}?after=0-0"), None).await;
    for (id, number) in &seen {
        let event = replay.expect().await;
        assert_eq!(
            (
                event.id.as_ref().unwrap(),
                event.data["number"].as_i64().unwrap()
            ),
            (id, *number)
        );
    }
    // Nothing more arrives: no duplicate after the last.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), resumed.next())
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscriber_on_one_replica_sees_every_message_created_on_another() {
    let writer = TestApp::start(Mode::MySql).await;
    let reader = writer.replica().await;
    exactly_once_across_a_reconnect(&writer, &reader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_streams_have_the_same_semantics_in_memory() {
    let app = TestApp::start(Mode::Embedded).await;
    exactly_once_across_a_reconnect(&app, &app).await;
}

async fn updates_and_websocket_frames(app: TestApp) {
    let token = app.new_application("ws").await;
    let chat = app.new_chat(&token).await;
    let url = format!(
        "ws://{}/chat_applications/{token}/chats/{chat}/messages/ws?after=0-0",
        app.addr
    );
    app.new_message(&token, chat, "before").await;
    let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    app.new_message(&token, chat, "after").await;
    let edited = app
        .call(
            Method::PATCH,
            &format!("/chat_applications/{token}/chats/{chat}/messages/1"),
            Some(json!({"body": "edited"})),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{edited:?}");
    let mut frames = Vec::new();
    while frames.len() < 3 {
        let message = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("a frame in time")
            .unwrap()
            .unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            frames.push(serde_json::from_str::<Value>(&text).unwrap());
        }
    }
    let summary: Vec<(&str, i64, &str, i64)> = frames
        .iter()
        .map(|f| {
            assert_public(&f["data"]);
            assert!(f["id"].is_string());
            (
                f["type"].as_str().unwrap(),
                f["data"]["number"].as_i64().unwrap(),
                f["data"]["body"].as_str().unwrap(),
                f["data"]["version"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("message.created", 1, "before", 1),
            ("message.created", 2, "after", 1),
            ("message.updated", 1, "edited", 2),
        ]
    );
    // Resume over WebSocket from the second frame: only the edit.
    let again = format!(
        "ws://{}/chat_applications/{token}/chats/{chat}/messages/ws?after={}",
        app.addr,
        frames[1]["id"].as_str().unwrap()
    );
    let (mut resumed, _) = tokio_tungstenite::connect_async(again.as_str())
        .await
        .unwrap();
    let message = tokio::time::timeout(WAIT, resumed.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let frame: Value = serde_json::from_str(message.to_text().unwrap()).unwrap();
    assert_eq!(frame["type"], "message.updated");
    socket.close(None).await.unwrap();
}

chat_tests::both_modes!(updates_and_websocket_frames);

/// A client that reads nothing is cut off as slow, its buffer stays at the cap meanwhile, and
/// it finds the reason at the end of what it was sent.
/// A raw client with a small receive window that subscribes to the chat's stream and then
/// never reads; answers once the server has registered the subscriber.
async fn stalled_subscriber(app: &TestApp, token: &str, chat: i64) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(app.addr).await.unwrap();
    stalled
        .write_all(
            format!(
                "GET {} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n",
                stream_path(token, chat)
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while app.streams.subscribers() == 0 {
        assert!(std::time::Instant::now() < deadline, "never subscribed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stalled
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_subscriber_is_disconnected_and_memory_stays_bounded() {
    const BUFFER: usize = 8;
    const MESSAGES: usize = 400;
    let app = TestApp::start_with(Mode::Embedded, |s| s.stream_buffer = BUFFER as u64).await;
    let token = app.new_application("stalled").await;
    let chat = app.new_chat(&token).await;
    let mut stalled = stalled_subscriber(&app, &token, chat).await;
    let body = "x".repeat(60_000);
    let mut peak = 0;
    for _ in 0..MESSAGES {
        let reply = app.new_message(&token, chat, &body).await;
        assert_eq!(reply.status, StatusCode::CREATED);
        peak = peak.max(app.streams.buffered());
    }
    // ~24 MB were sent its way: far more than socket buffers hold. It was cut off…
    let deadline = std::time::Instant::now() + WAIT;
    while app.streams.subscribers() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the stalled subscriber was never disconnected (buffered {})",
            app.streams.buffered()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // …and never held more than its buffer meanwhile.
    assert!(peak <= BUFFER, "buffered {peak} > {BUFFER}");

    // When it reads at last: some events, then the reason, then the end of the response.
    let mut received = Vec::new();
    tokio::time::timeout(WAIT, stalled.read_to_end(&mut received))
        .await
        .expect("the server ends the response")
        .unwrap();
    let text = String::from_utf8_lossy(&received);
    let delivered = text.matches("event: message.created").count();
    assert!(
        delivered < MESSAGES,
        "everything was delivered: not a slow client"
    );
    assert!(text.contains("event: error"), "no final error event");
    assert!(text.contains("\"reason\":\"slow\""), "no slow reason");
}

/// A client that stops reading altogether cannot keep its connection: once its writes have
/// made no progress for the idle timeout, the server closes it (and frees its slot under
/// `CHAT_MAX_CONNECTIONS`), even though its response, a live stream, never finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_subscribers_connection_is_closed_after_the_idle_timeout() {
    let app = TestApp::start_with(Mode::Embedded, |s| {
        s.stream_buffer = 8;
        s.idle_timeout_s = 2;
    })
    .await;
    let token = app.new_application("stalled connection").await;
    let chat = app.new_chat(&token).await;
    let mut stalled = stalled_subscriber(&app, &token, chat).await;
    let stalled_before =
        chat_tests::metric("chat_connections_timed_out_total{phase=\"write_stalled\"}");
    let body = "x".repeat(60_000);
    for _ in 0..100 {
        let reply = app.new_message(&token, chat, &body).await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }
    let started = std::time::Instant::now();
    let deadline = started + Duration::from_secs(10);
    while chat_tests::metric("chat_connections_timed_out_total{phase=\"write_stalled\"}")
        == stalled_before
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the stalled connection was never closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Closed by the server: reading now ends (with what the kernel still had, or a reset)
    // instead of waiting for more.
    let mut received = Vec::new();
    let ended = tokio::time::timeout(WAIT, stalled.read_to_end(&mut received)).await;
    assert!(ended.is_ok(), "the connection is still open");
    // Other clients are served meanwhile.
    assert_eq!(
        app.get(&format!("/chat_applications/{token}")).await.status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_older_than_retained_gets_a_reset() {
    let app = TestApp::start_with(Mode::Embedded, |s| s.feed_max_len = 5).await;
    let token = app.new_application("reset").await;
    let chat = app.new_chat(&token).await;
    let path = stream_path(&token, chat);
    app.new_message(&token, chat, "first").await;
    let mut all = SseClient::open(&app, &format!("{path}?after=0-0"), None).await;
    let first = all.expect().await;
    let first_id = first.id.unwrap();
    for i in 0..10 {
        app.new_message(&token, chat, &format!("m{i}")).await;
    }
    // Wait until the relay appended them all.
    for _ in 0..10 {
        all.expect().await;
    }
    let mut old = SseClient::open(&app, &path, Some(&first_id)).await;
    let reset = old.expect().await;
    assert_eq!(reset.event, "reset", "{reset:?}");
    let reset_id = reset.id.clone().unwrap();
    assert_eq!(reset.data["id"], reset_id.as_str());
    // Then live from the reset's id.
    app.new_message(&token, chat, "later").await;
    let next = old.expect().await;
    assert_eq!(
        (next.event.as_str(), next.data["number"].as_i64()),
        ("message.created", Some(12))
    );
    assert!(id_key(next.id.as_ref().unwrap()) > id_key(&reset_id));
    // A client that has the newest id is no reset.
    let mut current = SseClient::open(&app, &path, next.id.as_deref()).await;
    app.new_message(&token, chat, "newest").await;
    assert_eq!(current.expect().await.data["number"], 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streams_past_the_per_token_cap_get_429() {
    let app = TestApp::start_with(Mode::Embedded, |s| {
        s.streams_per_token = 2;
        s.stream_heartbeat_s = 1;
    })
    .await;
    let token = app.new_application("capped").await;
    let chat = app.new_chat(&token).await;
    let path = stream_path(&token, chat);
    let one = SseClient::open(&app, &path, None).await;
    let _two = SseClient::open(&app, &path, None).await;
    let refused = app.get(&path).await;
    refused.assert_problem(429);
    assert!(refused.headers.contains_key("retry-after"));
    let ws = format!(
        "ws://{}/chat_applications/{token}/chats/{chat}/messages/ws",
        app.addr
    );
    match tokio_tungstenite::connect_async(ws.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 429)
        }
        other => panic!("expected 429, got {other:?}"),
    }
    // Another token has its own allowance.
    let other = app.new_application("other").await;
    let other_chat = app.new_chat(&other).await;
    let _three = SseClient::open(&app, &stream_path(&other, other_chat), None).await;
    // A closed stream frees its slot (noticed at the latest at the next heartbeat).
    drop(one);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let response = app.client.get(app.url(&path)).send().await.unwrap();
        if response.status() == StatusCode::OK {
            break;
        }
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(std::time::Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_chats_and_malformed_ids_are_problems() {
    let app = TestApp::start(Mode::Embedded).await;
    let token = app.new_application("errors").await;
    let chat = app.new_chat(&token).await;
    let missing_token = "0".repeat(32);
    app.get(&stream_path(&missing_token, 1))
        .await
        .assert_problem(404);
    app.get(&stream_path(&token, chat + 1))
        .await
        .assert_problem(404);
    app.get(&format!(
        "/chat_applications/{token}/chats/{}/messages/ws",
        chat + 1
    ))
    .await
    .assert_problem(404);
    for bad in ["x", "1", "1-", "-1", "1-2-3", "1.5-0"] {
        let path = format!("{}?after={bad}", stream_path(&token, chat));
        let reply = app.get(&path).await;
        reply.assert_problem(400);
        assert!(
            reply.json["detail"].as_str().unwrap().contains("after"),
            "{reply:?}"
        );
    }
    let reply = app
        .client
        .get(app.url(&stream_path(&token, chat)))
        .header("Last-Event-ID", "nope")
        .send()
        .await
        .unwrap();
    let reply = chat_tests::Reply::from(reply).await;
    reply.assert_problem(400);
    assert!(
        reply.json["detail"]
            .as_str()
            .unwrap()
            .contains("Last-Event-ID")
    );
    // A plain GET of the WebSocket endpoint is no upgrade.
    app.get(&format!(
        "/chat_applications/{token}/chats/{chat}/messages/ws"
    ))
    .await
    .assert_problem(400);
    // The WebSocket endpoint checks the same before upgrading.
    let ws = format!(
        "ws://{}/chat_applications/{token}/chats/{chat}/messages/ws?after=zzz",
        app.addr
    );
    match tokio_tungstenite::connect_async(ws.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 400)
        }
        other => panic!("expected 400, got {other:?}"),
    }
}

/// Deletes reach streams end to end: a deleted message is a `message.deleted` event (on a
/// subscriber of another replica, in MySQL mode); deleting the chat, or its application, ends
/// the stream with a final `chat.deleted`.
async fn deletes_reach_the_stream(writer: &TestApp, reader: &TestApp) {
    let token = writer.new_application("deletes streamed").await;
    let chat = writer.new_chat(&token).await;
    let other = writer.new_chat(&token).await;
    let mut first = SseClient::open(reader, &stream_path(&token, chat), None).await;
    let mut second = SseClient::open(reader, &stream_path(&token, other), None).await;

    let created = writer.new_message(&token, chat, "soon gone").await;
    assert_eq!(created.status, StatusCode::CREATED);
    let number = created.json["number"].as_i64().unwrap();
    let event = first.expect().await;
    assert_eq!(
        (event.event.as_str(), event.data["number"].as_i64()),
        ("message.created", Some(number))
    );

    let deleted = writer
        .call(
            Method::DELETE,
            &format!("/chat_applications/{token}/chats/{chat}/messages/{number}"),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{deleted:?}");
    let event = first.expect().await;
    assert_eq!(event.event, "message.deleted", "{event:?}");
    assert_eq!(event.data["number"], number);
    assert!(event.data["deleted_at"].is_string(), "{event:?}");
    assert_eq!(
        event.data.as_object().unwrap().len(),
        2,
        "public fields only: {event:?}"
    );

    let hidden = writer
        .call(
            Method::DELETE,
            &format!("/chat_applications/{token}/chats/{chat}"),
            None,
        )
        .await;
    assert_eq!(hidden.status, StatusCode::ACCEPTED, "{hidden:?}");
    let event = first.expect().await;
    assert_eq!(
        (event.event.as_str(), event.data["number"].as_i64()),
        ("chat.deleted", Some(chat)),
        "{event:?}"
    );
    let end = first.expect().await;
    assert_eq!(
        (end.event.as_str(), end.data["reason"].as_str()),
        ("error", Some("deleted")),
        "{end:?}"
    );
    assert!(
        first.next().await.is_none(),
        "the stream ends after chat.deleted"
    );

    let gone = writer
        .call(Method::DELETE, &format!("/chat_applications/{token}"), None)
        .await;
    assert_eq!(gone.status, StatusCode::ACCEPTED, "{gone:?}");
    let event = second.expect().await;
    assert_eq!(
        (event.event.as_str(), event.data["number"].as_i64()),
        ("chat.deleted", Some(other)),
        "{event:?}"
    );
    let end = second.expect().await;
    assert_eq!(
        (end.event.as_str(), end.data["reason"].as_str()),
        ("error", Some("deleted")),
        "{end:?}"
    );
    assert!(
        second.next().await.is_none(),
        "the stream ends after chat.deleted"
    );

    // And nothing opens on what is gone.
    let reopened = reader.get(&stream_path(&token, other)).await;
    reopened.assert_problem(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deletes_reach_streams_on_another_replica() {
    let writer = TestApp::start(Mode::MySql).await;
    let reader = writer.replica().await;
    deletes_reach_the_stream(&writer, &reader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deletes_reach_streams_embedded() {
    let app = TestApp::start(Mode::Embedded).await;
    deletes_reach_the_stream(&app, &app).await;
}
