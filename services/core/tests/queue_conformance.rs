//! One conformance suite for every queue adapter: in-process and Redis Streams.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chat_core::queue::{Group, LocalQueue, Queue, RedisQueue};
use chat_core::testkit;

const IDLE: Duration = Duration::from_millis(150);
const NO_WAIT: Duration = Duration::from_millis(1);

async fn redis() -> Arc<dyn Queue> {
    let q = RedisQueue::connect(
        &testkit::redis_url(),
        &testkit::redis_prefix(),
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    Arc::new(q)
}

fn local() -> Arc<dyn Queue> {
    Arc::new(LocalQueue::new())
}

fn payloads(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{{\"n\":{i}}}")).collect()
}

async fn ready(q: &Arc<dyn Queue>) -> String {
    q.ensure().await.unwrap()
}

async fn every_group_gets_every_entry_in_order(q: Arc<dyn Queue>) {
    ready(&q).await;
    q.publish(&payloads(5)).await.unwrap();
    for group in Group::ALL {
        let got = q.receive(group, "c1", 10, NO_WAIT, IDLE).await.unwrap();
        let bodies: Vec<&str> = got.iter().map(|d| d.payload.as_str()).collect();
        assert_eq!(
            bodies,
            payloads(5).iter().map(String::as_str).collect::<Vec<_>>()
        );
        assert!(got.iter().all(|d| d.attempts == 1));
        q.ack(group, &got.iter().map(|d| d.id.clone()).collect::<Vec<_>>())
            .await
            .unwrap();
    }
    assert!(
        q.receive(Group::Indexer, "c1", 10, NO_WAIT, IDLE)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn unacknowledged_entries_are_redelivered_to_another_consumer(q: Arc<dyn Queue>) {
    ready(&q).await;
    q.publish(&payloads(3)).await.unwrap();
    let first = q
        .receive(Group::Indexer, "dies", 10, NO_WAIT, IDLE)
        .await
        .unwrap();
    assert_eq!(first.len(), 3);
    // Not idle long enough yet: nothing to take over, nothing new.
    assert!(
        q.receive(Group::Indexer, "heir", 10, NO_WAIT, IDLE)
            .await
            .unwrap()
            .is_empty()
    );
    tokio::time::sleep(IDLE + Duration::from_millis(50)).await;
    let taken = q
        .receive(Group::Indexer, "heir", 10, NO_WAIT, IDLE)
        .await
        .unwrap();
    assert_eq!(
        taken.iter().map(|d| &d.id).collect::<Vec<_>>(),
        first.iter().map(|d| &d.id).collect::<Vec<_>>()
    );
    assert!(taken.iter().all(|d| d.attempts == 2), "{taken:?}");
    // The other group is unaffected.
    assert_eq!(
        q.receive(Group::Counter, "c", 10, NO_WAIT, IDLE)
            .await
            .unwrap()
            .len(),
        3
    );
}

async fn dead_letters_are_listed_and_replayed(q: Arc<dyn Queue>) {
    ready(&q).await;
    q.publish(&["poison".to_owned(), "fine".to_owned()])
        .await
        .unwrap();
    let got = q
        .receive(Group::Counter, "c", 10, NO_WAIT, IDLE)
        .await
        .unwrap();
    q.dead_letter(Group::Counter, &got[0], "unreadable event")
        .await
        .unwrap();
    q.ack(Group::Counter, std::slice::from_ref(&got[1].id))
        .await
        .unwrap();
    let dead = q.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (
            dead[0].payload.as_str(),
            dead[0].error.as_str(),
            dead[0].group.as_str()
        ),
        ("poison", "unreadable event", "counter")
    );
    assert_eq!(dead[0].original_id, got[0].id);
    assert_eq!(q.stats().await.unwrap().dead_letters, 1);
    // Dead-lettering acknowledged it: it is not delivered again.
    tokio::time::sleep(IDLE + Duration::from_millis(50)).await;
    assert!(
        q.receive(Group::Counter, "c", 10, NO_WAIT, IDLE)
            .await
            .unwrap()
            .is_empty()
    );

    assert_eq!(q.replay(&[dead[0].id.clone()]).await.unwrap(), 1);
    assert!(q.dead_letters(10).await.unwrap().is_empty());
    let again = q
        .receive(Group::Counter, "c", 10, NO_WAIT, IDLE)
        .await
        .unwrap();
    assert_eq!(
        again.iter().map(|d| d.payload.as_str()).collect::<Vec<_>>(),
        vec!["poison"]
    );
}

async fn trimming_keeps_what_any_group_still_needs(q: Arc<dyn Queue>) {
    ready(&q).await;
    q.publish(&payloads(4)).await.unwrap();
    let indexer = q
        .receive(Group::Indexer, "i", 10, NO_WAIT, IDLE)
        .await
        .unwrap();
    q.ack(
        Group::Indexer,
        &indexer.iter().map(|d| d.id.clone()).collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    // The counter has not read anything: nothing may go.
    q.trim().await.unwrap();
    let stats = q.stats().await.unwrap();
    assert_eq!(stats.length, 4);
    assert_eq!(
        stats.lag,
        vec![(Group::Counter, Some(4)), (Group::Indexer, Some(0))],
        "undelivered per group"
    );
    let counter = q
        .receive(Group::Counter, "c", 2, NO_WAIT, IDLE)
        .await
        .unwrap();
    q.ack(Group::Counter, &[counter[0].id.clone()])
        .await
        .unwrap();
    // Entry 0 is done for both; entry 1 is pending for the counter; 2 and 3 undelivered.
    q.trim().await.unwrap();
    assert_eq!(q.stats().await.unwrap().length, 3);
    let rest = q
        .receive(Group::Counter, "c", 10, NO_WAIT, IDLE)
        .await
        .unwrap();
    let got: BTreeSet<String> = rest.iter().map(|d| d.payload.clone()).collect();
    assert_eq!(got, payloads(4)[2..].iter().cloned().collect());
    q.ack(
        Group::Counter,
        &[&counter[1..], &rest[..]]
            .concat()
            .iter()
            .map(|d| d.id.clone())
            .collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    q.trim().await.unwrap();
    assert_eq!(q.stats().await.unwrap().length, 0);
}

async fn the_epoch_is_stable_while_the_stream_lives(q: Arc<dyn Queue>) {
    let first = ready(&q).await;
    assert_eq!(ready(&q).await, first);
    q.publish(&payloads(1)).await.unwrap();
    assert_eq!(ready(&q).await, first);
}

async fn receive_waits_for_new_entries(q: Arc<dyn Queue>) {
    ready(&q).await;
    let publisher = {
        let q = q.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            q.publish(&payloads(1)).await.unwrap();
        })
    };
    let started = std::time::Instant::now();
    let got = q
        .receive(Group::Indexer, "w", 10, Duration::from_secs(3), IDLE)
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "woke on arrival, not at the deadline"
    );
    publisher.await.unwrap();
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod local_adapter { use super::*; $( #[tokio::test] async fn $case() { super::$case(local()).await } )* }
        mod redis_adapter { use super::*; $( #[tokio::test] async fn $case() { super::$case(redis().await).await } )* }
    };
}

conformance!(
    every_group_gets_every_entry_in_order,
    unacknowledged_entries_are_redelivered_to_another_consumer,
    dead_letters_are_listed_and_replayed,
    trimming_keeps_what_any_group_still_needs,
    the_epoch_is_stable_while_the_stream_lives,
    receive_waits_for_new_entries,
);

#[tokio::test]
async fn a_redis_that_lost_its_stream_gets_a_new_epoch() {
    let prefix = testkit::redis_prefix();
    let q = RedisQueue::connect(&testkit::redis_url(), &prefix, Duration::from_secs(2))
        .await
        .unwrap();
    let before = q.ensure().await.unwrap();
    q.publish(&payloads(2)).await.unwrap();
    testkit::wipe_redis_prefix(&testkit::redis_url(), &prefix)
        .await
        .unwrap();
    let after = q.ensure().await.unwrap();
    assert_ne!(before, after, "a restarted-empty Redis is noticed");
    // Groups exist again: reading works without errors.
    assert!(
        q.receive(Group::Indexer, "c", 10, NO_WAIT, IDLE)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_new_in_process_queue_has_a_new_epoch() {
    assert_ne!(
        LocalQueue::new().ensure().await.unwrap(),
        LocalQueue::new().ensure().await.unwrap()
    );
}
