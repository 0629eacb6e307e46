//! The numbering promise under concurrency, across replicas, and across a Redis data loss.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chat_core::testkit;
use chat_tests::{Mode, TestApp};
use reqwest::StatusCode;

/// Fires `count` message creates into one chat, alternating between `apps`, at most
/// `in_flight` at a time. Answers every returned number, asserting each create succeeded.
async fn burst(
    apps: &[&TestApp],
    token: &str,
    chat: i64,
    count: usize,
    in_flight: usize,
    done: Arc<AtomicUsize>,
) -> Vec<i64> {
    use futures::StreamExt;
    let creates = (0..count).map(|i| {
        let app = apps[i % apps.len()];
        let done = done.clone();
        async move {
            let reply = app.new_message(token, chat, &format!("message {i}")).await;
            done.fetch_add(1, Ordering::SeqCst);
            assert_eq!(
                reply.status,
                StatusCode::CREATED,
                "create {i} failed: {reply:?}"
            );
            reply.json["number"].as_i64().unwrap()
        }
    });
    futures::stream::iter(creates)
        .buffer_unordered(in_flight)
        .collect()
        .await
}

fn assert_unique(numbers: &[i64]) -> BTreeSet<i64> {
    let set: BTreeSet<i64> = numbers.iter().copied().collect();
    assert_eq!(set.len(), numbers.len(), "duplicate numbers handed out");
    set
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_creates_over_two_replicas_are_numbered_1_to_500() {
    let a = TestApp::start(Mode::MySql).await;
    let b = a.replica().await;
    let token = a.new_application("hot chat").await;
    let chat = a.new_chat(&token).await;
    let numbers = burst(&[&a, &b], &token, chat, 500, 500, Arc::default()).await;
    let set = assert_unique(&numbers);
    assert_eq!(set, (1..=500).collect(), "exactly 1..500, no hole");

    // Every number is stored once, readable through either replica.
    let mut stored = Vec::new();
    let mut after = 0;
    loop {
        let page = b
            .get(&format!(
                "/chat_applications/{token}/chats/{chat}/messages?limit=200&after={after}"
            ))
            .await;
        stored.extend(
            page.json["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["number"].as_i64().unwrap()),
        );
        match page.json["next"].as_i64() {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(stored, (1..=500).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wiping_redis_mid_burst_gives_no_duplicate_and_no_error() {
    let a = TestApp::start(Mode::MySql).await;
    let b = a.replica().await;
    let token = a.new_application("wiped").await;
    let chat = a.new_chat(&token).await;
    let done = Arc::new(AtomicUsize::new(0));
    let prefix = a.settings.redis_prefix.clone();
    let wiper = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut wiped = Vec::new();
            for threshold in [100, 200, 300] {
                while done.load(Ordering::SeqCst) < threshold {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                let n = testkit::wipe_redis_prefix(&testkit::redis_url(), &prefix)
                    .await
                    .unwrap();
                println!("wiped {n} keys at {} done", done.load(Ordering::SeqCst));
                wiped.push(n);
            }
            wiped
        })
    };
    // 100 in flight at a time, so numbers are still being handed out when each wipe lands.
    let numbers = burst(&[&a, &b], &token, chat, 500, 100, done).await;
    let wiped = wiper.await.unwrap();
    // The wipes must have hit live data for the test to mean anything (the exact key count
    // depends on timing: counters, and the queue's keys under the same prefix).
    assert!(
        wiped[0] >= 1 && wiped.iter().filter(|n| **n >= 1).count() >= 2,
        "the wipes removed live keys: {wiped:?}"
    );
    let set = assert_unique(&numbers);
    assert_eq!(set.len(), 500);
    // After the dust settles numbering continues above everything stored.
    let next = a.new_message(&token, chat, "after the wipes").await;
    assert!(
        next.json["number"].as_i64().unwrap() > *set.last().unwrap(),
        "{next:?}"
    );
    // New chats re-seed too: wiping lost the chat counter as well.
    assert_eq!(b.new_chat(&token).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_chat_creates_over_two_replicas_are_numbered_densely() {
    let a = TestApp::start(Mode::MySql).await;
    let b = a.replica().await;
    let token = a.new_application("many chats").await;
    let creates = (0..200).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        app.new_chat(&token)
    });
    let numbers = futures::future::join_all(creates).await;
    assert_eq!(assert_unique(&numbers), (1..=200).collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_concurrent_creates_in_the_embedded_mode_are_numbered_1_to_500() {
    let app = TestApp::start(Mode::Embedded).await;
    let token = app.new_application("embedded hot chat").await;
    let chat = app.new_chat(&token).await;
    let numbers = burst(&[&app], &token, chat, 500, 500, Arc::default()).await;
    assert_eq!(assert_unique(&numbers), (1..=500).collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_embedded_server_continues_numbering() {
    let first = TestApp::start(Mode::Embedded).await;
    let token = first.new_application("restart").await;
    first.new_chat(&token).await;
    for _ in 0..3 {
        first.new_message(&token, 1, "before").await;
    }
    // A new process on the same data directory: in-process counters start empty.
    let second = first.replica().await;
    assert_eq!(
        second.new_message(&token, 1, "after").await.json["number"],
        4
    );
    assert_eq!(second.new_chat(&token).await, 2);
}
