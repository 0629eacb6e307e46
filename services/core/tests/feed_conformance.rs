//! One conformance suite for every feed adapter (in-process and Redis), and for the hub over
//! each: order, duplicates, trimming, the resume rules and slow subscribers.

use std::sync::Arc;
use std::time::Duration;

use chat_core::feed::{
    APPLICATION_DELETED, Append, CHAT_DELETED, End, EntryId, Feed, Hub, Item, LocalFeed, RedisFeed,
    Retention, StreamSettings, SubscribeError, Subscription, application_log,
};
use chat_core::testkit;

const WAIT: Duration = Duration::from_secs(5);

fn retention(max_len: u64) -> Retention {
    Retention {
        max_len,
        max_age: Duration::from_secs(3600),
    }
}

async fn redis(max_len: u64) -> Arc<dyn Feed> {
    Arc::new(
        RedisFeed::connect(
            &testkit::redis_url(),
            &testkit::redis_prefix(),
            Duration::from_secs(2),
            retention(max_len),
        )
        .await
        .unwrap(),
    )
}

fn local(max_len: u64) -> Arc<dyn Feed> {
    Arc::new(LocalFeed::new(retention(max_len)))
}

fn item(chat_id: i64, number: i64) -> Append {
    Append {
        chat_id,
        kind: "message.created".into(),
        key: format!("c:{number}:1"),
        data: format!("{{\"number\":{number}}}"),
    }
}

fn number(data: &str) -> i64 {
    serde_json::from_str::<serde_json::Value>(data).unwrap()["number"]
        .as_i64()
        .unwrap()
}

async fn append(feed: &Arc<dyn Feed>, chat: i64, numbers: std::ops::Range<i64>) -> Vec<EntryId> {
    let items: Vec<Append> = numbers.map(|n| item(chat, n)).collect();
    feed.append(&items)
        .await
        .unwrap()
        .into_iter()
        .map(Option::unwrap)
        .collect()
}

async fn appends_keep_order_link_prev_and_skip_known_keys(feed: Arc<dyn Feed>) {
    assert_eq!(feed.head(1).await.unwrap(), None);
    let ids = append(&feed, 1, 1..4).await;
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let other = append(&feed, 2, 1..2).await;
    assert_eq!(feed.head(1).await.unwrap(), Some(ids[2]));
    assert_eq!(feed.head(2).await.unwrap(), Some(other[0]));
    let all = feed.range(1, EntryId::ZERO, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|e| number(&e.data)).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(all[0].prev, EntryId::ZERO);
    assert_eq!(all[1].prev, ids[0]);
    assert_eq!(all[2].prev, ids[1]);
    assert_eq!(all[0].kind, "message.created");
    // A relay appending the same events again adds nothing.
    let again = feed.append(&[item(1, 2), item(1, 4)]).await.unwrap();
    assert_eq!(again[0], None);
    assert!(again[1].is_some());
    let after = feed.range(1, ids[2], 100).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(number(&after[0].data), 4);
    assert_eq!(after[0].prev, ids[2]);
    // Pages.
    assert_eq!(feed.range(1, EntryId::ZERO, 2).await.unwrap().len(), 2);
    assert!(
        feed.range(1, feed.head(1).await.unwrap().unwrap(), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn logs_are_capped_by_length(feed: Arc<dyn Feed>) {
    // Redis trims whole nodes (`~`): many more entries than the cap, in separate appends.
    for chunk in 0..30 {
        append(&feed, 7, chunk * 100..(chunk + 1) * 100).await;
    }
    let kept = feed.range(7, EntryId::ZERO, 10_000).await.unwrap();
    assert!(kept.len() < 3000, "nothing trimmed: {}", kept.len());
    assert!(kept.len() >= 10);
    // The first retained entry knows what came before it: the trim is detectable.
    assert!(kept[0].prev > EntryId::ZERO);
    assert_eq!(number(&kept.last().unwrap().data), 2999);
}

async fn follow_waits_for_entries_and_returns_on_interrupt(feed: Arc<dyn Feed>) {
    let head = append(&feed, 3, 1..2).await[0];
    let started = std::time::Instant::now();
    let none = feed
        .follow(&[(3, head)], 10, Duration::from_millis(200))
        .await
        .unwrap();
    assert!(none.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(150));

    let writer = feed.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        append(&writer, 3, 2..4).await;
    });
    let got = feed
        .follow(&[(3, head), (4, EntryId::ZERO)], 10, WAIT)
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, 3);
    assert!(!got[0].1.is_empty());
    assert_eq!(number(&got[0].1[0].data), 2);

    // An interrupt before the follow begins still ends it at once (no lost wake-up).
    feed.interrupt().await.unwrap();
    let started = std::time::Instant::now();
    let got = feed.follow(&[(4, EntryId::ZERO)], 10, WAIT).await.unwrap();
    assert!(got.is_empty());
    assert!(started.elapsed() < Duration::from_secs(2));
    // And an interrupt during a follow.
    let waker = feed.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waker.interrupt().await.unwrap();
    });
    let started = std::time::Instant::now();
    feed.follow(&[(4, EntryId::ZERO)], 10, WAIT).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
}

