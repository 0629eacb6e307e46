//! [`ApplicationStore`](chat_core::store::ApplicationStore): applications, their tokens, and text
//! stored as given.

use chat_core::Error;
use chat_core::domain::now;

use crate::{Fixture, TOKEN};

conformance!(
    applications_round_trip,
    duplicate_tokens_are_taken,
    strings_are_stored_byte_for_byte,
);

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
