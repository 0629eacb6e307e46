//! SQLite adapter: the embedded default, one file under `CHAT_DATA_DIR`.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::common::impl_sql_store;
use crate::error::{Error, Result};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file. WAL with `synchronous=FULL`: a 201 means
    /// the row survives a power cut.
    pub async fn open(url: &str, pool_size: u32) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|err| Error::Config(format!("DATABASE_URL: {err}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(pool_size)
            .connect_with(options)
            .await?;
        Ok(SqliteStore { pool })
    }

    /// Applies pending migrations, then hashes plain tokens (SQL cannot, in SQLite; in MySQL it
    /// catches rows previous-release replicas wrote since).
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        let hashed = super::hash_all_plain_tokens(self).await?;
        if hashed > 0 {
            tracing::info!(hashed, "hashed plain tokens");
        }
        // One process owns an SQLite file, so no previous release still reads plain tokens.
        let forgotten = crate::store::Store::forget_plain_tokens(self).await?;
        if forgotten > 0 {
            tracing::info!(
                forgotten,
                "cleared plain tokens; only their hashes are stored"
            );
        }
        Ok(())
    }

    pub async fn check_schema(&self) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        super::check_applied(&MIGRATOR, &mut *conn).await
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// One process writes an SQLite file, and `BEGIN IMMEDIATE` already excludes other writers.
    const DIALECT: super::sql::Dialect = super::sql::Dialect::Sqlite;
    /// SQLite takes no `LIMIT` on `DELETE` (unless built with an option), but one in `IN`.
    const PURGE_OUTBOX_CHUNK: &'static str = "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox \
         WHERE published_at IS NOT NULL AND published_at < ? ORDER BY published_at, id LIMIT ?)";
    const CLAIM_OUTBOX: &'static str =
        "SELECT id, payload FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT ?";

    /// Takes the write lock up front: a transaction that reads first and writes later can fail
    /// with SQLITE_BUSY in WAL mode, which no busy timeout waits out.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        let started = std::time::Instant::now();
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await;
        // For SQLite this includes waiting for the write lock: the wait a create sees.
        crate::metrics::DB_ACQUIRE_SECONDS.observe(started.elapsed().as_secs_f64());
        Ok(tx?)
    }
}

impl_sql_store!(SqliteStore, sqlx::Sqlite, |done| done.last_insert_rowid());
