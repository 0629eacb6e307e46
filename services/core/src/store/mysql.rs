//! MySQL / MariaDB adapter: the production store.

use std::str::FromStr;
use std::time::Duration;

use sqlx::MySql;
use sqlx::error::DatabaseError;
use sqlx::mysql::{MySqlConnectOptions, MySqlDatabaseError, MySqlPoolOptions, MySqlQueryResult};

use super::sql::{Dialect, Failure, Hinted, SqlStore};
use crate::error::{Error, Result};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/mysql");

/// The production store: [`SqlStore`] over MySQL / MariaDB.
pub type MySqlStore = SqlStore<MySql>;

impl SqlStore<MySql> {
    /// Builds the pool without connecting, so a process starts (and answers 503) while the
    /// database is still down, and recovers by itself when it comes up.
    pub fn connect_lazy(url: &str, pool_size: u32, acquire_timeout: Duration) -> Result<Self> {
        let options = MySqlConnectOptions::from_str(url)
            .map_err(|err| Error::Config(format!("DATABASE_URL: {err}")))?
            .charset("utf8mb4")
            // Room for every statement shape (batched statements take a few per kind; see
            // `coalesce.rs`): an eviction stalls the next query on a delayed ACK.
            .statement_cache_capacity(256);
        let pool = MySqlPoolOptions::new()
            .max_connections(pool_size)
            .acquire_timeout(acquire_timeout)
            .test_before_acquire(true)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    // READ COMMITTED: the relay's `FOR UPDATE SKIP LOCKED` then locks only the
                    // rows it claims, not the gap new outbox rows go into, so writes never wait
                    // on a relay talking to Redis. A short lock wait keeps every create well
                    // inside the counter's settle window.
                    sqlx::query("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("SET SESSION innodb_lock_wait_timeout = 10")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .connect_lazy_with(options);
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
        Ok(())
    }

    /// Fails unless every migration this release ships has been applied.
    pub async fn check_schema(&self) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        super::sql::check_applied(&MIGRATOR, &mut *conn).await
    }
}

impl Dialect for MySql {
    fn last_insert_id(done: &MySqlQueryResult) -> i64 {
        done.last_insert_id() as i64
    }

    fn rows_affected(done: &MySqlQueryResult) -> u64 {
        done.rows_affected()
    }

    /// A plain `BEGIN`: InnoDB's row locks order the writers.
    async fn begin_write(
        pool: &sqlx::Pool<MySql>,
    ) -> std::result::Result<sqlx::Transaction<'static, MySql>, sqlx::Error> {
        pool.begin().await
    }

    fn hinted(statement: &Hinted) -> &'static str {
        statement.force_index
    }

    /// Deadlock victim: 1213. Try again later: too many connections (1040), server shutdown
    /// (1053), lock wait timeout (1205), read-only (1290, 1836).
    fn failure(err: &dyn DatabaseError) -> Option<Failure> {
        match err.try_downcast_ref::<MySqlDatabaseError>()?.number() {
            1213 => Some(Failure::Deadlock),
            1040 | 1053 | 1205 | 1290 | 1836 => Some(Failure::Transient),
            _ => None,
        }
    }

    /// MySQL takes no `LIMIT` in an `IN` subquery, but one on `DELETE`.
    const PURGE_OUTBOX_CHUNK: &'static str = "DELETE FROM outbox \
         WHERE published_at IS NOT NULL AND published_at < ? ORDER BY published_at, id LIMIT ?";
    /// Purges a hidden chat's messages in chunks, walking its `(chat_id, number)` index.
    const PURGE_MESSAGES_CHUNK: &'static str =
        "DELETE FROM messages WHERE chat_id = ? ORDER BY number LIMIT ?";
    /// Several relays share the outbox: each takes rows no other one holds, without waiting.
    const CLAIM_OUTBOX: &'static str = "SELECT id, payload FROM outbox WHERE published_at IS NULL \
         ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED";
}
