//! Chooses and connects the adapters the settings ask for.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{Database, Settings};
use crate::error::{Error, Result};
use crate::feed::{Feed, Hub, LocalFeed, RedisFeed, Retention, StreamSettings, Tee};
use tokio::sync::Notify;

use crate::numbers::{LocalNumbers, Numbers, RedisNumbers};
use crate::queue::{LocalQueue, Queue, RedisQueue};
use crate::search::SearchIndex;
use crate::service::ChatService;
use crate::store::{ApplicationStore, MySqlStore, SqliteStore, Store};
use crate::workers::relay::Relay;
use crate::workers::{ConsumerConfig, counter::Counter, indexer::Indexer, purge::Purge};

/// How long a request waits for a database connection before answering 503.
const DB_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether opening the store may change the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// Apply pending migrations (`migrate`, and embedded SQLite, which has no separate step).
    Migrate,
    /// Refuse to start on a schema older than this release (MySQL `api`: migrations are a
    /// separate, one-shot step in production).
    Check,
}

pub struct Backend {
    pub service: ChatService,
    pub store: Arc<dyn Store>,
    pub numbers: Arc<dyn Numbers>,
    /// The queue the relay publishes to (in-process: also the one workers read).
    pub queue: Arc<dyn Queue>,
    pub search: Arc<dyn SearchIndex>,
    /// The chats' event logs live streams are served from.
    pub feed: Arc<dyn Feed>,
    /// This process's live subscriptions (one per process).
    pub streams: Arc<Hub>,
    pub wrote: Arc<Notify>,
    pub database: &'static str,
    settings: Settings,
}

impl Backend {
    /// A queue handle for one worker: Redis blocking reads need a connection of their own; the
    /// in-process queue is shared.
    pub async fn worker_queue(&self) -> Result<Arc<dyn Queue>> {
        match self.settings.redis() {
            Some(url) => Ok(Arc::new(
                RedisQueue::connect(&url, &self.settings.redis_prefix, self.redis_timeout())
                    .await?,
            )),
            None => Ok(self.queue.clone()),
        }
    }

    fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.settings.redis_timeout_ms)
    }

    fn consumer(&self, role: &str) -> ConsumerConfig {
        ConsumerConfig {
            consumer: ConsumerConfig::consumer_name(role),
            claim_idle: Duration::from_millis(self.settings.queue_claim_idle_ms),
            max_attempts: self.settings.queue_max_attempts,
        }
    }

    pub fn relay(&self) -> Relay {
        Relay {
            outbox: self.store.clone(),
            state: self.store.clone(),
            // What goes to the queue goes to the chats' logs too, in the same order.
            queue: Arc::new(Tee::new(self.queue.clone(), self.feed.clone())),
            wake: self.wrote.clone(),
            retention: Duration::from_secs(self.settings.outbox_retention_s),
        }
    }

    pub async fn counter(&self) -> Result<Counter> {
        Ok(Counter {
            store: self.store.clone(),
            queue: self.worker_queue().await?,
            config: self.consumer("counter"),
            flush_every: Duration::from_millis(self.settings.counter_flush_ms),
        })
    }

    /// The purge of deleted chats and applications; runs wherever the counter runs.
    pub fn purge(&self) -> Purge {
        Purge::new(
            self.store.clone(),
            self.search.clone(),
            Duration::from_secs(self.settings.purge_grace_s),
        )
    }

    pub async fn indexer(&self) -> Result<Indexer> {
        Ok(Indexer {
            index: self.search.clone(),
            queue: self.worker_queue().await?,
            config: self.consumer("indexer"),
            batch: self.settings.indexer_batch as usize,
            flush_after: Duration::from_millis(self.settings.indexer_flush_ms),
        })
    }
}

