//! Test helpers shared by this workspace's suites: each test gets its own MySQL database and
//! its own Redis key prefix on the real servers, so tests run in parallel without touching
//! each other. Server addresses come from `CHAT_TEST_MYSQL_URL` / `CHAT_TEST_REDIS_URL`
//! (`make test` sets them), defaulting to the local services.

pub mod tls;

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;
use sqlx::mysql::MySqlConnection;

pub fn mysql_server_url() -> String {
    std::env::var("CHAT_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

pub fn redis_url() -> String {
    std::env::var("CHAT_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A name no other test (or concurrent test binary) uses: process id, a counter, randomness.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let mut random = [0u8; 4];
    getrandom::fill(&mut random).expect("OS random source");
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        hex::encode(random)
    )
}

/// A fresh, empty MySQL database, dropped when the value is dropped.
pub struct TestDatabase {
    pub url: String,
    name: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let server = mysql_server_url();
        let name = unique_name("chat_test");
        let mut conn = MySqlConnection::connect(&server)
            .await
            .unwrap_or_else(|err| {
                panic!("MySQL at {server} is needed by this test (run `make test`): {err}")
            });
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        )))
        .execute(&mut conn)
        .await
        .expect("create test database");
        TestDatabase {
            url: format!("{}/{name}", server.trim_end_matches('/')),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let server = mysql_server_url();
        let name = std::mem::take(&mut self.name);
        // Drop runs inside the test's runtime, which cannot block on itself: use a thread.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime
                .block_on(async {
                    let mut conn = MySqlConnection::connect(&server).await?;
                    // The test's pool may still hold a connection whose transaction a
                    // cancelled task dropped (sqlx rolls it back only when the connection is
                    // next used): its metadata locks would make DROP DATABASE wait forever.
                    // The connections are this test's own, so end them first.
                    let ids: Vec<u64> = sqlx::query_scalar(
                        "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()",
                    )
                    .bind(&name)
                    .fetch_all(&mut conn)
                    .await?;
                    for id in ids {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("KILL CONNECTION {id}")))
                            .execute(&mut conn)
                            .await;
                    }
                    sqlx::query("SET SESSION lock_wait_timeout = 30")
                        .execute(&mut conn)
                        .await?;
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS `{name}`"
                    )))
                    .execute(&mut conn)
                    .await?;
                    Ok::<_, sqlx::Error>(())
                })
                .map_err(std::io::Error::other)
        })
        .join();
    }
}

/// A Redis key prefix of its own for one test.
pub fn redis_prefix() -> String {
    format!("{}:", unique_name("chat_test"))
}

/// Deletes every key under `prefix`: what a Redis restart does to this test's data, without
/// touching anyone else's.
pub async fn wipe_redis_prefix(url: &str, prefix: &str) -> redis::RedisResult<usize> {
    delete_redis_keys(url, &format!("{prefix}*")).await
}

/// Deletes every key matching the `SCAN` pattern; answers how many.
pub async fn delete_redis_keys(url: &str, pattern: &str) -> redis::RedisResult<usize> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    loop {
        // Large pages: the shared Redis holds other tests' keys too, and a slow scan would let
        // the moment a test wants to wipe at pass.
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(10_000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            let n: usize = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await?;
            deleted += n;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

/// Removes a test's Redis keys when it ends (from `Drop`, so on a thread of its own).
pub fn forget_redis_prefix(prefix: String) {
    let _ = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime
            .block_on(wipe_redis_prefix(&redis_url(), &prefix))
            .map_err(std::io::Error::other)?;
        Ok::<_, std::io::Error>(())
    })
    .join();
}
