//! Dependency outages: writes that do not need Redis while it is down, clear 503 problems for
//! the database, reads unaffected where possible, and recovery without a restart. Each test breaks only what it owns.

use std::net::ToSocketAddrs;
use std::time::{Duration, Instant};

use chat_core::testkit;
use chat_tests::faults::{PrivateRedis, Proxy, eventually};
use chat_tests::{Mode, TestApp};
use reqwest::StatusCode;

/// Redis down: creates, edits and deletes keep succeeding (numbered from the database), reads
/// work, readiness reports it; Redis back (empty): numbering moves back to Redis with no number
/// given twice and none reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_outage_keeps_writes_working_and_recovers_without_duplicates() {
    let mut redis = PrivateRedis::start().await;
    let url = redis.url();
    let app = TestApp::start_with(Mode::MySql, |s| {
        s.redis_url = Some(url);
        s.redis_timeout_ms = 500;
    })
    .await;
    let token = app.new_application("redis outage").await;
    let chat = app.new_chat(&token).await;
    for _ in 0..3 {
        assert_eq!(
            app.new_message(&token, chat, "before").await.status,
            StatusCode::CREATED
        );
    }

    redis.stop();
    println!(
        "injected: stopped the test's own redis-server on port {}",
        redis.port
    );
    let messages = format!("/chat_applications/{token}/chats/{chat}/messages");
    let mut during = Vec::new();
    for _ in 0..3 {
        let created = app.new_message(&token, chat, "during").await;
        assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
        during.push(created.json["number"].as_i64().unwrap());
    }
    assert_eq!(during, vec![4, 5, 6], "numbered from the database");
    let edited = app
        .call(
            reqwest::Method::PATCH,
            &format!("{messages}/5"),
            Some(serde_json::json!({"body": "edited during"})),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{edited:?}");
    let deleted = app
        .call(reqwest::Method::DELETE, &format!("{messages}/6"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{deleted:?}");
    let second_chat = app.new_chat(&token).await;
    assert_eq!(
        second_chat,
        chat + 1,
        "chats are numbered without Redis too"
    );
    let read = app.get(&format!("{messages}/3")).await;
    assert_eq!(read.status, StatusCode::OK);
    let ready = app.get("/readyz").await;
    assert_eq!(
        ready.status,
        StatusCode::OK,
        "a Redis outage is reported, not fatal: {ready:?}"
    );
    assert_eq!(ready.json["checks"]["numbering"]["status"], "down");
    println!(
        "checked: with Redis down, created {during:?}, edited 5, deleted 6, chat {second_chat}"
    );

    redis.restart().await;
    println!("restored: redis-server restarted empty");
    let recovered = eventually(Duration::from_secs(15), || async {
        app.get("/readyz").await.json["checks"]["numbering"]["status"] == "ok"
    })
    .await;
    assert!(recovered, "numbering reports Redis back");
    let after = app.new_message(&token, chat, "after").await;
    assert_eq!(after.status, StatusCode::CREATED, "{after:?}");
    // Redis lost its counter; re-seeded from the database, which remembers 6 although it was
    // deleted: the next number is 7, never a reused 6.
    assert_eq!(after.json["number"], 7, "{after:?}");
    let page = app.get(&messages).await;
    let numbers: Vec<i64> = page.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["number"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, vec![1, 2, 3, 4, 5, 7]);
    println!("checked: acknowledged = stored = {numbers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_answers_503_and_recovers_by_itself() {
    let server = url_host_port(&testkit::mysql_server_url());
    let proxy = Proxy::start(server).await;
    let proxied = proxy.addr;
    let app = TestApp::start_with(Mode::MySql, |s| {
        let url = s.database_url.clone().unwrap();
        s.database_url = Some(
            url.replace(&server.to_string(), &proxied.to_string())
                .replace("localhost", "127.0.0.1"),
        );
    })
    .await;
    assert!(
        app.settings
            .database_url
            .as_deref()
            .unwrap()
            .contains(&proxied.to_string()),
        "test goes through the proxy"
    );
    let token = app.new_application("db outage").await;
    let chat = app.new_chat(&token).await;

    proxy.cut();
    println!("injected: cut every database connection of this test");
    let started = Instant::now();
    app.get(&format!("/chat_applications/{token}"))
        .await
        .assert_problem(503);
    app.new_message(&token, chat, "during")
        .await
        .assert_problem(503);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "answered in {:?}",
        started.elapsed()
    );
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE, "{ready:?}");
    assert_eq!(ready.json["checks"]["database"]["status"], "down");

    proxy.restore();
    let recovered = eventually(Duration::from_secs(20), || async {
        app.get(&format!("/chat_applications/{token}")).await.status == StatusCode::OK
    })
    .await;
    assert!(
        recovered,
        "requests succeed again once the database is back"
    );
    assert_eq!(
        app.new_message(&token, chat, "after").await.status,
        StatusCode::CREATED
    );
    assert_eq!(app.get("/readyz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_unreachable_database_at_start_up_still_serves_503s() {
    let app = TestApp::start_with(Mode::Embedded, |s| {
        s.database_url = Some("mysql://root@127.0.0.1:1/nowhere".into());
    })
    .await;
    app.post("/chat_applications", serde_json::json!({"name": "x"}))
        .await
        .assert_problem(503);
    assert_eq!(
        app.get("/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(app.get("/up").await.status, StatusCode::OK);
}

fn url_host_port(url: &str) -> std::net::SocketAddr {
    let rest = url.split("://").nth(1).unwrap();
    let host_port = rest.rsplit('@').next().unwrap().split('/').next().unwrap();
    let host_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:3306")
    };
    host_port
        .replace("localhost", "127.0.0.1")
        .to_socket_addrs()
        .unwrap()
        .next()
        .unwrap()
}