fn hub(feed: Arc<dyn Feed>, buffer: usize, per_token: usize) -> Arc<Hub> {
    Hub::new(feed, StreamSettings { buffer, per_token })
}

async fn next(sub: &mut Subscription) -> Item {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("an item in time")
        .expect("stream open")
}

async fn numbers(sub: &mut Subscription, n: usize) -> Vec<i64> {
    let mut got = Vec::new();
    while got.len() < n {
        match next(sub).await {
            Item::Event(e) => got.push(number(&e.data)),
            other => panic!("unexpected {other:?}"),
        }
    }
    got
}

async fn hub_resumes_without_gap_or_repeat(feed: Arc<dyn Feed>) {
    let hub = hub(feed.clone(), 1000, 10);
    let ids = append(&feed, 10, 1..6).await;
    // Live only: nothing old.
    let mut live = hub.subscribe(1, 10, 1, None).await.unwrap();
    // From the start, and after the second.
    let mut all = hub.subscribe(1, 10, 1, Some(EntryId::ZERO)).await.unwrap();
    let mut later = hub.subscribe(1, 10, 1, Some(ids[1])).await.unwrap();
    append(&feed, 10, 6..9).await;
    assert_eq!(numbers(&mut all, 8).await, (1..9).collect::<Vec<_>>());
    assert_eq!(numbers(&mut later, 6).await, (3..9).collect::<Vec<_>>());
    assert_eq!(numbers(&mut live, 3).await, [6, 7, 8]);
    // Nothing more, and no repeat.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), all.next())
            .await
            .is_err()
    );

    // Resume while appends keep coming: every event exactly once across the seam.
    let writer = feed.clone();
    let appending = tokio::spawn(async move {
        for n in 9..209 {
            append(&writer, 10, n..n + 1).await;
        }
    });
    let mut first = hub.subscribe(1, 10, 1, Some(EntryId::ZERO)).await.unwrap();
    let mut seen = numbers(&mut first, 50).await;
    let last = feed.range(10, EntryId::ZERO, 10_000).await.unwrap()[seen.len() - 1].id;
    drop(first);
    let mut resumed = hub.subscribe(1, 10, 1, Some(last)).await.unwrap();
    appending.await.unwrap();
    seen.extend(numbers(&mut resumed, 208 - 50).await);
    assert_eq!(seen, (1..209).collect::<Vec<_>>());
}

async fn hub_resets_a_client_older_than_retained(feed: Arc<dyn Feed>) {
    let hub = hub(feed.clone(), 10_000, 10);
    let first = append(&feed, 20, 0..1).await[0];
    for chunk in 0..30 {
        append(&feed, 20, 1 + chunk * 100..1 + (chunk + 1) * 100).await;
    }
    let head = feed.head(20).await.unwrap().unwrap();
    let mut old = hub.subscribe(1, 20, 1, Some(first)).await.unwrap();
    assert_eq!(next(&mut old).await, Item::Reset(head));
    append(&feed, 20, 5000..5001).await;
    assert_eq!(numbers(&mut old, 1).await, [5000]);

    // An id past the head (from a lost log) resets too; an unknown chat's log counts as empty.
    let future = EntryId {
        ms: u64::MAX / 2,
        seq: 0,
    };
    let mut lost = hub.subscribe(1, 21, 1, Some(future)).await.unwrap();
    assert_eq!(next(&mut lost).await, Item::Reset(EntryId::ZERO));
    // The newest id itself is no reset: nothing was missed.
    let head = feed.head(20).await.unwrap().unwrap();
    let mut current = hub.subscribe(1, 20, 1, Some(head)).await.unwrap();
    append(&feed, 20, 6000..6001).await;
    assert_eq!(numbers(&mut current, 1).await, [6000]);
}

