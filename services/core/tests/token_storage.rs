//! Hashed tokens, their expand/contract migration and rotation, on both SQL adapters. Rows the
//! previous release wrote are made with raw SQL, the way that release wrote them.

use std::path::Path;
use std::time::Duration;

use chat_core::domain::{Sequence, now, token_hash};
use chat_core::store::{MySqlStore, SqliteStore, Store};
use chat_core::testkit;
use sqlx::AssertSqlSafe;

const OLD: &str = "0123456789abcdef0123456789abcdef";
const NEW: &str = "fedcba9876543210fedcba9876543210";
/// The last migration of the release before hashed tokens.
const PREVIOUS_RELEASE: i64 = 20261201000002;

enum Raw {
    MySql(sqlx::MySqlPool),
    Sqlite(sqlx::SqlitePool),
}

impl Raw {
    async fn exec(&self, sql: &str) {
        let sql = AssertSqlSafe(sql.to_owned());
        match self {
            Raw::MySql(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
            Raw::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
        }
        .unwrap();
    }

    /// Every (token, token_hash) of the table: what a dump of it would hold.
    async fn tokens(&self) -> Vec<(Option<String>, Option<String>)> {
        let sql = "SELECT token, token_hash FROM chat_applications ORDER BY id";
        match self {
            Raw::MySql(pool) => sqlx::query_as(sql).fetch_all(pool).await,
            Raw::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await,
        }
        .unwrap()
    }
}

/// A store whose database is at the previous release's schema (`migrate` not yet run).
struct Fixture {
    store: Box<dyn Store>,
    raw: Raw,
    migrate: Box<dyn Fn() -> futures::future::BoxFuture<'static, ()>>,
    plain_kept_after_migrate: bool,
    _mysql: Option<testkit::TestDatabase>,
    _dir: Option<std::path::PathBuf>,
}

async fn sqlite() -> Fixture {
    let dir = std::env::temp_dir().join(testkit::unique_name("chat_tokens"));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}/chat.db", dir.display());
    let store = SqliteStore::open(&url, 2).await.unwrap();
    let previous = sqlx::migrate::Migrator::new(Path::new("../../migrations/sqlite"))
        .await
        .unwrap();
    previous
        .run_to(PREVIOUS_RELEASE, store.pool())
        .await
        .unwrap();
    let raw = Raw::Sqlite(store.pool().clone());
    let migrating = store.clone();
    Fixture {
        store: Box::new(store),
        raw,
        migrate: Box::new(move || {
            let store = migrating.clone();
            Box::pin(async move { store.migrate().await.unwrap() })
        }),
        // One process owns an SQLite file: migrating completes the contract at once.
        plain_kept_after_migrate: false,
        _mysql: None,
        _dir: Some(dir),
    }
}

async fn mysql() -> Fixture {
    let db = testkit::TestDatabase::create().await;
    let store = MySqlStore::connect_lazy(&db.url, 2, Duration::from_secs(5)).unwrap();
    let previous = sqlx::migrate::Migrator::new(Path::new("../../migrations/mysql"))
        .await
        .unwrap();
    previous
        .run_to(PREVIOUS_RELEASE, store.pool())
        .await
        .unwrap();
    let raw = Raw::MySql(store.pool().clone());
    let migrating = store.clone();
    Fixture {
        store: Box::new(store),
        raw,
        migrate: Box::new(move || {
            let store = migrating.clone();
            Box::pin(async move { store.migrate().await.unwrap() })
        }),
        // Previous-release replicas may still be reading plain tokens during a rollout.
        plain_kept_after_migrate: true,
        _mysql: Some(db),
        _dir: None,
    }
}

/// An application with a chat and a message, as the previous release wrote them.
async fn previous_release_rows(raw: &Raw, token: &str, app_id: i64) {
    let at = "'2026-11-30 12:00:00'";
    raw.exec(&format!(
        "INSERT INTO chat_applications (id, token, name, chats_count, created_at, updated_at) \
         VALUES ({app_id}, '{token}', 'legacy', 1, {at}, {at})"
    ))
    .await;
    raw.exec(&format!(
        "INSERT INTO chats (id, chat_application_id, number, messages_count, created_at, updated_at) \
         VALUES ({app_id}, {app_id}, 1, 1, {at}, {at})"
    ))
    .await;
    raw.exec(&format!(
        "INSERT INTO messages (chat_id, number, body, created_at, updated_at) \
         VALUES ({app_id}, 1, 'hello', {at}, {at})"
    ))
    .await;
}

async fn migration_hashes_previous_rows_and_keeps_them_addressable(f: Fixture) {
    previous_release_rows(&f.raw, OLD, 1).await;
    (f.migrate)().await;

    let tokens = f.raw.tokens().await;
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].1.as_deref(), Some(token_hash(OLD).as_str()));
    let expected_plain = f.plain_kept_after_migrate.then(|| OLD.to_owned());
    assert_eq!(tokens[0].0, expected_plain);

    let app = f.store.application_by_token(OLD).await.unwrap().unwrap();
    assert_eq!(
        (app.id, app.token.as_str(), app.name.as_str()),
        (1, OLD, "legacy")
    );
    let chat = f.store.chat_by_token(OLD, 1).await.unwrap().unwrap();
    assert_eq!(chat.id, 1);
    // The rebuilt table (SQLite) still anchors its children: new chats and messages go in.
    let chat2 = f.store.insert_chat(1, 2, now()).await.unwrap();
    f.store
        .insert_message(&chat2, 1, "after", now())
        .await
        .unwrap();
    assert_eq!(f.store.message(1, 1).await.unwrap().unwrap().body, "hello");
    assert_eq!(
        f.store
            .max_number(Sequence::Chats { application_id: 1 })
            .await
            .unwrap(),
        2
    );

    assert_eq!(
        f.store.forget_plain_tokens().await.unwrap(),
        u64::from(f.plain_kept_after_migrate)
    );
    assert_eq!(f.raw.tokens().await[0].0, None);
    assert!(f.store.application_by_token(OLD).await.unwrap().is_some());
}

