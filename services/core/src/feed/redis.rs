//! Redis feed: one stream per chat, so every api replica can follow any chat.
//!
//! Keys (under the configured prefix): `chat:feed:<chat id>` (the log; fields `t` type, `p` the
//! previous entry's id, `o` the log's origin, `k` the event key, `d` the public JSON), `chat:feed:<chat id>:keys` (a sorted set of the
//! event keys appended, scored by time, for the duplicate check), and one
//! `chat:feed:wake:<random>` per process, which [`Feed::interrupt`] writes to so the blocking
//! multi-key read returns and starts again with new keys. Both per-chat keys expire after twice
//! the age cap without appends.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use redis::aio::ConnectionManager;
use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};

use super::{Append, Entry, EntryId, Feed, Retention};
use crate::error::Result;
use crate::redis_conn::failed;

/// Appends each item unless its key is known, with the id before it, then trims by length and
/// age and pushes the expiry forward. Atomic, so a concurrent append cannot slip between
/// reading the previous id and adding.
const APPEND: &str = r"
local max_len = ARGV[1]
local age = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cutoff = now - age
local out = {}
for i = 1, #KEYS / 2 do
  local log, keys = KEYS[2 * i - 1], KEYS[2 * i]
  local kind, key, data = ARGV[3 * i], ARGV[3 * i + 1], ARGV[3 * i + 2]
  if redis.call('ZSCORE', keys, key) then
    out[i] = false
  else
    local prev, origin = '0-0', nil
    local last = redis.call('XREVRANGE', log, '+', '-', 'COUNT', 1)
    if last[1] then
      prev = last[1][1]
      local fields = last[1][2]
      for j = 1, #fields, 2 do
        if fields[j] == 'o' then origin = fields[j + 1] end
      end
    end
    -- No last entry: the key does not exist (the newest entry is never trimmed), so this one
    -- starts an incarnation and is its own origin; any id is valid, the clock's is chosen.
    local next_id = '*'
    if not origin then
      next_id = now .. '-0'
      origin = next_id
    end
    local id = redis.call('XADD', log, 'MAXLEN', '~', max_len, next_id, 't', kind, 'p', prev, 'o', origin, 'k', key, 'd', data)
    redis.call('XTRIM', log, 'MINID', '~', cutoff)
    redis.call('ZADD', keys, now, key)
    redis.call('ZREMRANGEBYSCORE', keys, '-inf', '(' .. (cutoff - age))
    redis.call('PEXPIRE', log, age * 2)
    redis.call('PEXPIRE', keys, age * 2)
    out[i] = id
  end
end
return out
";

pub struct RedisFeed {
    conn: ConnectionManager,
    /// The blocking read holds its connection until data arrives: never shared.
    blocking: ConnectionManager,
    prefix: String,
    wake: String,
    /// The last wake entry the follower saw.
    woken: Mutex<String>,
    retention: Retention,
    script: Script,
}

impl RedisFeed {
    pub async fn connect(
        url: &str,
        prefix: &str,
        timeout: Duration,
        retention: Retention,
    ) -> Result<Self> {
        let conn = crate::redis_conn::connect(url, timeout, timeout)?;
        let blocking = crate::redis_conn::connect(url, timeout, timeout + Duration::from_secs(30))?;
        let mut random = [0u8; 8];
        let _ = getrandom::fill(&mut random);
        Ok(RedisFeed {
            conn,
            blocking,
            prefix: format!("{prefix}chat:feed:"),
            wake: format!("{prefix}chat:feed:wake:{}", hex::encode(random)),
            woken: Mutex::new("0-0".into()),
            retention,
            script: Script::new(APPEND),
        })
    }

    fn log_key(&self, chat_id: i64) -> String {
        format!("{}{chat_id}", self.prefix)
    }

    fn chat_of(&self, key: &str) -> Option<i64> {
        key.strip_prefix(&self.prefix)?.parse().ok()
    }
}

fn entry(raw: &StreamId) -> Option<Entry> {
    Some(Entry {
        id: raw.id.parse().ok()?,
        prev: raw.get::<String>("p")?.parse().ok()?,
        origin: raw.get::<String>("o")?.parse().ok()?,
        key: raw.get("k")?,
        kind: raw.get("t")?,
        data: raw.get("d")?,
    })
}

fn entries(ids: &[StreamId]) -> Vec<Entry> {
    // An entry without our fields was not written by us: skipped rather than served garbled.
    ids.iter().filter_map(entry).collect()
}

#[async_trait]
impl Feed for RedisFeed {
    async fn append(&self, items: &[Append]) -> Result<Vec<Option<EntryId>>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.script.prepare_invoke();
        invocation
            .arg(self.retention.max_len)
            .arg(self.retention.max_age.as_millis() as u64);
        for item in items {
            let log = self.log_key(item.chat_id);
            invocation.key(&log).key(format!("{log}:keys"));
            invocation.arg(&item.kind).arg(&item.key).arg(&item.data);
        }
        let mut conn = self.conn.clone();
        let ids: Vec<Option<String>> = invocation.invoke_async(&mut conn).await.map_err(failed)?;
        Ok(ids
            .into_iter()
            .map(|id| id.and_then(|id| id.parse().ok()))
            .collect())
    }

    async fn head(&self, chat_id: i64) -> Result<Option<EntryId>> {
        let mut conn = self.conn.clone();
        let last: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(self.log_key(chat_id))
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        Ok(last.ids.first().and_then(|e| e.id.parse().ok()))
    }

    async fn range(&self, chat_id: i64, after: EntryId, max: usize) -> Result<Vec<Entry>> {
        let mut conn = self.conn.clone();
        let page: StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.log_key(chat_id))
            .arg(format!("({after}"))
            .arg("+")
            .arg("COUNT")
            .arg(max.max(1))
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        Ok(entries(&page.ids))
    }

    async fn follow(
        &self,
        cursors: &[(i64, EntryId)],
        max: usize,
        block: Duration,
    ) -> Result<Vec<(i64, Vec<Entry>)>> {
        let woken = self.woken.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut read = redis::cmd("XREAD");
        read.arg("COUNT")
            .arg(max.max(1))
            .arg("BLOCK")
            .arg(block.as_millis().max(1) as u64)
            .arg("STREAMS")
            .arg(&self.wake);
        for (chat, _) in cursors {
            read.arg(self.log_key(*chat));
        }
        read.arg(&woken);
        for (_, after) in cursors {
            read.arg(after.to_string());
        }
        let mut conn = self.blocking.clone();
        let reply: Option<StreamReadReply> = read.query_async(&mut conn).await.map_err(failed)?;
        let mut found: HashMap<i64, Vec<Entry>> = HashMap::new();
        for stream in reply.map(|r| r.keys).unwrap_or_default() {
            if stream.key == self.wake {
                if let Some(last) = stream.ids.last() {
                    *self.woken.lock().unwrap_or_else(|e| e.into_inner()) = last.id.clone();
                }
                continue;
            }
            if let Some(chat) = self.chat_of(&stream.key) {
                let got = entries(&stream.ids);
                if !got.is_empty() {
                    found.insert(chat, got);
                }
            }
        }
        Ok(found.into_iter().collect())
    }

    async fn interrupt(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .cmd("XADD")
            .arg(&self.wake)
            .arg("MAXLEN")
            .arg(1)
            .arg("*")
            .arg("w")
            .arg(1)
            .ignore()
            .cmd("PEXPIRE")
            .arg(&self.wake)
            .arg(60_000)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(failed)?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}
