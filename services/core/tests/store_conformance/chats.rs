//! [`ChatStore`](chat_core::store::ChatStore): chat numbers, lookups by address, and the batched
//! inserts and lookups the service coalesces (chats and messages alike).

use chat_core::Error;
use chat_core::domain::{Sequence, now};

use crate::{Fixture, TOKEN};

conformance!(
    chats_are_unique_per_application,
    batched_inserts_answer_per_row,
    a_taken_number_fails_only_its_own_row,
    batched_lookups_answer_per_address,
);

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
