//! Opens the request guards (rate limiter, idempotency store) on the backend the settings
//! name: one Redis connection shared by both, or in-process state.

use std::time::Duration;

use ::redis::aio::ConnectionManager;
use chat_core::Result;
use chat_core::config::Settings;

use crate::idempotency::{self, Idempotency};
use crate::limit::{self, Limiter};

pub fn open(settings: &Settings) -> Result<(Limiter, Idempotency)> {
    let (buckets, store) = match settings.redis() {
        Some(url) => {
            let conn = connect(&url, Duration::from_millis(settings.redis_timeout_ms))?;
            (
                limit::Buckets::Redis(limit::redis::RedisBuckets::new(conn.clone())),
                idempotency::Store::Redis(idempotency::redis::RedisStore::new(conn)),
            )
        }
        None => (
            limit::Buckets::Local(limit::local::LocalBuckets::default()),
            idempotency::Store::Local(idempotency::local::LocalStore::new(
                idempotency::LOCAL_CAPACITY,
                idempotency::LOCAL_BUDGET_BYTES,
            )),
        ),
    };
    Ok((
        Limiter::new(buckets, settings),
        Idempotency::new(store, settings),
    ))
}

/// Lazy, like the numbering's connection: a Redis outage at start-up is not fatal, calls fail
/// fast and the manager reconnects when Redis is back.
pub fn connect(url: &str, timeout: Duration) -> Result<ConnectionManager> {
    chat_core::redis_conn::connect(url, timeout, timeout)
}
