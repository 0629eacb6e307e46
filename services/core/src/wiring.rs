//! Chooses and connects the adapters the settings ask for.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{Database, Settings};
use crate::error::{Error, Result};
use crate::numbers::{LocalNumbers, Numbers, RedisNumbers};
use crate::service::ChatService;
use crate::store::{MySqlStore, SqliteStore, Store};

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
    pub database: &'static str,
}

/// Opens the store and numbering the settings describe. A MySQL server that is down is not
/// an error here (the pool connects lazily and requests answer 503 until it is back).
pub async fn open(settings: &Settings, mysql_schema: Schema) -> Result<Backend> {
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
    let numbers: Arc<dyn Numbers> = match &settings.redis_url {
        Some(url) => Arc::new(
            RedisNumbers::connect(
                url,
                &settings.redis_prefix,
                Duration::from_millis(settings.redis_timeout_ms),
            )
            .await?,
        ),
        None => Arc::new(LocalNumbers::new()),
    };
    let service = ChatService::new(
        store.clone(),
        numbers.clone(),
        settings.max_body_bytes as usize,
    );
    Ok(Backend {
        service,
        store,
        numbers,
        database,
    })
}

/// Applies every pending migration and returns which database it migrated.
pub async fn migrate(settings: &Settings) -> Result<&'static str> {
    match settings.database()? {
        Database::MySql(url) => {
            let store = MySqlStore::connect_lazy(&url, 1, DB_ACQUIRE_TIMEOUT)?;
            store.migrate().await?;
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
