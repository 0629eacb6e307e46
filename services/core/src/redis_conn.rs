//! The one way every Redis adapter connects.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError};

use crate::error::{Error, Result};

/// A lazily connecting manager: a Redis outage at start-up is not fatal, calls fail fast with
/// [`Error::RedisUnavailable`] and the manager reconnects when Redis is back. `response` is
/// the longest a call may wait for its answer (a blocking read needs its block time on top).
pub fn connect(url: &str, timeout: Duration, response: Duration) -> Result<ConnectionManager> {
    let client = Client::open(url).map_err(|err| Error::Config(format!("REDIS_URL: {err}")))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(response))
        .set_number_of_retries(1);
    ConnectionManager::new_lazy_with_config(client, config).map_err(failed)
}

/// A failed Redis call as the core's error, counted in `chat_redis_errors_total`: every Redis
/// adapter maps the failures of its calls through this (`.map_err(failed)`), so the count
/// covers them all. Replies a caller handles itself (a missing group it then creates) are not
/// failures and do not come here.
pub fn failed(err: RedisError) -> Error {
    crate::metrics::REDIS_ERRORS.inc();
    Error::RedisUnavailable(err.to_string())
}
