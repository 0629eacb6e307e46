//! [`MessageStore`](chat_core::store::MessageStore): message numbers, edits, and keyset pages (of
//! messages and of chats).

use chat_core::Error;
use chat_core::domain::{Cursor, PageRequest, Sequence, now};

use crate::{Fixture, TOKEN};

conformance!(
    messages_are_unique_per_chat_and_updatable,
    pages_are_keyset_in_both_directions,
);

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
