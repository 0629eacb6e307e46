//! Deleting messages, chats and applications, in both modes: what clients see at once (404s,
//! listings, search, counts), that numbers are never reused (not even after numbering lost its
//! counters), and that the purge really removes the rows. The purge's resumability step by
//! step is in the store conformance suite; streams are covered with the streams.

use std::sync::Arc;
use std::time::Duration;

use chat_core::config::Database;
use chat_core::store::{MySqlStore, SqliteStore, Store};
use chat_core::testkit;
use chat_tests::{Reply, TestApp, both_modes};
use reqwest::{Method, StatusCode};

const LAG: Duration = Duration::from_secs(10);

both_modes!(
    deleting_a_message,
    a_deleted_message_number_is_never_reused,
    deleting_a_chat,
    deleting_an_application,
    deleting_under_a_deleted_parent_is_not_found,
);

mod purge_resumes_after_a_crash {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn embedded() {
        super::purge_resumes_after_a_crash(chat_tests::Mode::Embedded).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn mysql() {
        super::purge_resumes_after_a_crash(chat_tests::Mode::MySql).await
    }
}

async fn delete(app: &TestApp, path: &str) -> Reply {
    app.call(Method::DELETE, path, None).await
}

fn numbers(reply: &Reply) -> Vec<i64> {
    reply.json["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data: {reply:?}"))
        .iter()
        .map(|m| m["number"].as_i64().unwrap())
        .collect()
}

/// The test's own database, opened beside the app, to check what the purge left.
async fn store(app: &TestApp) -> Arc<dyn Store> {
    match app.settings.database().unwrap() {
        Database::MySql(url) => {
            Arc::new(MySqlStore::connect_lazy(&url, 2, Duration::from_secs(5)).unwrap())
        }
        Database::Sqlite(url) => Arc::new(SqliteStore::open(&url, 2).await.unwrap()),
    }
}