async fn hub_ends_slow_subscribers_and_caps_per_token(feed: Arc<dyn Feed>) {
    let hub = hub(feed.clone(), 4, 2);
    let mut slow = hub.subscribe(1, 30, 1, None).await.unwrap();
    let _second = hub.subscribe(1, 31, 1, None).await.unwrap();
    assert!(matches!(
        hub.subscribe(1, 30, 1, None).await,
        Err(SubscribeError::TooMany { limit: 2 })
    ));
    // Another token has its own allowance.
    let _other = hub.subscribe(2, 30, 1, None).await.unwrap();
    for n in 0..20 {
        append(&feed, 30, n..n + 1).await;
    }
    // The reader fans out without waiting for the slow one; its buffer stays at the cap.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(hub.buffered() <= 2 * 4, "{}", hub.buffered());
    let mut got = 0;
    loop {
        match next(&mut slow).await {
            Item::Event(_) => got += 1,
            Item::End(end) => {
                assert_eq!(end, End::Slow);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(got <= 4, "{got}");
    assert!(slow.next().await.is_none());
    drop(slow);
    // Its slot is free again.
    let _third = hub.subscribe(1, 30, 1, None).await.unwrap();
}

fn deletion(log: i64, kind: &str) -> Append {
    Append {
        chat_id: log,
        kind: kind.into(),
        key: kind.into(),
        data: "{\"number\":4,\"deleted_at\":\"2026-12-01T00:00:00Z\"}".into(),
    }
}

async fn deletions_end_streams_with_a_final_chat_deleted(feed: Arc<dyn Feed>) {
    let hub = hub(feed.clone(), 100, 10);
    let mut chat = hub.subscribe(5, 40, 4, None).await.unwrap();
    let mut sibling = hub.subscribe(5, 41, 7, None).await.unwrap();
    let mut elsewhere = hub.subscribe(6, 42, 1, None).await.unwrap();
    feed.append(&[deletion(40, CHAT_DELETED)]).await.unwrap();
    match next(&mut chat).await {
        Item::Event(e) => assert_eq!(e.kind, CHAT_DELETED),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(next(&mut chat).await, Item::End(End::Deleted));
    assert!(chat.next().await.is_none());

    feed.append(&[deletion(application_log(5), APPLICATION_DELETED)])
        .await
        .unwrap();
    match next(&mut sibling).await {
        Item::Event(e) => {
            assert_eq!(e.kind, CHAT_DELETED);
            let data: serde_json::Value = serde_json::from_str(&e.data).unwrap();
            assert_eq!(data["number"], 7, "named by its own chat's number");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(next(&mut sibling).await, Item::End(End::Deleted));
    // Another application's stream goes on.
    append(&feed, 42, 1..2).await;
    assert_eq!(numbers(&mut elsewhere, 1).await, [1]);
    // Subscribing after the deletion ends at once.
    let mut late = hub.subscribe(5, 43, 9, None).await.unwrap();
    match next(&mut late).await {
        Item::Event(e) => assert_eq!(e.kind, CHAT_DELETED),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(next(&mut late).await, Item::End(End::Deleted));
}

/// A log lost (Redis restarted empty, or a process restart in embedded mode) and written anew
/// from the retained outbox: a client holding an id from the old one is reset, not served the
/// same events again under new ids.
async fn a_log_written_anew_resets_ids_from_the_old_one(
    old: Arc<dyn Feed>,
    lose: impl AsyncFnOnce() -> Arc<dyn Feed>,
) {
    let ids = append(&old, 60, 1..4).await;
    let reborn = lose().await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    append(&reborn, 60, 1..5).await;
    let head = reborn.head(60).await.unwrap().unwrap();
    let hub = hub(reborn.clone(), 100, 10);
    let mut resumed = hub.subscribe(1, 60, 1, Some(ids[2])).await.unwrap();
    assert_eq!(next(&mut resumed).await, Item::Reset(head));
    // From the start of the new log is no reset.
    let mut fresh = hub.subscribe(1, 60, 1, Some(EntryId::ZERO)).await.unwrap();
    assert_eq!(numbers(&mut fresh, 4).await, [1, 2, 3, 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_written_anew_resets_ids_from_the_old_one_local() {
    a_log_written_anew_resets_ids_from_the_old_one(local(1000), async || local(1000)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_written_anew_resets_ids_from_the_old_one_redis() {
    async fn connect(prefix: &str) -> Arc<dyn Feed> {
        Arc::new(
            RedisFeed::connect(
                &testkit::redis_url(),
                prefix,
                Duration::from_secs(2),
                retention(1000),
            )
            .await
            .unwrap(),
        )
    }
    let prefix = testkit::redis_prefix();
    let old = connect(&prefix).await;
    let again = prefix.clone();
    a_log_written_anew_resets_ids_from_the_old_one(old, async move || {
        testkit::wipe_redis_prefix(&testkit::redis_url(), &again)
            .await
            .unwrap();
        connect(&again).await
    })
    .await;
}

/// A live subscriber across a Redis loss: the events written anew are not delivered twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_subscriber_sees_no_event_twice_when_the_log_is_written_anew() {
    let prefix = testkit::redis_prefix();
    let feed: Arc<dyn Feed> = Arc::new(
        RedisFeed::connect(
            &testkit::redis_url(),
            &prefix,
            Duration::from_secs(2),
            retention(1000),
        )
        .await
        .unwrap(),
    );
    let hub = hub(feed.clone(), 100, 10);
    let mut live = hub.subscribe(1, 61, 1, None).await.unwrap();
    append(&feed, 61, 1..3).await;
    assert_eq!(numbers(&mut live, 2).await, [1, 2]);
    testkit::wipe_redis_prefix(&testkit::redis_url(), &prefix)
        .await
        .unwrap();
    append(&feed, 61, 1..4).await;
    assert_eq!(numbers(&mut live, 1).await, [3]);
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn local() {
                    super::$name(super::local(1000)).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn redis() {
                    super::$name(super::redis(1000).await).await
                }
            }
        )*
    };
}

conformance!(
    appends_keep_order_link_prev_and_skip_known_keys,
    logs_are_capped_by_length,
    follow_waits_for_entries_and_returns_on_interrupt,
    hub_resumes_without_gap_or_repeat,
    hub_resets_a_client_older_than_retained,
    hub_ends_slow_subscribers_and_caps_per_token,
    deletions_end_streams_with_a_final_chat_deleted,
);
