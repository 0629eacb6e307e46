//! The one way every Redis adapter connects.

use std::time::Duration;

use redis::Client;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

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
    Ok(ConnectionManager::new_lazy_with_config(client, config)?)
}