/// During a rollout previous-release replicas keep writing plain tokens: this release finds
/// those rows, and hashes them as it goes.
async fn rows_written_during_a_rollout_are_found_and_hashed(f: Fixture) {
    (f.migrate)().await;
    previous_release_rows(&f.raw, OLD, 7).await;
    previous_release_rows(&f.raw, NEW, 8).await;
    assert_eq!(f.raw.tokens().await[0], (Some(OLD.to_owned()), None));

    let chat = f.store.chat_by_token(OLD, 1).await.unwrap().unwrap();
    assert_eq!(chat.application_id, 7);
    assert_eq!(
        f.raw.tokens().await[0],
        (Some(OLD.to_owned()), Some(token_hash(OLD)))
    );
    // Batched lookups take the same way past a miss.
    let both = f
        .store
        .chats_by_token(&[
            (OLD.to_owned(), 1),
            (NEW.to_owned(), 1),
            (NEW.to_owned(), 9),
        ])
        .await
        .unwrap();
    assert_eq!(
        both.iter()
            .map(|c| c.as_ref().map(|c| c.application_id))
            .collect::<Vec<_>>(),
        vec![Some(7), Some(8), None]
    );

    // Rows nobody looked up yet are hashed by `migrate` (and `--forget-plain-tokens`).
    previous_release_rows(&f.raw, "00000000000000000000000000000abc", 9).await;
    assert_eq!(f.store.hash_plain_tokens(100).await.unwrap(), 1);
    assert_eq!(f.store.hash_plain_tokens(100).await.unwrap(), 0);
    assert!(f.raw.tokens().await.iter().all(|(_, hash)| hash.is_some()));
}

async fn new_applications_store_only_the_hash(f: Fixture) {
    (f.migrate)().await;
    let app = f.store.insert_application(OLD, "new", now()).await.unwrap();
    assert_eq!(app.token, OLD);
    assert_eq!(f.raw.tokens().await, vec![(None, Some(token_hash(OLD)))]);
    let found = f.store.application_by_token(OLD).await.unwrap().unwrap();
    assert_eq!(found, app);
    assert!(matches!(
        f.store.insert_application(OLD, "again", now()).await,
        Err(chat_core::Error::Taken)
    ));
}

async fn rotation_replaces_the_token_and_nothing_else(f: Fixture) {
    (f.migrate)().await;
    let app = f
        .store
        .insert_application(OLD, "rotating", now())
        .await
        .unwrap();
    let chat = f.store.insert_chat(app.id, 1, now()).await.unwrap();
    f.store
        .insert_message(&chat, 1, "kept", now())
        .await
        .unwrap();

    let rotated = f
        .store
        .rotate_token(app.id, OLD, NEW, None, now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((rotated.id, rotated.token.as_str()), (app.id, NEW));
    assert!(f.store.application_by_token(OLD).await.unwrap().is_none());
    assert!(f.store.chat_by_token(OLD, 1).await.unwrap().is_none());
    let chat_now = f.store.chat_by_token(NEW, 1).await.unwrap().unwrap();
    assert_eq!(chat_now.id, chat.id);
    assert_eq!(
        f.store.message(chat.id, 1).await.unwrap().unwrap().body,
        "kept"
    );
    // Only the current token rotates.
    assert!(
        f.store
            .rotate_token(app.id, OLD, "11111111111111111111111111111111", None, now())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(f.raw.tokens().await, vec![(None, Some(token_hash(NEW)))]);
}

async fn a_rotated_token_works_until_its_grace_period_ends(f: Fixture) {
    (f.migrate)().await;
    let app = f
        .store
        .insert_application(OLD, "graceful", now())
        .await
        .unwrap();
    f.store.insert_chat(app.id, 1, now()).await.unwrap();
    let until = now() + chrono::Duration::milliseconds(1500);
    f.store
        .rotate_token(app.id, OLD, NEW, Some(until), now())
        .await
        .unwrap()
        .unwrap();
    let during = f.store.application_by_token(OLD).await.unwrap().unwrap();
    assert_eq!((during.id, during.token.as_str()), (app.id, OLD));
    assert!(f.store.chat_by_token(OLD, 1).await.unwrap().is_some());
    assert!(f.store.chat_by_token(NEW, 1).await.unwrap().is_some());
    // A grace-period token does not rotate again: the new one is the only current token.
    assert!(
        f.store
            .rotate_token(app.id, OLD, "22222222222222222222222222222222", None, now())
            .await
            .unwrap()
            .is_none()
    );
    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert!(f.store.application_by_token(OLD).await.unwrap().is_none());
    assert!(f.store.chat_by_token(OLD, 1).await.unwrap().is_none());
    assert!(f.store.application_by_token(NEW).await.unwrap().is_some());
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite_adapter { use super::*; $( #[tokio::test] async fn $case() { super::$case(sqlite().await).await } )* }
        mod mysql_adapter { use super::*; $( #[tokio::test] async fn $case() { super::$case(mysql().await).await } )* }
    };
}

conformance!(
    migration_hashes_previous_rows_and_keeps_them_addressable,
    rows_written_during_a_rollout_are_found_and_hashed,
    new_applications_store_only_the_hash,
    rotation_replaces_the_token_and_nothing_else,
    a_rotated_token_works_until_its_grace_period_ends,
);
