//! MySQL / MariaDB adapter: the production store.

use std::str::FromStr;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};

use super::common::impl_sql_store;
use crate::error::{Error, Result};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/mysql");

#[derive(Clone)]
pub struct MySqlStore {
    pool: MySqlPool,
}

impl MySqlStore {
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
        Ok(MySqlStore { pool })
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
        super::check_applied(&MIGRATOR, &mut *conn).await
    }

    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// Several relays share the outbox: each takes rows no other one holds, without waiting.
    const DIALECT: super::sql::Dialect = super::sql::Dialect::MySql;
    /// MySQL takes no `LIMIT` in an `IN` subquery, but one on `DELETE`.
    const PURGE_OUTBOX_CHUNK: &'static str = "DELETE FROM outbox \
         WHERE published_at IS NOT NULL AND published_at < ? ORDER BY published_at, id LIMIT ?";
    const CLAIM_OUTBOX: &'static str = "SELECT id, payload FROM outbox WHERE published_at IS NULL \
         ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED";

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::MySql>> {
        let started = std::time::Instant::now();
        let tx = self.pool.begin().await;
        crate::metrics::DB_ACQUIRE_SECONDS.observe(started.elapsed().as_secs_f64());
        Ok(tx?)
    }
}

impl_sql_store!(MySqlStore, sqlx::MySql, |done| done.last_insert_id() as i64);
