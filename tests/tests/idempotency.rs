//! `Idempotency-Key` on the creating POSTs, in both modes: a retry replays the first response
//! and creates nothing (counted by listing), wrapped and unwrapped bodies are the same request,
//! another body is a 422, a retry during the first is a 409, failures are not kept, keys are
//! validated and scoped per application, and a retry on another replica replays.

use std::time::Duration;

use chat_api::idempotency::{Begin, Entry, Store, Stored, local::LocalStore, redis::RedisStore};
use chat_core::testkit;
use chat_tests::{Mode, Reply, TestApp};
use serde_json::{Value, json};
use sqlx::Connection;

async fn post_with_key(app: &TestApp, path: &str, key: &str, body: Option<Value>) -> Reply {
    let mut request = app
        .client
        .post(app.url(path))
        .header("idempotency-key", key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    Reply::from(request.send().await.expect("request sent")).await
}

fn replayed(reply: &Reply) -> bool {
    reply
        .headers
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

async fn count(app: &TestApp, path: &str) -> usize {
    let reply = app.get(&format!("{path}?limit=200")).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.json["data"].as_array().unwrap().len()
}

async fn a_retry_replays_the_first_message(mode: Mode) {
    let app = TestApp::start(mode).await;
    let token = app.new_application("idem").await;
    let chat = app.new_chat(&token).await;
    let messages = format!("/chat_applications/{token}/chats/{chat}/messages");
    let first = post_with_key(&app, &messages, "k-1", Some(json!({ "body": "hello" }))).await;
    assert_eq!(first.status, 201, "{first:?}");
    assert!(!replayed(&first));
    // The same request, wrapped the Rails way, with keys in another order.
    let retry = post_with_key(
        &app,
        &messages,
        "k-1",
        Some(json!({ "message": { "body": "hello" } })),
    )
    .await;
    assert_eq!(retry.status, 201, "{retry:?}");
    assert!(replayed(&retry), "{retry:?}");
    assert_eq!(retry.text, first.text, "the first response, byte for byte");
    assert_eq!(retry.content_type, first.content_type);
    assert_eq!(count(&app, &messages).await, 1, "nothing extra created");

    // Another body under the same key: 422, and still nothing created.
    let other = post_with_key(&app, &messages, "k-1", Some(json!({ "body": "bye" }))).await;
    other.assert_problem(422);
    assert_eq!(
        other.json["type"],
        "https://chatsystem.dev/problems/idempotency-key-reused"
    );
    // The same body in another chat is another request too.
    let chat2 = app.new_chat(&token).await;
    let elsewhere = post_with_key(
        &app,
        &format!("/chat_applications/{token}/chats/{chat2}/messages"),
        "k-1",
        Some(json!({ "body": "hello" })),
    )
    .await;
    elsewhere.assert_problem(422);
    assert_eq!(count(&app, &messages).await, 1);

    // Without the header every request creates.
    assert_eq!(app.new_message(&token, chat, "hello").await.status, 201);
    assert_eq!(count(&app, &messages).await, 2);
}

async fn chats_and_applications_replay_too(mode: Mode) {
    let app = TestApp::start(mode).await;
    let first = post_with_key(
        &app,
        "/chat_applications",
        "app-1",
        Some(json!({ "name": "once" })),
    )
    .await;
    assert_eq!(first.status, 201, "{first:?}");
    let again = post_with_key(
        &app,
        "/chat_applications",
        "app-1",
        Some(json!({ "chat_application": { "name": "once" } })),
    )
    .await;
    assert!(replayed(&again), "{again:?}");
    assert_eq!(
        again.json["token"], first.json["token"],
        "the same application"
    );
    post_with_key(
        &app,
        "/chat_applications",
        "app-1",
        Some(json!({ "name": "twice" })),
    )
    .await
    .assert_problem(422);

    let token = first.json["token"].as_str().unwrap();
    let chats = format!("/chat_applications/{token}/chats");
    let chat = post_with_key(&app, &chats, "chat-1", None).await;
    assert_eq!(chat.status, 201, "{chat:?}");
    // No body and `{}` are the same request.
    let again = post_with_key(&app, &chats, "chat-1", Some(json!({}))).await;
    assert!(replayed(&again), "{again:?}");
    assert_eq!(again.json["number"], chat.json["number"]);
    assert_eq!(count(&app, &chats).await, 1);

    // Keys belong to one application: another one may use the same key.
    let other = app.new_application("other").await;
    let theirs = post_with_key(
        &app,
        &format!("/chat_applications/{other}/chats"),
        "chat-1",
        None,
    )
    .await;
    assert_eq!(theirs.status, 201);
    assert!(!replayed(&theirs));
}

async fn failures_are_not_kept_and_keys_are_validated(mode: Mode) {
    let app = TestApp::start(mode).await;
    let token = app.new_application("fail").await;
    let chat = app.new_chat(&token).await;
    let messages = format!("/chat_applications/{token}/chats/{chat}/messages");
    // A 4xx created nothing and is not kept: the corrected request runs under the same key.
    post_with_key(&app, &messages, "fix-me", Some(json!({ "body": 5 })))
        .await
        .assert_invalid_field("body");
    let fixed = post_with_key(&app, &messages, "fix-me", Some(json!({ "body": "ok" }))).await;
    assert_eq!(fixed.status, 201, "{fixed:?}");
    assert!(!replayed(&fixed));

    for bad in [String::new(), "x".repeat(256), "has space".into()] {
        post_with_key(&app, &messages, &bad, Some(json!({ "body": "no" })))
            .await
            .assert_problem(400);
    }
    let non_ascii = app
        .client
        .post(app.url(&messages))
        .header(
            "idempotency-key",
            reqwest::header::HeaderValue::from_bytes(b"caf\xe9").unwrap(),
        )
        .json(&json!({ "body": "no" }))
        .send()
        .await
        .unwrap();
    Reply::from(non_ascii).await.assert_problem(400);
    // 255 visible characters are fine.
    let longest = post_with_key(
        &app,
        &messages,
        &"~".repeat(255),
        Some(json!({ "body": "x" })),
    )
    .await;
    assert_eq!(longest.status, 201, "{longest:?}");
    // An unknown application is the handler's 404, key or not.
    post_with_key(
        &app,
        "/chat_applications/00000000000000000000000000000000/chats",
        "k",
        None,
    )
    .await
    .assert_problem(404);
    assert_eq!(count(&app, &messages).await, 2);
}

/// Holds the database's write lock (SQLite) or the messages table (MySQL) from a connection
/// of the test's own, so a message create waits until `release`.
enum WriteHold {
    Sqlite(sqlx::SqliteConnection),
    MySql(sqlx::MySqlConnection),
}

impl WriteHold {
    async fn take(app: &TestApp) -> WriteHold {
        match &app.settings.database_url {
            None => {
                let url = format!(
                    "sqlite://{}",
                    app.settings.data_dir.join("chat.db").display()
                );
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::raw_sql("BEGIN IMMEDIATE")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                WriteHold::Sqlite(conn)
            }
            Some(url) => {
                let mut conn = sqlx::MySqlConnection::connect(url).await.unwrap();
                sqlx::raw_sql("LOCK TABLES messages WRITE")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                WriteHold::MySql(conn)
            }
        }
    }

    async fn release(self) {
        match self {
            WriteHold::Sqlite(mut conn) => {
                sqlx::raw_sql("COMMIT").execute(&mut conn).await.unwrap();
            }
            WriteHold::MySql(mut conn) => {
                sqlx::raw_sql("UNLOCK TABLES")
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }
}

async fn a_retry_during_the_first_is_a_conflict(mode: Mode) {
    let app = std::sync::Arc::new(TestApp::start(mode).await);
    let token = app.new_application("slow").await;
    let chat = app.new_chat(&token).await;
    let messages = format!("/chat_applications/{token}/chats/{chat}/messages");
    let hold = WriteHold::take(&app).await;
    let first = {
        let (app, messages) = (app.clone(), messages.clone());
        tokio::spawn(async move {
            post_with_key(&app, &messages, "slow-1", Some(json!({ "body": "wait" }))).await
        })
    };
    // The first request now holds the key and waits for the database.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = post_with_key(&app, &messages, "slow-1", Some(json!({ "body": "wait" }))).await;
    during.assert_problem(409);
    assert_eq!(
        during.json["type"],
        "https://chatsystem.dev/problems/idempotency-in-flight"
    );
    let different =
        post_with_key(&app, &messages, "slow-1", Some(json!({ "body": "other" }))).await;
    different.assert_problem(422);
    hold.release().await;
    let first = first.await.unwrap();
    assert_eq!(first.status, 201, "{first:?}");
    let after = post_with_key(&app, &messages, "slow-1", Some(json!({ "body": "wait" }))).await;
    assert!(replayed(&after), "{after:?}");
    assert_eq!(after.json["number"], first.json["number"]);
    assert_eq!(count(&app, &messages).await, 1);
}

chat_tests::each_mode!(
    a_retry_replays_the_first_message,
    chats_and_applications_replay_too,
    failures_are_not_kept_and_keys_are_validated,
    a_retry_during_the_first_is_a_conflict,
);

/// Keys live in Redis: a retry that lands on another replica replays the first response.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_on_another_replica_replays() {
    let a = TestApp::start(Mode::MySql).await;
    let b = a.replica().await;
    let token = a.new_application("replicas").await;
    let chat = a.new_chat(&token).await;
    let messages = format!("/chat_applications/{token}/chats/{chat}/messages");
    let first = post_with_key(&a, &messages, "r-1", Some(json!({ "body": "once" }))).await;
    assert_eq!(first.status, 201);
    let retry = post_with_key(&b, &messages, "r-1", Some(json!({ "body": "once" }))).await;
    assert!(replayed(&retry), "{retry:?}");
    assert_eq!(retry.text, first.text);
    // Racing replicas: one creates, the others replay or are told it is in flight.
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let app = if i % 2 == 0 { &a } else { &b };
            post_with_key(app, &messages, "r-2", Some(json!({ "body": "race" })))
        })
        .collect();
    let replies = futures::future::join_all(racers).await;
    let created: Vec<_> = replies
        .iter()
        .filter(|r| r.status == 201 && !replayed(r))
        .collect();
    assert_eq!(created.len(), 1, "{replies:?}");
    for reply in &replies {
        assert!(
            reply.status == 409
                || (reply.status == 201 && reply.json["number"] == created[0].json["number"]),
            "{reply:?}"
        );
    }
    assert_eq!(count(&a, &messages).await, 2);
}

/// A rotation whose response was lost is retried with the old token (the only one the client
/// has): with the same key it replays the new token instead of locking the client out.
async fn a_retried_rotation_does_not_lock_the_client_out(mode: Mode) {
    let app = TestApp::start(mode).await;
    let old = app.new_application("rotating").await;
    let rotate = format!("/chat_applications/{old}/rotate_token");
    let first = post_with_key(&app, &rotate, "rot-1", None).await;
    assert_eq!(first.status, 200, "{first:?}");
    let new = first.json["token"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let retry = post_with_key(&app, &rotate, "rot-1", None).await;
    assert_eq!(retry.status, 200, "{retry:?}");
    assert!(replayed(&retry));
    assert_eq!(retry.json["token"], new.as_str(), "the same new token");
    assert_eq!(
        app.get(&format!("/chat_applications/{new}")).await.status,
        200
    );
    app.get(&format!("/chat_applications/{old}"))
        .await
        .assert_problem(404);
    // Another key is another rotation, which the old token can no longer do.
    assert_ne!(
        post_with_key(&app, &rotate, "rot-2", None).await.status,
        200
    );
    // After the rotation, the new token's creates share the application's key space.
    let chats = format!("/chat_applications/{new}/chats");
    assert_eq!(post_with_key(&app, &chats, "c", None).await.status, 201);
}

chat_tests::each_mode!(a_retried_rotation_does_not_lock_the_client_out);

// ---- one conformance suite for both stores ----

fn marker(owner: &str, fingerprint: &str) -> Entry {
    Entry::InFlight {
        owner: owner.into(),
        fingerprint: fingerprint.into(),
    }
}

async fn store_conformance(store: Store, prefix: &str) {
    let key = |name: &str| format!("{prefix}{name}");
    let mine = marker("me", "f1");
    let response = Stored {
        status: 201,
        content_type: Some("application/json".into()),
        location: None,
        body: r#"{"number":7}"#.into(),
    };
    let done = Entry::Done {
        fingerprint: "f1".into(),
        response: response.clone(),
    };
    let begin = |k: String, m: Entry, ms: u64| {
        let store = &store;
        async move { store.begin(&k, &m, ms).await.unwrap() }
    };
    assert_eq!(begin(key("k"), mine.clone(), 60_000).await, Begin::Started);
    assert_eq!(
        begin(key("k"), marker("you", "f1"), 60_000).await,
        Begin::InFlight { same_request: true }
    );
    assert_eq!(
        begin(key("k"), marker("you", "f2"), 60_000).await,
        Begin::InFlight {
            same_request: false
        }
    );
    // Only the owner of the marker records the response.
    store
        .finish(&key("k"), &marker("you", "f1"), &done, 60_000)
        .await
        .unwrap();
    assert!(matches!(
        begin(key("k"), marker("you", "f1"), 60_000).await,
        Begin::InFlight { .. }
    ));
    store.finish(&key("k"), &mine, &done, 60_000).await.unwrap();
    assert_eq!(
        begin(key("k"), marker("you", "f1"), 60_000).await,
        Begin::Done {
            same_request: true,
            response: response.clone()
        }
    );
    assert!(matches!(
        begin(key("k"), marker("you", "f2"), 60_000).await,
        Begin::Done {
            same_request: false,
            ..
        }
    ));
    // Abandoning frees the key, for the owner only.
    assert_eq!(begin(key("a"), mine.clone(), 60_000).await, Begin::Started);
    store
        .abandon(&key("a"), &marker("you", "f1"))
        .await
        .unwrap();
    assert!(matches!(
        begin(key("a"), marker("you", "f1"), 60_000).await,
        Begin::InFlight { .. }
    ));
    store.abandon(&key("a"), &mine).await.unwrap();
    assert_eq!(begin(key("a"), mine.clone(), 60_000).await, Begin::Started);
    // Markers and responses expire.
    assert_eq!(begin(key("e"), mine.clone(), 50).await, Begin::Started);
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(begin(key("e"), mine.clone(), 60_000).await, Begin::Started);
    store.finish(&key("e"), &mine, &done, 50).await.unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(begin(key("e"), mine.clone(), 60_000).await, Begin::Started);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_conformance_in_process() {
    store_conformance(Store::Local(LocalStore::new(100, 1 << 20)), "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_conformance_redis() {
    let prefix = testkit::redis_prefix();
    let conn = chat_api::guards::connect(&testkit::redis_url(), Duration::from_secs(2)).unwrap();
    store_conformance(Store::Redis(RedisStore::new(conn)), &prefix).await;
    testkit::wipe_redis_prefix(&testkit::redis_url(), &prefix)
        .await
        .unwrap();
}
