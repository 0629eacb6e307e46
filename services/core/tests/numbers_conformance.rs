//! One conformance suite for every numbering adapter: in-process and Redis.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chat_core::domain::Sequence;
use chat_core::numbers::{LocalNumbers, Numbers, RedisNumbers};
use chat_core::testkit;

async fn redis() -> Arc<dyn Numbers> {
    Arc::new(
        RedisNumbers::connect(
            &testkit::redis_url(),
            &testkit::redis_prefix(),
            Duration::from_secs(2),
        )
        .await
        .unwrap(),
    )
}

fn local() -> Arc<dyn Numbers> {
    Arc::new(LocalNumbers::new())
}

const CHATS: Sequence = Sequence::Chats { application_id: 7 };
const MESSAGES: Sequence = Sequence::Messages { chat_id: 7 };

async fn unknown_counters_say_so(n: Arc<dyn Numbers>) {
    assert_eq!(n.next(CHATS).await.unwrap(), None);
    assert_eq!(n.next(MESSAGES).await.unwrap(), None);
}

async fn seeding_continues_after_the_floor(n: Arc<dyn Numbers>) {
    assert_eq!(n.next_above(CHATS, 0).await.unwrap(), 1);
    assert_eq!(n.next(CHATS).await.unwrap(), Some(2));
    assert_eq!(n.next(CHATS).await.unwrap(), Some(3));
    assert_eq!(n.next_above(MESSAGES, 41).await.unwrap(), 42);
}

async fn a_lower_floor_never_lowers_the_counter(n: Arc<dyn Numbers>) {
    assert_eq!(n.next_above(CHATS, 10).await.unwrap(), 11);
    assert_eq!(n.next_above(CHATS, 3).await.unwrap(), 12);
    assert_eq!(n.next_above(CHATS, 100).await.unwrap(), 101);
    assert_eq!(n.next(CHATS).await.unwrap(), Some(102));
}

async fn sequences_are_independent(n: Arc<dyn Numbers>) {
    n.next_above(CHATS, 5).await.unwrap();
    let other = Sequence::Chats { application_id: 8 };
    assert_eq!(n.next(other).await.unwrap(), None);
    // Same id, other kind: a message counter is not a chat counter.
    assert_eq!(
        n.next(Sequence::Messages { chat_id: 7 }).await.unwrap(),
        None
    );
}

async fn concurrent_callers_get_distinct_consecutive_numbers(n: Arc<dyn Numbers>) {
    n.next_above(MESSAGES, 0).await.unwrap();
    let tasks: Vec<_> = (0..400)
        .map(|i| {
            let n = n.clone();
            tokio::spawn(async move {
                if i % 10 == 0 {
                    n.next_above(MESSAGES, 1).await.unwrap()
                } else {
                    n.next(MESSAGES).await.unwrap().unwrap()
                }
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for task in tasks {
        assert!(seen.insert(task.await.unwrap()), "duplicate number");
    }
    let expected: HashSet<i64> = (2..=401).collect();
    assert_eq!(seen, expected);
}

async fn ping_answers(n: Arc<dyn Numbers>) {
    n.ping().await.unwrap();
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod local_adapter { use super::*; $( #[tokio::test] async fn $case() { super::$case(local()).await } )* }
        mod redis_adapter { use super::*; $( #[tokio::test] async fn $case() { super::$case(redis().await).await } )* }
    };
}

conformance!(
    unknown_counters_say_so,
    seeding_continues_after_the_floor,
    a_lower_floor_never_lowers_the_counter,
    sequences_are_independent,
    concurrent_callers_get_distinct_consecutive_numbers,
    ping_answers,
);

#[tokio::test]
async fn redis_keys_are_the_seeds_under_the_prefix() {
    let n = RedisNumbers::connect(&testkit::redis_url(), "p:", Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(
        n.key(Sequence::Chats { application_id: 3 }),
        "p:chat_app:3:chat_counter"
    );
    assert_eq!(
        n.key(Sequence::Messages { chat_id: 9 }),
        "p:chat:9:message_counter"
    );
}

#[tokio::test]
async fn redis_unreachable_is_reported_quickly_not_hung() {
    let n = RedisNumbers::connect("redis://127.0.0.1:1", "x:", Duration::from_millis(300))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let err = n.next(CHATS).await.unwrap_err();
    assert!(
        matches!(err, chat_core::Error::RedisUnavailable(_)),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}
