//! [`DeletionStore`](chat_core::store::DeletionStore): deletes keep numbers used and counts exact,
//! hides stop addresses, and the purge removes hidden rows in resumable steps.

use chat_core::Error;
use chat_core::domain::{Cursor, PageRequest, Sequence, now};

use crate::{Fixture, TOKEN, outbox_types};

conformance!(
    deleting_a_message_keeps_its_number_used,
    hiding_a_chat_keeps_its_number_used,
    hiding_an_application_stops_its_token,
    the_purge_removes_hidden_rows_in_resumable_steps,
    writes_racing_the_purge_fail_only_as_parent_gone,
    deletes_racing_counters_keep_counts_exact,
);

async fn deleting_a_message_keeps_its_number_used(f: Fixture) {
    use chat_core::events::Event;
    let s = &f.store;
    let app = s.insert_application(TOKEN, "a", now()).await.unwrap();
    let old = now() - chrono::Duration::seconds(120);
    let chat = s.insert_chat(app.id, 1, now()).await.unwrap();
    for n in 1..=3 {
        s.insert_message(&chat, n, "old", old).await.unwrap();
    }
    s.update_message(&chat, 3, "edited", now()).await.unwrap();
    let settle = now() - chrono::Duration::seconds(30);
    assert_eq!(s.recount_chat(chat.id, settle, false).await.unwrap(), 3);
    let _ = outbox_types(s).await;

    let deleted = s.delete_message(&chat, 3, now()).await.unwrap().unwrap();
    assert_eq!(deleted.version, 3, "past the edit's version 2");
    assert_eq!(s.message(chat.id, 3).await.unwrap(), None);
    let page = s.messages(chat.id, PageRequest::default()).await.unwrap();
    assert_eq!(
        page.items.iter().map(|m| m.number).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(
        s.chat_by_token(TOKEN, 1)
            .await
            .unwrap()
            .unwrap()
            .messages_count,
        2,
        "the count follows at once"
    );
    assert_eq!(
        s.max_number(Sequence::Messages { chat_id: chat.id })
            .await
            .unwrap(),
        3,
        "the highest number stays used"
    );
    assert_eq!(s.delete_message(&chat, 3, now()).await.unwrap(), None);
    assert_eq!(
        s.update_message(&chat, 3, "again", now()).await.unwrap(),
        None
    );
    let events = outbox_types(s).await;
    assert!(
        matches!(&events[..], [Event::MessageDeleted(m)] if m.number == 3 && m.version == 3 && m.chat_id == chat.id),
        "{events:?}"
    );
    // The watermark had passed 3: the settled part lost it too, so recounts agree.
    assert_eq!(s.recount_chat(chat.id, settle, false).await.unwrap(), 2);
    assert_eq!(s.recount_chat(chat.id, settle, true).await.unwrap(), 2);
    // A lower number deleted later leaves the floor where it is.
    s.delete_message(&chat, 1, now()).await.unwrap().unwrap();
    assert_eq!(
        s.max_number(Sequence::Messages { chat_id: chat.id })
            .await
            .unwrap(),
        3
    );
    assert_eq!(s.recount_chat(chat.id, settle, false).await.unwrap(), 1);
}

async fn hiding_a_chat_keeps_its_number_used(f: Fixture) {
    use chat_core::events::Event;
    let s = &f.store;
    let app = s.insert_application(TOKEN, "a", now()).await.unwrap();
    let old = now() - chrono::Duration::seconds(120);
    let one = s.insert_chat(app.id, 1, old).await.unwrap();
    let two = s.insert_chat(app.id, 2, old).await.unwrap();
    let settle = now() - chrono::Duration::seconds(30);
    assert_eq!(
        s.recount_application(app.id, settle, false).await.unwrap(),
        2
    );
    let _ = outbox_types(s).await;

    assert!(s.hide_chat(&two, now()).await.unwrap());
    assert_eq!(s.chat_by_token(TOKEN, 2).await.unwrap(), None);
    let found = s
        .chats_by_token(&[(TOKEN.into(), 1), (TOKEN.into(), 2)])
        .await
        .unwrap();
    assert_eq!(found, vec![Some(one.clone()), None]);
    let page = s.chats(app.id, PageRequest::default()).await.unwrap();
    assert_eq!(page.items, vec![one.clone()]);
    let back = PageRequest {
        limit: 10,
        cursor: Cursor::Before(10),
    };
    assert_eq!(
        s.chats(app.id, back).await.unwrap().items,
        vec![one.clone()]
    );
    assert_eq!(
        s.application_by_token(TOKEN)
            .await
            .unwrap()
            .unwrap()
            .chats_count,
        1
    );
    assert!(!s.hide_chat(&two, now()).await.unwrap(), "hidden already");
    let events = outbox_types(s).await;
    assert!(
        matches!(&events[..], [Event::ChatDeleted { number: 2, chat_id, .. }] if *chat_id == two.id),
        "{events:?}"
    );
    assert_eq!(
        s.recount_application(app.id, settle, false).await.unwrap(),
        1
    );
    assert_eq!(
        s.recount_application(app.id, settle, true).await.unwrap(),
        1
    );
    // Purged, the number is still used.
    assert_eq!(
        s.hidden_chats(now() + chrono::Duration::seconds(1), 10)
            .await
            .unwrap(),
        vec![two.id]
    );
    assert!(s.purge_chat(two.id).await.unwrap());
    assert_eq!(
        s.max_number(Sequence::Chats {
            application_id: app.id
        })
        .await
        .unwrap(),
        2
    );
}

async fn hiding_an_application_stops_its_token(f: Fixture) {
    use chat_core::events::Event;
    let s = &f.store;
    let app = s.insert_application(TOKEN, "a", now()).await.unwrap();
    s.insert_chat(app.id, 1, now()).await.unwrap();
    let _ = outbox_types(s).await;
    assert!(s.hide_application(app.id, now()).await.unwrap());
    assert_eq!(s.application_by_token(TOKEN).await.unwrap(), None);
    assert_eq!(s.chat_by_token(TOKEN, 1).await.unwrap(), None);
    assert_eq!(
        s.chats_by_token(&[(TOKEN.into(), 1), (TOKEN.into(), 1)])
            .await
            .unwrap(),
        vec![None, None]
    );
    assert!(!s.hide_application(app.id, now()).await.unwrap());
    let events = outbox_types(s).await;
    assert!(
        matches!(&events[..], [Event::ApplicationDeleted { application_id, .. }] if *application_id == app.id),
        "{events:?}"
    );
}

/// Each step is idempotent and its state is the hidden markers: a purge stopped after any
/// step (a "crash") finishes when run again.
async fn the_purge_removes_hidden_rows_in_resumable_steps(f: Fixture) {
    let s = &f.store;
    let app = s.insert_application(TOKEN, "a", now()).await.unwrap();
    let one = s.insert_chat(app.id, 1, now()).await.unwrap();
    let two = s.insert_chat(app.id, 2, now()).await.unwrap();
    for n in 1..=5 {
        s.insert_message(&one, n, "x", now()).await.unwrap();
    }
    for n in 1..=2 {
        s.insert_message(&two, n, "y", now()).await.unwrap();
    }
    let later = || now() + chrono::Duration::seconds(1);
    assert!(s.hidden_chats(later(), 10).await.unwrap().is_empty());
    assert!(s.hide_chat(&one, now()).await.unwrap());
    assert!(
        s.hidden_chats(now() - chrono::Duration::seconds(60), 10)
            .await
            .unwrap()
            .is_empty(),
        "still within its grace"
    );
    assert_eq!(s.hidden_chats(later(), 10).await.unwrap(), vec![one.id]);
    assert_eq!(
        s.purge_messages(two.id, 100).await.unwrap(),
        0,
        "a visible chat keeps its messages"
    );
    assert_eq!(s.purge_messages(one.id, 2).await.unwrap(), 2);
    // "Crash": the next round starts over from the markers.
    assert!(
        !s.purge_chat(one.id).await.unwrap(),
        "messages left: not yet"
    );
    assert_eq!(s.purge_messages(one.id, 2).await.unwrap(), 2);
    assert_eq!(s.purge_messages(one.id, 2).await.unwrap(), 1);
    assert_eq!(s.purge_messages(one.id, 2).await.unwrap(), 0);
    assert!(s.purge_chat(one.id).await.unwrap());
    assert!(!s.purge_chat(one.id).await.unwrap(), "gone already");
    assert_eq!(s.totals().await.unwrap(), (1, 1, 2));

    // An application: its chats are hidden as of its deletion, then purged like any.
    assert_eq!(
        s.hide_chats_of_hidden_applications(10).await.unwrap(),
        Vec::<i64>::new()
    );
    assert!(s.hide_application(app.id, now()).await.unwrap());
    assert!(
        !s.purge_application(app.id).await.unwrap(),
        "it still has a chat"
    );
    assert_eq!(
        s.hide_chats_of_hidden_applications(10).await.unwrap(),
        vec![app.id]
    );
    assert_eq!(
        s.hide_chats_of_hidden_applications(10).await.unwrap(),
        vec![app.id],
        "idempotent"
    );
    assert_eq!(s.hidden_chats(later(), 10).await.unwrap(), vec![two.id]);
    assert_eq!(s.purge_messages(two.id, 100).await.unwrap(), 2);
    assert!(s.purge_chat(two.id).await.unwrap());
    assert!(s.purge_application(app.id).await.unwrap());
    assert!(!s.purge_application(app.id).await.unwrap());
    assert_eq!(s.totals().await.unwrap(), (0, 0, 0));
    assert!(
        s.hide_chats_of_hidden_applications(10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A create that looked its chat up before the chat was purged: the purge retries while the
/// row has children, and a write after the purge fails as `ParentGone` (a 404), row by row.
async fn writes_racing_the_purge_fail_only_as_parent_gone(f: Fixture) {
    use chat_core::store::NewMessage;
    let s = &f.store;
    let app = s.insert_application(TOKEN, "a", now()).await.unwrap();
    let gone = s.insert_chat(app.id, 1, now()).await.unwrap();
    let kept = s.insert_chat(app.id, 2, now()).await.unwrap();
    assert!(s.hide_chat(&gone, now()).await.unwrap());
    // Looked up before the hide, inserted after it.
    s.insert_message(&gone, 1, "late", now()).await.unwrap();
    assert!(
        !s.purge_chat(gone.id).await.unwrap(),
        "a foreign key keeps it for the next round"
    );
    assert_eq!(s.purge_messages(gone.id, 100).await.unwrap(), 1);
    assert!(s.purge_chat(gone.id).await.unwrap());
    assert!(matches!(
        s.insert_message(&gone, 2, "later", now()).await,
        Err(Error::ParentGone(_))
    ));
    let batch = vec![
        NewMessage {
            chat: kept.clone(),
            number: 1,
            body: "fine".into(),
            now: now(),
            trace: None,
        },
        NewMessage {
            chat: gone.clone(),
            number: 3,
            body: "orphan".into(),
            now: now(),
            trace: None,
        },
    ];
    let results = s.insert_messages(&batch).await;
    assert!(results[0].is_ok(), "{results:?}");
    assert!(
        matches!(results[1], Err(Error::ParentGone(_))),
        "{results:?}"
    );

    assert!(s.hide_application(app.id, now()).await.unwrap());
    s.hide_chats_of_hidden_applications(10).await.unwrap();
    s.purge_messages(kept.id, 100).await.unwrap();
    assert!(s.purge_chat(kept.id).await.unwrap());
    assert!(s.purge_application(app.id).await.unwrap());
    assert!(matches!(
        s.insert_chat(app.id, 3, now()).await,
        Err(Error::ParentGone(_))
    ));
}

/// Deletes below and above the settled watermark racing several counters: the stored counts
/// end exact (each delete changes `messages_count`, so a counter's compare-and-set that started
/// before it fails and recounts).
async fn deletes_racing_counters_keep_counts_exact(f: Fixture) {
    let s = &f.store;
    let app = s.insert_application(TOKEN, "a", now()).await.unwrap();
    let old = now() - chrono::Duration::seconds(120);
    let mut chats = Vec::new();
    for number in 1..=6 {
        let at = if number <= 3 { old } else { now() };
        chats.push(s.insert_chat(app.id, number, at).await.unwrap());
    }
    let chat = chats[0].clone();
    for n in 1..=40 {
        let at = if n <= 25 { old } else { now() };
        s.insert_message(&chat, n, "x", at).await.unwrap();
    }
    let settle = now() - chrono::Duration::seconds(30);
    s.recount_chat(chat.id, settle, false).await.unwrap();
    s.recount_application(app.id, settle, false).await.unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (chat_ids, app_ids) = ([chat.id], [app.id]);
    let counters = async {
        let mut rounds = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let (a, b, c) = tokio::join!(
                s.recount_chats(&chat_ids, settle, false),
                s.recount_chats(&chat_ids, settle, false),
                s.recount_applications(&app_ids, settle, false),
            );
            for result in [a.map(drop), b.map(drop), c.map(drop)] {
                // Giving up after repeated conflicts is the documented outcome under racing.
                assert!(
                    matches!(result, Ok(()) | Err(Error::Contention { .. })),
                    "{result:?}"
                );
            }
            rounds += 1;
            tokio::task::yield_now().await;
        }
        rounds
    };
    let deletes = async {
        // Below the watermark (settled), above it, and chats on both sides.
        for n in [3, 30, 10, 38, 25, 26, 1, 40] {
            s.delete_message(&chat, n, now()).await.unwrap().unwrap();
            tokio::task::yield_now().await;
        }
        for c in [&chats[1], &chats[4]] {
            assert!(s.hide_chat(c, now()).await.unwrap());
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    let (rounds, ()) = tokio::join!(counters, deletes);
    assert!(rounds > 0);
    assert_eq!(s.recount_chat(chat.id, settle, false).await.unwrap(), 32);
    assert_eq!(s.recount_chat(chat.id, settle, true).await.unwrap(), 32);
    assert_eq!(
        s.chat_by_token(TOKEN, 1)
            .await
            .unwrap()
            .unwrap()
            .messages_count,
        32
    );
    assert_eq!(
        s.recount_application(app.id, settle, false).await.unwrap(),
        4
    );
    assert_eq!(
        s.recount_application(app.id, settle, true).await.unwrap(),
        4
    );
    assert_eq!(
        s.application_by_token(TOKEN)
            .await
            .unwrap()
            .unwrap()
            .chats_count,
        4
    );
}
