//! One conformance suite for every storage adapter: SQLite and MySQL (real servers).

use std::sync::Arc;
use std::time::Duration;

use chat_core::domain::{Cursor, PageRequest, Sequence, now};
use chat_core::store::{HealthStore, MySqlStore, SqliteStore, Store};
use chat_core::{Error, testkit};

/// Keeps the backing database alive for the test's duration.
struct Fixture {
    store: Arc<dyn Store>,
    _mysql: Option<testkit::TestDatabase>,
    _dir: Option<TempDir>,
}

struct TempDir(std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn sqlite() -> Fixture {
    let dir = std::env::temp_dir().join(testkit::unique_name("chat_store"));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}/chat.db", dir.display());
    let store = SqliteStore::open(&url, 4).await.unwrap();
    store.migrate().await.unwrap();
    Fixture {
        store: Arc::new(store),
        _mysql: None,
        _dir: Some(TempDir(dir)),
    }
}

async fn mysql() -> Fixture {
    let db = testkit::TestDatabase::create().await;
    let store = MySqlStore::connect_lazy(&db.url, 4, Duration::from_secs(5)).unwrap();
    store.migrate().await.unwrap();
    Fixture {
        store: Arc::new(store),
        _mysql: Some(db),
        _dir: None,
    }
}

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

async fn applications_round_trip(f: Fixture) {
    let s = &f.store;
    let created = s.insert_application(TOKEN, "Support", now()).await.unwrap();
    let found = s.application_by_token(TOKEN).await.unwrap().unwrap();
    assert_eq!(created, found);
    assert_eq!(found.chats_count, 0);
    assert!(
        s.application_by_token("ffffffffffffffffffffffffffffffff")
            .await
            .unwrap()
            .is_none()
    );

    let later = now() + chrono::Duration::seconds(1);
    let renamed = s
        .rename_application(created.id, "Sales", later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renamed.name, "Sales");
    assert_eq!(renamed.created_at, created.created_at);
    assert_eq!(renamed.updated_at, later);
    assert!(
        s.rename_application(created.id + 999, "x", later)
            .await
            .unwrap()
            .is_none()
    );
}

async fn duplicate_tokens_are_taken(f: Fixture) {
    f.store.insert_application(TOKEN, "a", now()).await.unwrap();
    let err = f
        .store
        .insert_application(TOKEN, "b", now())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Taken), "{err:?}");
}

async fn strings_are_stored_byte_for_byte(f: Fixture) {
    let name = "Ünïcødé 🚀 \"quotes\" 'single' `back` \\ ; DROP TABLE chats; -- 中文";
    let app = f
        .store
        .insert_application(TOKEN, name, now())
        .await
        .unwrap();
    assert_eq!(
        f.store
            .application_by_token(TOKEN)
            .await
            .unwrap()
            .unwrap()
            .name,
        name
    );
    let chat = f.store.insert_chat(app.id, 1, now()).await.unwrap();
    let body = "line1\nline2\t\u{0}nul 𝄞 %_ \\' OR 1=1 --";
    f.store.insert_message(&chat, 1, body, now()).await.unwrap();
    assert_eq!(
        f.store.message(chat.id, 1).await.unwrap().unwrap().body,
        body
    );
}

async fn chats_are_unique_per_application(f: Fixture) {
    let s = &f.store;
    let a = s.insert_application(TOKEN, "a", now()).await.unwrap();
    let b = s
        .insert_application("fedcba9876543210fedcba9876543210", "b", now())
        .await
        .unwrap();
    s.insert_chat(a.id, 1, now()).await.unwrap();
    s.insert_chat(b.id, 1, now()).await.unwrap();
    let err = s.insert_chat(a.id, 1, now()).await.unwrap_err();
    assert!(matches!(err, Error::Taken), "{err:?}");

    let chat = s.chat_by_token(TOKEN, 1).await.unwrap().unwrap();
    assert_eq!(
        (chat.application_id, chat.number, chat.messages_count),
        (a.id, 1, 0)
    );
    assert!(s.chat_by_token(TOKEN, 2).await.unwrap().is_none());
    assert_eq!(
        s.max_number(Sequence::Chats {
            application_id: a.id
        })
        .await
        .unwrap(),
        1
    );
    assert_eq!(
        s.max_number(Sequence::Chats {
            application_id: 12345
        })
        .await
        .unwrap(),
        0
    );
}

