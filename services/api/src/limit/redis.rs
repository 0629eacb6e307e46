//! Buckets in Redis, shared by every api replica: one `EVALSHA` of `gcra.lua` per check.

use redis::Script;
use redis::aio::ConnectionManager;

use super::gcra::{Outcome, Quota};

pub struct RedisBuckets {
    conn: ConnectionManager,
    script: Script,
}

impl RedisBuckets {
    pub fn new(conn: ConnectionManager) -> Self {
        RedisBuckets {
            conn,
            script: Script::new(include_str!("gcra.lua")),
        }
    }

    pub async fn take(&self, key: &str, quota: Quota) -> redis::RedisResult<Outcome> {
        let mut conn = self.conn.clone();
        let (allowed, ahead_us): (i64, i64) = self
            .script
            .key(key)
            .arg(quota.interval_us)
            .arg(quota.burst)
            .invoke_async(&mut conn)
            .await?;
        Ok(Outcome {
            allowed: allowed == 1,
            ahead_us,
        })
    }
}