/// Polls the database until `(applications, chats, messages)` rows are as expected.
async fn wait_for_totals(app: &TestApp, expected: (i64, i64, i64)) {
    let store = store(app).await;
    let deadline = std::time::Instant::now() + LAG;
    loop {
        let totals = store.totals().await.unwrap();
        if totals == expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "rows left after the purge: {totals:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn deleting_a_message(app: TestApp) {
    let token = app.new_application("delete a message").await;
    let chat = app.new_chat(&token).await;
    for body in ["keep this one", "delete this one", "keep that one"] {
        assert_eq!(
            app.new_message(&token, chat, body).await.status,
            StatusCode::CREATED
        );
    }
    let chat_path = format!("/chat_applications/{token}/chats/{chat}");
    let search = format!("{chat_path}/messages/search?q=one");
    app.wait_until(&search, LAG, |r| numbers(r).len() == 3)
        .await;
    app.wait_until(&chat_path, LAG, |r| r.json["messages_count"] == 3)
        .await;

    let reply = delete(&app, &format!("{chat_path}/messages/2")).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{reply:?}");
    assert!(reply.text.is_empty());
    app.get(&format!("{chat_path}/messages/2"))
        .await
        .assert_problem(404);
    let listed = app.get(&format!("{chat_path}/messages")).await;
    assert_eq!(numbers(&listed), [1, 3]);
    let backwards = app.get(&format!("{chat_path}/messages?before=10")).await;
    assert_eq!(numbers(&backwards), [3, 1]);
    // The count follows at once, and stays right once the counter has recounted.
    assert_eq!(app.get(&chat_path).await.json["messages_count"], 2);
    let hits = app
        .wait_until(&search, LAG, |r| numbers(r).len() == 2)
        .await;
    assert_eq!(numbers(&hits), [3, 1]);
    assert!(
        numbers(
            &app.get(&format!("{chat_path}/messages/search?q=delete"))
                .await
        )
        .is_empty()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.get(&chat_path).await.json["messages_count"], 2);

    // Once deleted, always 404; edits too.
    delete(&app, &format!("{chat_path}/messages/2"))
        .await
        .assert_problem(404);
    delete(&app, &format!("{chat_path}/messages/99"))
        .await
        .assert_problem(404);
    app.call(
        Method::PATCH,
        &format!("{chat_path}/messages/2"),
        Some(serde_json::json!({ "body": "back?" })),
    )
    .await
    .assert_problem(404);
    delete(
        &app,
        "/chat_applications/ffffffffffffffffffffffffffffffff/chats/1/messages/1",
    )
    .await
    .assert_problem(404);
    delete(&app, &format!("{chat_path}/messages/abc"))
        .await
        .assert_problem(400);
}

/// The highest message and chat are deleted, then numbering loses its counters (Redis wiped;
/// embedded: a fresh process, whose in-process numbering starts empty): the next numbers are
/// still above the deleted ones.
async fn a_deleted_message_number_is_never_reused(app: TestApp) {
    let token = app.new_application("numbers").await;
    let chat = app.new_chat(&token).await;
    let doomed_chat = app.new_chat(&token).await;
    for i in 0..3 {
        app.new_message(&token, chat, &format!("m{i}")).await;
    }
    let chat_path = format!("/chat_applications/{token}/chats/{chat}");
    assert_eq!(
        delete(&app, &format!("{chat_path}/messages/3"))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        delete(
            &app,
            &format!("/chat_applications/{token}/chats/{doomed_chat}")
        )
        .await
        .status,
        StatusCode::ACCEPTED
    );
    // Purged, even: the floors live on the parent rows.
    wait_for_totals(&app, (1, 1, 2)).await;
    let fresh = match app.mode {
        chat_tests::Mode::MySql => {
            let wiped =
                testkit::wipe_redis_prefix(&testkit::redis_url(), &app.settings.redis_prefix)
                    .await
                    .unwrap();
            assert!(wiped > 0, "the numbering keys were there to lose");
            None
        }
        chat_tests::Mode::Embedded => Some(app.replica().await),
    };
    let writer = fresh.as_ref().unwrap_or(&app);
    let created = writer.new_message(&token, chat, "after the loss").await;
    assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
    assert_eq!(created.json["number"], 4, "{created:?}");
    assert_eq!(writer.new_chat(&token).await, 3);
}

async fn deleting_a_chat(app: TestApp) {
    let token = app.new_application("delete a chat").await;
    let keep = app.new_chat(&token).await;
    let doomed = app.new_chat(&token).await;
    for i in 0..5 {
        app.new_message(&token, doomed, &format!("doomed words {i}"))
            .await;
    }
    app.new_message(&token, keep, "kept words").await;
    let app_path = format!("/chat_applications/{token}");
    let doomed_path = format!("{app_path}/chats/{doomed}");
    app.wait_until(
        &format!("{doomed_path}/messages/search?q=doomed"),
        LAG,
        |r| r.status == StatusCode::OK && numbers(r).len() == 5,
    )
    .await;
    app.wait_until(&app_path, LAG, |r| r.json["chats_count"] == 2)
        .await;

    let reply = delete(&app, &doomed_path).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
    // Hidden at once, everywhere under it.
    for path in [
        doomed_path.clone(),
        format!("{doomed_path}/messages"),
        format!("{doomed_path}/messages/1"),
        format!("{doomed_path}/messages/search?q=doomed"),
    ] {
        app.get(&path).await.assert_problem(404);
    }
    app.new_message(&token, doomed, "too late")
        .await
        .assert_problem(404);
    delete(&app, &format!("{doomed_path}/messages/1"))
        .await
        .assert_problem(404);
    assert_eq!(
        numbers(&app.get(&format!("{app_path}/chats")).await),
        [keep]
    );
    assert_eq!(app.get(&app_path).await.json["chats_count"], 1);
    delete(&app, &doomed_path).await.assert_problem(404);

    // Purged: its rows go; the other chat keeps everything.
    wait_for_totals(&app, (1, 1, 1)).await;
    delete(&app, &doomed_path).await.assert_problem(404);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.get(&app_path).await.json["chats_count"], 1);
    let kept = app
        .wait_until(
            &format!("{app_path}/chats/{keep}/messages/search?q=words"),
            LAG,
            |r| numbers(r).len() == 1,
        )
        .await;
    assert_eq!(numbers(&kept), [1]);
}

