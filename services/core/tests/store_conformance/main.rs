//! One conformance suite for every storage adapter: SQLite and MySQL (real servers), one
//! module per store trait. Each module lists its cases once with `conformance!`, which runs
//! every case against each adapter (`<module>::sqlite_adapter::<case>`,
//! `<module>::mysql_adapter::<case>`).

use std::sync::Arc;
use std::time::Duration;

use chat_core::store::{MySqlStore, SqliteStore, Store};
use chat_core::testkit;

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

/// Runs each named case (an `async fn(Fixture)` of the invoking module) against both adapters.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite_adapter { $( #[tokio::test] async fn $case() { super::$case(crate::sqlite().await).await } )* }
        mod mysql_adapter { $( #[tokio::test] async fn $case() { super::$case(crate::mysql().await).await } )* }
    };
}

mod applications;
mod chats;
mod counts;
mod deletion;
mod health;
mod messages;
mod outbox;
mod scans;
mod state;

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
