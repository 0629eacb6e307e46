//! Opens the request guards (rate limiter, idempotency store) on the backend the settings
//! name: one Redis connection shared by both, or in-process state.

use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use chat_core::config::Settings;
use chat_core::{Error, Result};

use crate::idempotency::{self, Idempotency};
use crate::limit::{self, Limiter};

pub fn open(settings: &Settings) -> Result<(Limiter, Idempotency)> {
    let (buckets, store) = match &settings.redis_url {
        Some(url) => {
            let conn = connect(url, Duration::from_millis(settings.redis_timeout_ms))?;
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
    let client =
        ::redis::Client::open(url).map_err(|err| Error::Config(format!("REDIS_URL: {err}")))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1);
    Ok(ConnectionManager::new_lazy_with_config(client, config)?)
}