async fn deleting_an_application(app: TestApp) {
    let token = app.new_application("delete an application").await;
    let other = app.new_application("bystander").await;
    for _ in 0..2 {
        let chat = app.new_chat(&token).await;
        for i in 0..3 {
            app.new_message(&token, chat, &format!("gone {i}")).await;
        }
    }
    let bystander_chat = app.new_chat(&other).await;
    app.new_message(&other, bystander_chat, "stays").await;
    wait_for_totals(&app, (2, 3, 7)).await;

    let app_path = format!("/chat_applications/{token}");
    let reply = delete(&app, &app_path).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
    // The token stops working at once, for reads and writes alike.
    for path in [
        app_path.clone(),
        format!("{app_path}/chats"),
        format!("{app_path}/chats/1"),
        format!("{app_path}/chats/1/messages"),
        format!("{app_path}/chats/1/messages/1"),
        format!("{app_path}/chats/1/messages/search?q=gone"),
    ] {
        app.get(&path).await.assert_problem(404);
    }
    app.call(Method::POST, &format!("{app_path}/chats"), None)
        .await
        .assert_problem(404);
    app.new_message(&token, 1, "too late")
        .await
        .assert_problem(404);
    app.call(
        Method::PATCH,
        &app_path,
        Some(serde_json::json!({ "name": "renamed" })),
    )
    .await
    .assert_problem(404);
    delete(&app, &app_path).await.assert_problem(404);
    delete(&app, &format!("{app_path}/chats/1"))
        .await
        .assert_problem(404);

    wait_for_totals(&app, (1, 1, 1)).await;
    delete(&app, &app_path).await.assert_problem(404);
    let bystander = app
        .get(&format!(
            "/chat_applications/{other}/chats/{bystander_chat}/messages"
        ))
        .await;
    assert_eq!(numbers(&bystander), [1]);
}

/// Everything addressed under something deleted is a 404 problem, never a 500.
async fn deleting_under_a_deleted_parent_is_not_found(app: TestApp) {
    let token = app.new_application("parents").await;
    let chat = app.new_chat(&token).await;
    app.new_message(&token, chat, "x").await;
    let chat_path = format!("/chat_applications/{token}/chats/{chat}");
    // Creates racing the delete: each either lands (then is purged) or answers 404.
    let racers = (0..20).map(|i| {
        let app = &app;
        let token = token.clone();
        async move {
            app.new_message(&token, chat, &format!("race {i}"))
                .await
                .status
        }
    });
    let (statuses, deleted) =
        tokio::join!(futures::future::join_all(racers), delete(&app, &chat_path));
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{deleted:?}");
    for status in statuses {
        assert!(
            status == StatusCode::CREATED || status == StatusCode::NOT_FOUND,
            "{status}"
        );
    }
    wait_for_totals(&app, (1, 0, 0)).await;
    delete(&app, &format!("{chat_path}/messages/1"))
        .await
        .assert_problem(404);
    delete(&app, &chat_path).await.assert_problem(404);
}

/// A purge that "crashed" after its first chunk: the next purge, another process with nothing
/// in memory, finishes from the hidden markers alone.
async fn purge_resumes_after_a_crash(mode: chat_tests::Mode) {
    use chat_core::workers::purge::{Purge, Purged};
    // The app's own purge waits an hour: this test runs the rounds itself.
    let app = TestApp::start_with(mode, |s| s.purge_grace_s = 3600).await;
    let token = app.new_application("crash").await;
    let chat = app.new_chat(&token).await;
    let kept = app.new_chat(&token).await;
    for i in 0..5 {
        app.new_message(&token, chat, &format!("m{i}")).await;
    }
    app.new_message(&token, kept, "kept").await;
    let deleted = delete(&app, &format!("/chat_applications/{token}/chats/{chat}")).await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{deleted:?}");

    let store = store(&app).await;
    let hidden = store
        .hidden_chats(chat_core::domain::now() + Duration::from_secs(1), 10)
        .await
        .unwrap();
    assert_eq!(hidden.len(), 1);
    // The first purge deletes one chunk, then dies.
    assert_eq!(store.purge_messages(hidden[0], 2).await.unwrap(), 2);
    assert_eq!(store.totals().await.unwrap(), (1, 2, 4));

    let search = chat_search::open(&app.settings, chat_search::Access::Reader)
        .await
        .unwrap();
    let mut purge = Purge::new(store.clone(), search, Duration::ZERO);
    purge.chunk = 2;
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let purged = purge.round(&stop).await.unwrap();
    assert_eq!(
        purged,
        Purged {
            messages: 3,
            chats: 1,
            applications: 0
        }
    );
    assert_eq!(store.totals().await.unwrap(), (1, 1, 1));
    assert_eq!(purge.round(&stop).await.unwrap(), Purged::default());
    let listed = app.get(&format!("/chat_applications/{token}/chats")).await;
    assert_eq!(numbers(&listed), [kept]);
}