async fn messages_are_unique_per_chat_and_updatable(f: Fixture) {
    let s = &f.store;
    let app = s.insert_application(TOKEN, "a", now()).await.unwrap();
    let chat = s.insert_chat(app.id, 1, now()).await.unwrap();
    let other = s.insert_chat(app.id, 2, now()).await.unwrap();
    let m = s.insert_message(&chat, 1, "hello", now()).await.unwrap();
    s.insert_message(&other, 1, "elsewhere", now())
        .await
        .unwrap();
    let err = s
        .insert_message(&chat, 1, "again", now())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Taken), "{err:?}");
    assert_eq!(s.message(chat.id, 1).await.unwrap().unwrap(), m);

    let later = now() + chrono::Duration::seconds(1);
    let edited = s
        .update_message(&chat, 1, "hello, edited", later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(edited.body, "hello, edited");
    assert_eq!(
        (edited.created_at, edited.updated_at),
        (m.created_at, later)
    );
    assert!(
        s.update_message(&chat, 2, "x", later)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        s.max_number(Sequence::Messages { chat_id: chat.id })
            .await
            .unwrap(),
        1
    );
}

async fn pages_are_keyset_in_both_directions(f: Fixture) {
    let s = &f.store;
    let app = s.insert_application(TOKEN, "a", now()).await.unwrap();
    let chat = s.insert_chat(app.id, 1, now()).await.unwrap();
    // Insert out of order: paging follows numbers, not insertion order.
    for n in [3, 1, 5, 2, 4] {
        s.insert_message(&chat, n, &format!("m{n}"), now())
            .await
            .unwrap();
        s.insert_chat(app.id, n + 1, now()).await.unwrap();
    }
    let numbers = |p: &chat_core::domain::Page<chat_core::domain::Message>| {
        p.items.iter().map(|m| m.number).collect::<Vec<_>>()
    };
    let first = s
        .messages(
            chat.id,
            PageRequest {
                limit: 2,
                cursor: Cursor::After(0),
            },
        )
        .await
        .unwrap();
    assert_eq!((numbers(&first), first.next), (vec![1, 2], Some(2)));
    let second = s
        .messages(
            chat.id,
            PageRequest {
                limit: 2,
                cursor: Cursor::After(2),
            },
        )
        .await
        .unwrap();
    assert_eq!((numbers(&second), second.next), (vec![3, 4], Some(4)));
    let last = s
        .messages(
            chat.id,
            PageRequest {
                limit: 2,
                cursor: Cursor::After(4),
            },
        )
        .await
        .unwrap();
    assert_eq!((numbers(&last), last.next), (vec![5], None));
    let back = s
        .messages(
            chat.id,
            PageRequest {
                limit: 3,
                cursor: Cursor::Before(5),
            },
        )
        .await
        .unwrap();
    assert_eq!((numbers(&back), back.next), (vec![4, 3, 2], Some(2)));

    let chats = s
        .chats(
            app.id,
            PageRequest {
                limit: 4,
                cursor: Cursor::After(1),
            },
        )
        .await
        .unwrap();
    let chat_numbers: Vec<i64> = chats.items.iter().map(|c| c.number).collect();
    assert_eq!((chat_numbers, chats.next), (vec![2, 3, 4, 5], Some(5)));
    let chats = s
        .chats(
            app.id,
            PageRequest {
                limit: 10,
                cursor: Cursor::Before(3),
            },
        )
        .await
        .unwrap();
    let chat_numbers: Vec<i64> = chats.items.iter().map(|c| c.number).collect();
    assert_eq!((chat_numbers, chats.next), (vec![2, 1], None));
}

