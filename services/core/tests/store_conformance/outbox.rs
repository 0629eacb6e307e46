//! [`OutboxStore`](chat_core::store::OutboxStore): every event-emitting write leaves its outbox
//! row, the relay publishes in order, and the retention purge works in chunks.

use std::time::Duration;

use chat_core::domain::now;

use crate::{Fixture, TOKEN};

conformance!(
    writes_emit_outbox_rows_in_the_same_transaction,
    a_failed_publish_leaves_rows_unpublished,
    purging_crosses_chunk_boundaries,
);

/// Every event-emitting write leaves exactly one outbox row, published by a relay in order.
async fn writes_emit_outbox_rows_in_the_same_transaction(f: Fixture) {
    use chat_core::events::{Envelope, Event};
    use chat_core::queue::{LocalQueue, Queue};
    let s = &f.store;
    let app = s.insert_application(TOKEN, "a", now()).await.unwrap();
    assert_eq!(
        s.outbox_waiting().await.unwrap(),
        0,
        "creating an application emits nothing"
    );
    let chat = s.insert_chat(app.id, 1, now()).await.unwrap();
    s.insert_message(&chat, 1, "hello", now()).await.unwrap();
    s.update_message(&chat, 1, "hello again", now())
        .await
        .unwrap();
    // A failed insert (number taken) rolls its outbox row back with it.
    assert!(s.insert_message(&chat, 1, "dup", now()).await.is_err());
    assert_eq!(s.outbox_waiting().await.unwrap(), 3);

    let queue = LocalQueue::new();
    assert_eq!(s.relay_outbox(2, &queue).await.unwrap(), 2);
    assert_eq!(s.relay_outbox(10, &queue).await.unwrap(), 1);
    assert_eq!(s.relay_outbox(10, &queue).await.unwrap(), 0);
    assert_eq!(s.outbox_waiting().await.unwrap(), 0);
    let got = queue
        .receive(
            chat_core::queue::Group::Indexer,
            "t",
            10,
            Duration::ZERO,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let events: Vec<Event> = got
        .iter()
        .map(|d| Envelope::parse(&d.payload).unwrap().event)
        .collect();
    assert!(
        matches!(&events[0], Event::ChatCreated { number: 1, application_id, .. } if *application_id == app.id)
    );
    assert!(matches!(&events[1], Event::MessageCreated(m) if m.body == "hello" && m.version == 1));
    assert!(
        matches!(&events[2], Event::MessageUpdated(m) if m.body == "hello again" && m.version == 2)
    );

    // Retained rows can be re-published after a queue loss, and are purged after retention.
    assert_eq!(s.republish_retained().await.unwrap(), 3);
    assert_eq!(s.outbox_waiting().await.unwrap(), 3);
    assert_eq!(s.relay_outbox(10, &queue).await.unwrap(), 3);
    assert_eq!(
        s.purge_outbox(now() - chrono::Duration::seconds(60))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.purge_outbox(now() + chrono::Duration::seconds(1))
            .await
            .unwrap(),
        3
    );
    assert_eq!(s.republish_retained().await.unwrap(), 0);
}

async fn a_failed_publish_leaves_rows_unpublished(f: Fixture) {
    use chat_core::queue::{Queue, RedisQueue};
    let s = &f.store;
    let app = s.insert_application(TOKEN, "a", now()).await.unwrap();
    s.insert_chat(app.id, 1, now()).await.unwrap();
    let down = RedisQueue::connect("redis://127.0.0.1:1", "x:", Duration::from_millis(200))
        .await
        .unwrap();
    assert!(s.relay_outbox(10, &down).await.is_err());
    assert_eq!(
        s.outbox_waiting().await.unwrap(),
        1,
        "nothing lost, nothing marked"
    );
    let _ = down.backend();
}

/// More published rows than one purge statement deletes: all of them go, and nothing newer.
async fn purging_crosses_chunk_boundaries(f: Fixture) {
    use chat_core::queue::LocalQueue;
    use chat_core::store::{NewMessage, PURGE_CHUNK};
    let s = &f.store;
    let app = s.insert_application(TOKEN, "a", now()).await.unwrap();
    let chat = s.insert_chat(app.id, 1, now()).await.unwrap();
    let total = PURGE_CHUNK as i64 + 7;
    let mut number = 0;
    while number < total {
        let batch: Vec<NewMessage> = (0..128.min(total - number))
            .map(|_| {
                number += 1;
                NewMessage {
                    chat: chat.clone(),
                    number,
                    body: "x".into(),
                    now: now(),
                    trace: None,
                }
            })
            .collect();
        for result in s.insert_messages(&batch).await {
            result.unwrap();
        }
    }
    let queue = LocalQueue::new();
    while s.relay_outbox(2000, &queue).await.unwrap() > 0 {}
    let cutoff = now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Published after the cutoff: kept.
    s.insert_message(&chat, total + 1, "late", now())
        .await
        .unwrap();
    s.relay_outbox(10, &queue).await.unwrap();
    let purged = s.purge_outbox(cutoff).await.unwrap();
    // The chat's event and every message's, in two statements.
    assert_eq!(purged, total as u64 + 1);
    assert_eq!(s.purge_outbox(cutoff).await.unwrap(), 0);
    assert_eq!(
        s.republish_retained().await.unwrap(),
        1,
        "the late row is retained"
    );
}
