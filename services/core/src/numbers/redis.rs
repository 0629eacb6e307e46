//! Redis numbering, shared by every api replica: `INCR` on the seed's keys, driven by two small
//! Lua scripts so "increment only if known" and "raise then increment" are each one atomic step.

use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use redis::aio::ConnectionManager;

use super::Numbers;
use crate::domain::Sequence;
use crate::error::Result;
use crate::redis_conn::failed;

/// `INCR` would silently restart a lost counter at 1 and collide with every stored number, so
/// an unknown key answers nil and the service seeds it from the database instead.
const NEXT_IF_KNOWN: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('INCR', KEYS[1])
end
return false
";

/// Never lowers the counter: a stale floor read by a slow replica cannot hand out used numbers.
const NEXT_ABOVE: &str = r"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = tonumber(ARGV[1])
if current < floor then
  redis.call('SET', KEYS[1], floor)
end
return redis.call('INCR', KEYS[1])
";

#[derive(Clone)]
pub struct RedisNumbers {
    conn: ConnectionManager,
    prefix: String,
    next_if_known: Script,
    next_above: Script,
}

impl RedisNumbers {
    /// Connects lazily in the background: a Redis outage makes numbering calls fail fast with
    /// [`crate::Error::RedisUnavailable`] and the manager reconnects when Redis is back.
    pub async fn connect(url: &str, prefix: &str, timeout: Duration) -> Result<Self> {
        let conn = crate::redis_conn::connect(url, timeout, timeout)?;
        Ok(RedisNumbers {
            conn,
            prefix: prefix.to_owned(),
            next_if_known: Script::new(NEXT_IF_KNOWN),
            next_above: Script::new(NEXT_ABOVE),
        })
    }

    /// The seed's key names, under the configured prefix.
    pub fn key(&self, sequence: Sequence) -> String {
        match sequence {
            Sequence::Chats { application_id } => {
                format!("{}chat_app:{application_id}:chat_counter", self.prefix)
            }
            Sequence::Messages { chat_id } => {
                format!("{}chat:{chat_id}:message_counter", self.prefix)
            }
        }
    }
}

#[async_trait]
impl Numbers for RedisNumbers {
    async fn next(&self, sequence: Sequence) -> Result<Option<i64>> {
        let mut conn = self.conn.clone();
        Ok(self
            .next_if_known
            .key(self.key(sequence))
            .invoke_async(&mut conn)
            .await
            .map_err(failed)?)
    }

    async fn next_above(&self, sequence: Sequence, floor: i64) -> Result<i64> {
        let mut conn = self.conn.clone();
        Ok(self
            .next_above
            .key(self.key(sequence))
            .arg(floor)
            .invoke_async(&mut conn)
            .await
            .map_err(failed)?)
    }

    async fn ping(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}