async fn ping_answers(f: Fixture) {
    f.store.ping().await.unwrap();
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite_adapter { use super::*; $( #[tokio::test] async fn $case() { super::$case(sqlite().await).await } )* }
        mod mysql_adapter { use super::*; $( #[tokio::test] async fn $case() { super::$case(mysql().await).await } )* }
    };
}

conformance!(
    applications_round_trip,
    duplicate_tokens_are_taken,
    strings_are_stored_byte_for_byte,
    chats_are_unique_per_application,
    messages_are_unique_per_chat_and_updatable,
    pages_are_keyset_in_both_directions,
    ping_answers,
    writes_emit_outbox_rows_in_the_same_transaction,
    a_failed_publish_leaves_rows_unpublished,
    state_swaps_are_exclusive,
    recounts_are_exact_and_idempotent,
    repair_scans_walk_everything_in_id_order,
    batched_inserts_answer_per_row,
    a_taken_number_fails_only_its_own_row,
    batched_lookups_answer_per_address,
    concurrent_batched_recounts_never_double_count,
    purging_crosses_chunk_boundaries,
    deleting_a_message_keeps_its_number_used,
    hiding_a_chat_keeps_its_number_used,
    hiding_an_application_stops_its_token,
    the_purge_removes_hidden_rows_in_resumable_steps,
    writes_racing_the_purge_fail_only_as_parent_gone,
    deletes_racing_counters_keep_counts_exact,
);

/// The event types the outbox holds, in order (drains it).
async fn outbox_types(s: &Arc<dyn Store>) -> Vec<chat_core::events::Event> {
    use chat_core::events::Envelope;
    use chat_core::queue::{Group, LocalQueue, Queue};
    let queue = LocalQueue::new();
    while s.relay_outbox(500, &queue).await.unwrap() > 0 {}
    let got = queue
        .receive(
            Group::Indexer,
            "t",
            10_000,
            Duration::ZERO,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    got.iter()
        .map(|d| Envelope::parse(&d.payload).unwrap().event)
        .collect()
}

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

/// A batch writes every row and one event per row, and each answer carries the row's real id.
async fn batched_inserts_answer_per_row(f: Fixture) {
    use chat_core::store::{NewChat, NewMessage};
    let s = &f.store;
    let a = s.insert_application(TOKEN, "a", now()).await.unwrap();
    let b = s
        .insert_application("fedcba9876543210fedcba9876543210", "b", now())
        .await
        .unwrap();
    let wanted: Vec<NewChat> = [(a.id, 1), (b.id, 1), (a.id, 2), (b.id, 2), (a.id, 3)]
        .into_iter()
        .map(|(application_id, number)| NewChat {
            application_id,
            number,
            now: now(),
            trace: None,
        })
        .collect();
    let chats: Vec<_> = s
        .insert_chats(&wanted)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for (want, got) in wanted.iter().zip(&chats) {
        assert_eq!(
            (got.application_id, got.number),
            (want.application_id, want.number)
        );
    }
    let token = |app: i64| {
        if app == a.id {
            TOKEN
        } else {
            "fedcba9876543210fedcba9876543210"
        }
    };
    for chat in &chats {
        let stored = s
            .chat_by_token(token(chat.application_id), chat.number)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.id, chat.id);
    }

    let batch: Vec<NewMessage> = (0..40)
        .map(|i| NewMessage {
            chat: chats[i % 3].clone(),
            number: (i / 3 + 1) as i64,
            body: format!("body {i}"),
            now: now(),
            trace: None,
        })
        .collect();
    let messages: Vec<_> = s
        .insert_messages(&batch)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for (want, got) in batch.iter().zip(&messages) {
        let stored = s.message(want.chat.id, want.number).await.unwrap().unwrap();
        assert_eq!(&stored, got);
        assert_eq!(stored.body, want.body);
    }
    assert_eq!(s.outbox_waiting().await.unwrap(), 5 + 40);
}

/// One row of a batch colliding with a stored number does not fail the others.
async fn a_taken_number_fails_only_its_own_row(f: Fixture) {
    use chat_core::store::{NewChat, NewMessage};
    let s = &f.store;
    let app = s.insert_application(TOKEN, "a", now()).await.unwrap();
    let chat = s.insert_chat(app.id, 1, now()).await.unwrap();
    s.insert_message(&chat, 3, "first", now()).await.unwrap();
    let batch: Vec<NewMessage> = (1..=5)
        .map(|number| NewMessage {
            chat: chat.clone(),
            number,
            body: format!("m{number}"),
            now: now(),
            trace: None,
        })
        .collect();
    let results = s.insert_messages(&batch).await;
    for (number, result) in (1..=5).zip(&results) {
        match (number, result) {
            (3, Err(Error::Taken)) => {}
            (3, other) => panic!("number 3 was taken, got {other:?}"),
            (_, Ok(m)) => assert_eq!(m.number, number),
            (_, Err(err)) => panic!("number {number} failed: {err:?}"),
        }
    }
    assert_eq!(s.message(chat.id, 3).await.unwrap().unwrap().body, "first");
    // The refused row left no event behind: 1 chat + 1 message + 4 from the batch.
    assert_eq!(s.outbox_waiting().await.unwrap(), 6);

    let chats = s
        .insert_chats(&[
            NewChat {
                application_id: app.id,
                number: 1,
                now: now(),
                trace: None,
            },
            NewChat {
                application_id: app.id,
                number: 2,
                now: now(),
                trace: None,
            },
        ])
        .await;
    assert!(matches!(chats[0], Err(Error::Taken)), "{:?}", chats[0]);
    assert_eq!(chats[1].as_ref().unwrap().number, 2);
}

async fn batched_lookups_answer_per_address(f: Fixture) {
    let s = &f.store;
    let app = s.insert_application(TOKEN, "a", now()).await.unwrap();
    let one = s.insert_chat(app.id, 1, now()).await.unwrap();
    let two = s.insert_chat(app.id, 2, now()).await.unwrap();
    let other = "ffffffffffffffffffffffffffffffff".to_string();
    let found = s
        .chats_by_token(&[
            (TOKEN.to_string(), 2),
            (other.clone(), 1),
            (TOKEN.to_string(), 9),
            (TOKEN.to_string(), 1),
            (TOKEN.to_string(), 2),
        ])
        .await
        .unwrap();
    let ids: Vec<Option<i64>> = found.iter().map(|c| c.as_ref().map(|c| c.id)).collect();
    assert_eq!(
        ids,
        vec![Some(two.id), None, None, Some(one.id), Some(two.id)]
    );
    assert_eq!(found[3].as_ref().unwrap(), &one);
}

#[tokio::test]
async fn mysql_down_is_unavailable_not_a_bug() {
    let store =
        MySqlStore::connect_lazy("mysql://root@127.0.0.1:1/x", 1, Duration::from_millis(500))
            .unwrap();
    let err = store.ping().await.unwrap_err();
    assert!(matches!(err, Error::DatabaseUnavailable(_)), "{err:?}");
}

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

async fn state_swaps_are_exclusive(f: Fixture) {
    let s = &f.store;
    assert_eq!(s.state("k").await.unwrap(), None);
    assert!(s.swap_state("k", None, "one").await.unwrap());
    assert!(
        !s.swap_state("k", None, "two").await.unwrap(),
        "already present"
    );
    assert!(
        !s.swap_state("k", Some("zero"), "two").await.unwrap(),
        "stale expectation"
    );
    assert!(s.swap_state("k", Some("one"), "two").await.unwrap());
    assert_eq!(s.state("k").await.unwrap().as_deref(), Some("two"));
}

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

async fn repair_scans_walk_everything_in_id_order(f: Fixture) {
    let s = &f.store;
    let app = s.insert_application(TOKEN, "a", now()).await.unwrap();
    let c1 = s.insert_chat(app.id, 1, now()).await.unwrap();
    let c2 = s.insert_chat(app.id, 2, now()).await.unwrap();
    for n in 1..=3 {
        s.insert_message(&c1, n, "x", now()).await.unwrap();
        s.insert_message(&c2, n, "y", now()).await.unwrap();
    }
    let first = s.messages_by_id(0, 4, None).await.unwrap();
    let rest = s
        .messages_by_id(first.last().unwrap().id, 4, None)
        .await
        .unwrap();
    assert_eq!((first.len(), rest.len()), (4, 2));
    assert_eq!(s.messages_by_id(0, 10, Some(c2.id)).await.unwrap().len(), 3);
    assert_eq!(s.chat_ids(0, 10).await.unwrap(), vec![c1.id, c2.id]);
    assert_eq!(s.application_ids(0, 10).await.unwrap(), vec![app.id]);
    assert_eq!(s.totals().await.unwrap(), (1, 2, 6));
}
