//! Idempotency keys in Redis, shared by every replica: `SET NX PX` claims a key with an
//! in-flight marker, then the marker is swapped for the response (compare-and-set in Lua, so a
//! request whose marker expired cannot overwrite the one that took over).

use redis::Script;
use redis::aio::ConnectionManager;

use super::store::{Entry, Unavailable};

const BEGIN: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return false
end
return redis.call('GET', KEYS[1])
";

const FINISH: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

const ABANDON: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

pub struct RedisStore {
    conn: ConnectionManager,
    begin: Script,
    finish: Script,
    abandon: Script,
}

fn encode(entry: &Entry) -> String {
    serde_json::to_string(entry).expect("entries serialise")
}

fn unavailable(err: redis::RedisError) -> Unavailable {
    Unavailable(err.to_string())
}

impl RedisStore {
    pub fn new(conn: ConnectionManager) -> Self {
        RedisStore {
            conn,
            begin: Script::new(BEGIN),
            finish: Script::new(FINISH),
            abandon: Script::new(ABANDON),
        }
    }

    pub async fn begin(
        &self,
        key: &str,
        marker: &Entry,
        in_flight_ms: u64,
    ) -> Result<Option<Entry>, Unavailable> {
        let mut conn = self.conn.clone();
        let existing: Option<String> = self
            .begin
            .key(key)
            .arg(encode(marker))
            .arg(in_flight_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        existing
            .map(|text| {
                serde_json::from_str(&text)
                    .map_err(|err| Unavailable(format!("unreadable entry at {key}: {err}")))
            })
            .transpose()
    }

    pub async fn finish(
        &self,
        key: &str,
        marker: &Entry,
        done: &Entry,
        ttl_ms: u64,
    ) -> Result<(), Unavailable> {
        let mut conn = self.conn.clone();
        let _: i64 = self
            .finish
            .key(key)
            .arg(encode(marker))
            .arg(encode(done))
            .arg(ttl_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    pub async fn abandon(&self, key: &str, marker: &Entry) -> Result<(), Unavailable> {
        let mut conn = self.conn.clone();
        let _: i64 = self
            .abandon
            .key(key)
            .arg(encode(marker))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