/// Opens the store, numbering and queue the settings describe, around the given search index
/// (its adapters live in the `chat-search` crate). A MySQL server that is down is not an error
/// here (the pool connects lazily and requests answer 503 until it is back).
pub async fn open(
    settings: &Settings,
    mysql_schema: Schema,
    search: Arc<dyn SearchIndex>,
) -> Result<Backend> {
    let (store, database): (Arc<dyn Store>, _) = match settings.database()? {
        Database::MySql(url) => {
            let store = MySqlStore::connect_lazy(&url, settings.db_pool, DB_ACQUIRE_TIMEOUT)?;
            let prepared = match mysql_schema {
                Schema::Migrate => store.migrate().await,
                Schema::Check => store.check_schema().await,
            };
            match prepared {
                Ok(()) => {}
                Err(Error::DatabaseUnavailable(reason)) if mysql_schema == Schema::Check => {
                    tracing::warn!(%reason, "database unreachable at start-up; serving 503 until it is back");
                }
                Err(err) => return Err(err),
            }
            (Arc::new(store), "mysql")
        }
        Database::Sqlite(url) => {
            create_parent_dir(&url)?;
            let store = SqliteStore::open(&url, settings.db_pool).await?;
            store.migrate().await?;
            (Arc::new(store), "sqlite")
        }
    };
    let timeout = Duration::from_millis(settings.redis_timeout_ms);
    let redis_url = settings.redis();
    if let Some(url) = &redis_url {
        // A certificate that does not verify is a configuration error, not an outage to wait out.
        crate::redis_conn::verify_certificate(url, timeout).await?;
    }
    let (numbers, queue): (Arc<dyn Numbers>, Arc<dyn Queue>) = match &redis_url {
        Some(url) => (
            Arc::new(RedisNumbers::connect(url, &settings.redis_prefix, timeout).await?),
            Arc::new(RedisQueue::connect(url, &settings.redis_prefix, timeout).await?),
        ),
        None => (Arc::new(LocalNumbers::new()), Arc::new(LocalQueue::new())),
    };
    let retention = Retention {
        max_len: settings.feed_max_len,
        max_age: Duration::from_secs(settings.feed_max_age_s),
    };
    let feed: Arc<dyn Feed> = match &redis_url {
        Some(url) => {
            Arc::new(RedisFeed::connect(url, &settings.redis_prefix, timeout, retention).await?)
        }
        None => Arc::new(LocalFeed::new(retention)),
    };
    let streams = Hub::new(
        feed.clone(),
        StreamSettings {
            buffer: settings.stream_buffer as usize,
            per_token: settings.streams_per_token as usize,
        },
    );
    let wrote = Arc::new(Notify::new());
    let service = ChatService::new(
        store.clone(),
        numbers.clone(),
        search.clone(),
        wrote.clone(),
        settings.max_body_bytes as usize,
        // A quarter of the pool each for creates and lookups leaves room for everything else.
        (settings.db_pool as usize / 4).max(1),
    )
    .with_token_grace(Duration::from_secs(settings.token_grace_s));
    Ok(Backend {
        service,
        store,
        numbers,
        queue,
        search,
        feed,
        streams,
        wrote,
        database,
        settings: settings.clone(),
    })
}

/// Applies every pending migration and returns which database it migrated.
/// `forget_plain_tokens`: the contract step of hashed tokens (see `ApplicationStore::forget_plain_tokens`).
pub async fn migrate(settings: &Settings, forget_plain_tokens: bool) -> Result<&'static str> {
    match settings.database()? {
        Database::MySql(url) => {
            let store = MySqlStore::connect_lazy(&url, 1, DB_ACQUIRE_TIMEOUT)?;
            store.migrate().await?;
            if forget_plain_tokens {
                let forgotten = ApplicationStore::forget_plain_tokens(&store).await?;
                tracing::info!(
                    forgotten,
                    "cleared plain tokens; only their hashes are stored"
                );
            }
            Ok("mysql")
        }
        Database::Sqlite(url) => {
            create_parent_dir(&url)?;
            SqliteStore::open(&url, 1).await?.migrate().await?;
            Ok("sqlite")
        }
    }
}

/// SQLite creates the file but not its directory; the embedded default lives in `./data`.
fn create_parent_dir(url: &str) -> Result<()> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    if let Some(dir) = std::path::Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(|err| {
            Error::Config(format!(
                "DATABASE_URL: cannot create directory {}: {err}",
                dir.display()
            ))
        })?;
    }
    Ok(())
}
