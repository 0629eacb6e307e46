//! SQLite adapter: the embedded default, one file under `CHAT_DATA_DIR`.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Sqlite;
use sqlx::error::DatabaseError;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteError, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult,
    SqliteSynchronous,
};

use super::ApplicationStore;
use super::sql::{Dialect, Failure, Hinted, SqlStore};
use crate::error::{Error, Result};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// The embedded store: [`SqlStore`] over one SQLite file.
pub type SqliteStore = SqlStore<Sqlite>;

impl SqlStore<Sqlite> {
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
        Ok(SqlStore { pool })
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
        let forgotten = ApplicationStore::forget_plain_tokens(self).await?;
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
        super::sql::check_applied(&MIGRATOR, &mut *conn).await
    }
}

impl Dialect for Sqlite {
    fn last_insert_id(done: &SqliteQueryResult) -> i64 {
        done.last_insert_rowid()
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    /// Takes the write lock up front: a transaction that reads first and writes later can fail
    /// with SQLITE_BUSY in WAL mode, which no busy timeout waits out.
    async fn begin_write(
        pool: &sqlx::Pool<Sqlite>,
    ) -> std::result::Result<sqlx::Transaction<'static, Sqlite>, sqlx::Error> {
        pool.begin_with("BEGIN IMMEDIATE").await
    }

    fn hinted(statement: &Hinted) -> &'static str {
        statement.indexed_by
    }

    /// One writer at a time: SQLite cannot deadlock. Try again later: busy / locked (primary
    /// codes 5, 6, with any extended code).
    fn failure(err: &dyn DatabaseError) -> Option<Failure> {
        err.try_downcast_ref::<SqliteError>()?;
        err.code()
            .and_then(|code| code.parse::<i32>().ok())
            .filter(|code| matches!(code & 0xff, 5 | 6))
            .map(|_| Failure::Transient)
    }

    /// SQLite takes no `LIMIT` on `DELETE` (unless built with an option), but one in `IN`.
    const PURGE_OUTBOX_CHUNK: &'static str = "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox \
         WHERE published_at IS NOT NULL AND published_at < ? ORDER BY published_at, id LIMIT ?)";
    const PURGE_MESSAGES_CHUNK: &'static str = "DELETE FROM messages WHERE id IN \
         (SELECT id FROM messages WHERE chat_id = ? ORDER BY number LIMIT ?)";
    /// One process writes an SQLite file, and `BEGIN IMMEDIATE` already excludes other writers.
    const CLAIM_OUTBOX: &'static str =
        "SELECT id, payload FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT ?";
}
