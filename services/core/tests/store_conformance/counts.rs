//! [`CountStore`](chat_core::store::CountStore): recounts are exact, idempotent, and never double
//! count when several run at once.

use chat_core::domain::now;

use crate::{Fixture, TOKEN};

conformance!(
    recounts_are_exact_and_idempotent,
    concurrent_batched_recounts_never_double_count,
);

async fn recounts_are_exact_and_idempotent(f: Fixture) {
    let s = &f.store;
    let app = s.insert_application(TOKEN, "a", now()).await.unwrap();
    let old = now() - chrono::Duration::seconds(120);
    let chat = s.insert_chat(app.id, 1, old).await.unwrap();
    s.insert_chat(app.id, 2, now()).await.unwrap();
    // Old (settled) and fresh rows, with 3 still in flight.
    for n in [1, 2] {
        s.insert_message(&chat, n, "old", old).await.unwrap();
    }
    for n in [4, 5, 6] {
        s.insert_message(&chat, n, "new", now()).await.unwrap();
    }
    let settle = now() - chrono::Duration::seconds(30);
    assert_eq!(s.recount_chat(chat.id, settle, false).await.unwrap(), 5);
    assert_eq!(
        s.recount_chat(chat.id, settle, false).await.unwrap(),
        5,
        "replaying changes nothing"
    );
    // A create that commits after higher numbers did is still counted: rows younger than the
    // settle horizon are never behind the watermark.
    s.insert_message(&chat, 3, "late", now()).await.unwrap();
    assert_eq!(s.recount_chat(chat.id, settle, false).await.unwrap(), 6);
    let stored = s.chat_by_token(TOKEN, 1).await.unwrap().unwrap();
    assert_eq!(stored.messages_count, 6);
    assert_eq!(
        s.recount_chat(chat.id, settle, true).await.unwrap(),
        6,
        "from scratch agrees"
    );

    assert_eq!(
        s.recount_application(app.id, settle, false).await.unwrap(),
        2
    );
    assert_eq!(
        s.application_by_token(TOKEN)
            .await
            .unwrap()
            .unwrap()
            .chats_count,
        2
    );
    assert_eq!(s.recount_chat(999_999, settle, false).await.unwrap(), 0);
}

/// Several counters recounting the same chats at once, while rows keep settling and arriving:
/// every answer and the stored counts stay exact (the compare-and-set makes the loser recount).
async fn concurrent_batched_recounts_never_double_count(f: Fixture) {
    let s = &f.store;
    let app = s.insert_application(TOKEN, "a", now()).await.unwrap();
    let old = now() - chrono::Duration::seconds(120);
    let mut chats = Vec::new();
    for number in 1..=4 {
        chats.push(s.insert_chat(app.id, number, old).await.unwrap());
    }
    let ids: Vec<i64> = chats.iter().map(|c| c.id).collect();
    let settle = now() - chrono::Duration::seconds(30);
    let mut expected = vec![0_i64; chats.len()];
    let mut next = 1;
    for round in 0..6 {
        // Settled rows move the watermark; fresh ones stay above it.
        for (i, chat) in chats.iter().enumerate() {
            for _ in 0..=i {
                let at = if round % 2 == 0 { old } else { now() };
                s.insert_message(chat, next, "x", at).await.unwrap();
                next += 1;
                expected[i] += 1;
            }
        }
        let racers = (0..4).map(|_| s.recount_chats(&ids, settle, false));
        for counts in futures::future::join_all(racers).await {
            assert_eq!(counts.unwrap(), expected, "round {round}");
        }
        for (i, chat) in chats.iter().enumerate() {
            let stored = s.chat_by_token(TOKEN, chat.number).await.unwrap().unwrap();
            assert_eq!(
                stored.messages_count, expected[i],
                "round {round}, chat {i}"
            );
        }
    }
    assert_eq!(
        s.recount_chats(&ids, settle, true).await.unwrap(),
        expected,
        "from scratch agrees"
    );
    assert_eq!(
        s.recount_applications(&[app.id, 999_999], settle, false)
            .await
            .unwrap(),
        vec![4, 0]
    );
}
