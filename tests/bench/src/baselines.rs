//! Same-run baselines: an axum no-op POST endpoint (the HTTP limit), single-row autocommit
//! INSERTs by a direct sqlx client (the storage limit of the naive design, plus a 100-row
//! multi-row INSERT for scale), and Redis INCR round trips (unpipelined and pipelined).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::{get, post};
use sqlx::Connection;
use sqlx::mysql::{MySqlConnection, MySqlPoolOptions};

use crate::load::{Outcome, Rng, Worker};

/// The message body every create scenario (and the baselines) sends.
pub const MESSAGE_BODY: &str =
    "the quick brown fox jumps over the lazy dog while the weekly meeting runs late";

/// About what a create-message answer weighs.
const NOOP_RESPONSE: &str = r#"{"number":1,"body":"the quick brown fox jumps over the lazy dog while the weekly meeting runs late","created_at":"2026-12-01T06:43:10.960417Z","updated_at":"2026-12-01T06:43:10.960417Z"}"#;

/// `chat-bench noop-server --port N`: POST /noop answers 201 with a small JSON body, GET
/// /readyz answers 200. Runs on a default multi-threaded runtime, like chat-system.
pub fn noop_server(port: u16) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let app = Router::new()
            .route(
                "/noop",
                post(|_body: bytes::Bytes| async {
                    (
                        StatusCode::CREATED,
                        [(header::CONTENT_TYPE, "application/json")],
                        NOOP_RESPONSE,
                    )
                }),
            )
            .route("/readyz", get(|| async { "ok" }));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        axum::serve(listener, app).await?;
        anyhow::Ok(())
    })
}

pub const BENCH_CHATS: i64 = 1000;

/// A database of its own with `bench_chats` and `bench_messages` shaped like `messages`
/// (same columns, unique key, foreign key and charset).
pub async fn prepare_insert_db(url_base: &str, db: &str) -> anyhow::Result<String> {
    let mut conn = MySqlConnection::connect(url_base).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS `{db}`"
    )))
    .execute(&mut conn)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
    )))
    .execute(&mut conn)
    .await?;
    let url = format!("{}/{db}", url_base.trim_end_matches('/'));
    let mut conn = MySqlConnection::connect(&url).await?;
    sqlx::query(
        "CREATE TABLE bench_chats (
            id     BIGINT NOT NULL AUTO_INCREMENT,
            number BIGINT NOT NULL,
            PRIMARY KEY (id)
        ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin",
    )
    .execute(&mut conn)
    .await?;
    sqlx::query(
        "CREATE TABLE bench_messages (
            id         BIGINT      NOT NULL AUTO_INCREMENT,
            chat_id    BIGINT      NOT NULL,
            number     BIGINT      NOT NULL,
            body       MEDIUMTEXT  NOT NULL,
            created_at DATETIME(6) NOT NULL,
            updated_at DATETIME(6) NOT NULL,
            version    BIGINT      NOT NULL DEFAULT 1,
            PRIMARY KEY (id),
            UNIQUE KEY uniq_bench_messages_chat_number (chat_id, number),
            CONSTRAINT fk_bench_messages_chat FOREIGN KEY (chat_id) REFERENCES bench_chats (id)
        ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin",
    )
    .execute(&mut conn)
    .await?;
    let values: Vec<String> = (1..=BENCH_CHATS).map(|n| format!("({n})")).collect();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO bench_chats (number) VALUES {}",
        values.join(",")
    )))
    .execute(&mut conn)
    .await?;
    Ok(url)
}

pub struct InsertWorker {
    conn: sqlx::pool::PoolConnection<sqlx::MySql>,
    rng: Rng,
    next: Arc<AtomicI64>,
    rows: usize,
    sql: Arc<String>,
}

impl InsertWorker {
    pub async fn many(url: &str, n: usize, rows: usize) -> anyhow::Result<Vec<InsertWorker>> {
        let pool = MySqlPoolOptions::new()
            .max_connections(n as u32)
            .connect(url)
            .await?;
        // Each run starts on an empty table: numbers restart at 1, and a table already holding
        // the previous run's rows would make the two runs unequal.
        sqlx::query("TRUNCATE TABLE bench_messages")
            .execute(&pool)
            .await?;
        let next = Arc::new(AtomicI64::new(1));
        let tuple = "(?, ?, ?, ?, ?)";
        let sql = Arc::new(format!(
            "INSERT INTO bench_messages (chat_id, number, body, created_at, updated_at) VALUES {}",
            vec![tuple; rows].join(", ")
        ));
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            workers.push(InsertWorker {
                conn: pool.acquire().await?,
                rng: Rng::new(1000 + i as u64),
                next: next.clone(),
                rows,
                sql: sql.clone(),
            });
        }
        Ok(workers)
    }
}

impl Worker for InsertWorker {
    async fn call(&mut self) -> Outcome {
        let now = chrono::Utc::now();
        let first = self.next.fetch_add(self.rows as i64, Ordering::Relaxed);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(self.sql.as_str()));
        for i in 0..self.rows as i64 {
            let chat = 1 + self.rng.below(BENCH_CHATS as u64) as i64;
            query = query
                .bind(chat)
                .bind(first + i)
                .bind(MESSAGE_BODY)
                .bind(now)
                .bind(now);
        }
        match query.execute(&mut *self.conn).await {
            Ok(_) => Outcome::Ok,
            Err(err) => Outcome::Error(format!("INSERT: {err}")),
        }
    }
}

pub struct IncrWorker {
    conn: redis::aio::MultiplexedConnection,
    rng: Rng,
    keys: Arc<Vec<String>>,
    pipeline: usize,
}

impl IncrWorker {
    /// `n` workers, each on a connection of its own; `pipeline` INCRs per round trip.
    pub async fn many(
        url: &str,
        prefix: &str,
        n: usize,
        pipeline: usize,
    ) -> anyhow::Result<Vec<IncrWorker>> {
        let client = redis::Client::open(url)?;
        let keys: Arc<Vec<String>> =
            Arc::new((0..1000).map(|i| format!("{prefix}incr:{i}")).collect());
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            workers.push(IncrWorker {
                conn: client.get_multiplexed_async_connection().await?,
                rng: Rng::new(5000 + i as u64),
                keys: keys.clone(),
                pipeline,
            });
        }
        Ok(workers)
    }
}

impl Worker for IncrWorker {
    async fn call(&mut self) -> Outcome {
        let result = if self.pipeline == 1 {
            let key = &self.keys[self.rng.below(self.keys.len() as u64) as usize];
            redis::cmd("INCR")
                .arg(key)
                .query_async::<i64>(&mut self.conn)
                .await
                .map(drop)
        } else {
            let mut pipe = redis::pipe();
            for _ in 0..self.pipeline {
                let key = &self.keys[self.rng.below(self.keys.len() as u64) as usize];
                pipe.cmd("INCR").arg(key);
            }
            pipe.query_async::<Vec<i64>>(&mut self.conn).await.map(drop)
        };
        match result {
            Ok(()) => Outcome::Ok,
            Err(err) => Outcome::Error(format!("INCR: {err}")),
        }
    }
}
