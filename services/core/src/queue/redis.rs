//! Redis Streams queue: one stream of events, one consumer group per role, a dead-letter stream.
//!
//! Keys (under the configured prefix): `chat:events` (the stream), `chat:events:dead`
//! (dead letters), `chat:events:epoch` (changes whenever the stream had to be re-created).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::RedisError;
use redis::aio::ConnectionManager;
use redis::streams::{
    StreamAutoClaimReply, StreamInfoGroupsReply, StreamPendingCountReply, StreamPendingReply,
    StreamRangeReply, StreamReadReply,
};

use super::{DeadLetter, Delivery, Group, Queue, QueueStats, Trimmed};
use crate::error::Result;
use crate::redis_conn::failed;

const PAYLOAD: &str = "e";

#[derive(Clone)]
pub struct RedisQueue {
    conn: ConnectionManager,
    /// Blocking reads hold their connection until data arrives: never share it with other calls.
    blocking: ConnectionManager,
    stream: String,
    dead: String,
    epoch: String,
    /// When each consumer last looked for abandoned entries and found none (see `receive`).
    last_claim: Arc<Mutex<HashMap<(Group, String), Instant>>>,
}

impl RedisQueue {
    pub async fn connect(url: &str, prefix: &str, timeout: Duration) -> Result<Self> {
        let conn = crate::redis_conn::connect(url, timeout, timeout)?;
        // A blocking read may legitimately wait its whole block time; allow for it.
        let blocking = crate::redis_conn::connect(url, timeout, timeout + Duration::from_secs(30))?;
        Ok(RedisQueue {
            conn,
            blocking,
            stream: format!("{prefix}chat:events"),
            dead: format!("{prefix}chat:events:dead"),
            epoch: format!("{prefix}chat:events:epoch"),
            last_claim: Arc::default(),
        })
    }

    pub fn stream_key(&self) -> &str {
        &self.stream
    }

    /// Delivery counts of entries just claimed by `consumer`, from `XPENDING … start end count
    /// consumer` (filtered by consumer so other consumers' entries in the range don't crowd
    /// them out).
    async fn attempts(
        &self,
        group: Group,
        consumer: &str,
        ids: &[String],
    ) -> Result<HashMap<String, u32>> {
        let (Some(first), Some(last)) = (ids.first(), ids.last()) else {
            return Ok(HashMap::new());
        };
        let mut conn = self.conn.clone();
        let reply: StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(&self.stream)
            .arg(group.name())
            .arg(first)
            .arg(last)
            .arg(ids.len().max(1000))
            .arg(consumer)
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        Ok(reply
            .ids
            .into_iter()
            .map(|p| (p.id, p.times_delivered as u32))
            .collect())
    }
}

fn is_nogroup(err: &RedisError) -> bool {
    err.code() == Some("NOGROUP")
}

fn deliveries(ids: Vec<redis::streams::StreamId>, attempts: impl Fn(&str) -> u32) -> Vec<Delivery> {
    ids.into_iter()
        .map(|entry| Delivery {
            attempts: attempts(&entry.id),
            // An entry without our field is malformed: deliver it empty so it dead-letters
            // visibly instead of vanishing.
            payload: entry.get::<String>(PAYLOAD).unwrap_or_default(),
            id: entry.id,
        })
        .collect()
}

/// Stream ids are `ms-seq`; compared as number pairs.
fn parse_stream_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

fn random_epoch() -> String {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    hex::encode(bytes)
}

impl RedisQueue {
    /// `XAUTOCLAIM` scans the group's pending list, which a consumer that acknowledges after a
    /// flush keeps long: done on every read it cost Redis more than everything else together.
    /// An entry needs `claim_idle` to become claimable anyway, so looking again after half of
    /// it (when the last look found nothing) delays a takeover by at most that.
    fn claimed_recently(&self, group: Group, consumer: &str, claim_idle: Duration) -> bool {
        self.lock_claims()
            .get(&(group, consumer.to_owned()))
            .is_some_and(|at| at.elapsed() < claim_idle / 2)
    }

    fn lock_claims(&self) -> std::sync::MutexGuard<'_, HashMap<(Group, String), Instant>> {
        // A poisoned map only holds timestamps: still usable.
        self.last_claim.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Entries never delivered to the group, blocking up to `block` for the first one.
    async fn read_new(
        &self,
        group: Group,
        consumer: &str,
        max: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>> {
        let mut blocking = self.blocking.clone();
        let read: redis::RedisResult<Option<StreamReadReply>> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(group.name())
            .arg(consumer)
            .arg("COUNT")
            .arg(max)
            .arg("BLOCK")
            // BLOCK 0 would wait forever: a sub-millisecond wait is a 1 ms one.
            .arg((block.as_millis() as u64).max(1))
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(">")
            .query_async(&mut blocking)
            .await;
        match read {
            Ok(Some(reply)) => Ok(reply
                .keys
                .into_iter()
                .flat_map(|k| deliveries(k.ids, |_| 1))
                .collect()),
            Ok(None) => Ok(Vec::new()),
            Err(err) if is_nogroup(&err) => {
                self.ensure().await?;
                Ok(Vec::new())
            }
            Err(err) => Err(failed(err)),
        }
    }
}

#[async_trait]
impl Queue for RedisQueue {
    async fn publish(&self, payloads: &[String]) -> Result<()> {
        if payloads.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for payload in payloads {
            pipe.cmd("XADD")
                .arg(&self.stream)
                .arg("*")
                .arg(PAYLOAD)
                .arg(payload)
                .ignore();
        }
        let mut conn = self.conn.clone();
        let () = pipe.query_async(&mut conn).await.map_err(failed)?;
        Ok(())
    }

    async fn ensure(&self) -> Result<String> {
        let mut conn = self.conn.clone();
        let mut created = false;
        for group in Group::ALL {
            let result: redis::RedisResult<()> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(&self.stream)
                .arg(group.name())
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut conn)
                .await;
            match result {
                Ok(()) => created = true,
                Err(err) if err.code() == Some("BUSYGROUP") => {}
                Err(err) => return Err(failed(err)),
            }
        }
        if created {
            // A missing group means the stream's history is gone (or this is the first start):
            // a new epoch tells every relay to re-publish what it retained.
            let epoch = random_epoch();
            let () = redis::cmd("SET")
                .arg(&self.epoch)
                .arg(&epoch)
                .query_async(&mut conn)
                .await
                .map_err(failed)?;
            tracing::info!(stream = %self.stream, "queue consumer groups created (first start, or Redis lost its data)");
            return Ok(epoch);
        }
        let () = redis::cmd("SET")
            .arg(&self.epoch)
            .arg(random_epoch())
            .arg("NX")
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        Ok(redis::cmd("GET")
            .arg(&self.epoch)
            .query_async(&mut conn)
            .await
            .map_err(failed)?)
    }

    async fn receive(
        &self,
        group: Group,
        consumer: &str,
        max: usize,
        block: Duration,
        claim_idle: Duration,
    ) -> Result<Vec<Delivery>> {
        let max = max.max(1);
        if self.claimed_recently(group, consumer, claim_idle) {
            return self.read_new(group, consumer, max, block).await;
        }
        let mut conn = self.conn.clone();
        let claimed: redis::RedisResult<StreamAutoClaimReply> = redis::cmd("XAUTOCLAIM")
            .arg(&self.stream)
            .arg(group.name())
            .arg(consumer)
            .arg(claim_idle.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(max)
            .query_async(&mut conn)
            .await;
        let claimed = match claimed {
            Ok(reply) => reply,
            Err(err) if is_nogroup(&err) => {
                self.ensure().await?;
                return Ok(Vec::new());
            }
            Err(err) => return Err(failed(err)),
        };
        if !claimed.deleted_ids.is_empty() {
            // Pending entries whose data was deleted: nothing left to process.
            self.ack(group, &claimed.deleted_ids).await?;
        }
        if !claimed.claimed.is_empty() {
            let mut ids: Vec<String> = claimed.claimed.iter().map(|e| e.id.clone()).collect();
            ids.sort_by_key(|id| parse_stream_id(id));
            let counts = self.attempts(group, consumer, &ids).await?;
            return Ok(deliveries(claimed.claimed, |id| {
                counts.get(id).copied().unwrap_or(2)
            }));
        }
        self.lock_claims()
            .insert((group, consumer.to_owned()), Instant::now());
        self.read_new(group, consumer, max, block).await
    }
    async fn ack(&self, group: Group, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let _: u64 = redis::cmd("XACK")
            .arg(&self.stream)
            .arg(group.name())
            .arg(ids)
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn dead_letter(&self, group: Group, delivery: &Delivery, error: &str) -> Result<()> {
        let mut conn = self.conn.clone();
        let () = redis::pipe()
            .atomic()
            .cmd("XADD")
            .arg(&self.dead)
            .arg("*")
            .arg("group")
            .arg(group.name())
            .arg("original_id")
            .arg(&delivery.id)
            .arg("payload")
            .arg(&delivery.payload)
            .arg("error")
            .arg(error)
            .arg("attempts")
            .arg(delivery.attempts)
            .arg("dead_at")
            .arg(crate::domain::now().to_rfc3339())
            .ignore()
            .cmd("XACK")
            .arg(&self.stream)
            .arg(group.name())
            .arg(&delivery.id)
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn trim(&self) -> Result<Trimmed> {
        let mut conn = self.conn.clone();
        let info: redis::RedisResult<StreamInfoGroupsReply> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&self.stream)
            .query_async(&mut conn)
            .await;
        let unknown = Trimmed {
            removed: 0,
            done_before: None,
        };
        let Ok(info) = info else {
            return Ok(unknown); // no stream yet
        };
        let known: Vec<&str> = Group::ALL.iter().map(|g| g.name()).collect();
        if Group::ALL
            .iter()
            .any(|g| !info.groups.iter().any(|i| i.name == g.name()))
        {
            return Ok(unknown); // a group is missing: keep everything until it exists again
        }
        let mut keep_from: Option<(u64, u64)> = None;
        for group in info
            .groups
            .iter()
            .filter(|g| known.contains(&g.name.as_str()))
        {
            // The oldest entry this group still needs: its oldest pending entry, else the first
            // one after what it was last handed.
            let needed = if group.pending > 0 {
                let pending: StreamPendingReply = redis::cmd("XPENDING")
                    .arg(&self.stream)
                    .arg(&group.name)
                    .query_async(&mut conn)
                    .await
                    .map_err(failed)?;
                match pending {
                    StreamPendingReply::Data(data) => parse_stream_id(&data.start_id),
                    _ => None,
                }
            } else {
                parse_stream_id(&group.last_delivered_id).map(|(ms, seq)| (ms, seq + 1))
            };
            let Some(needed) = needed else {
                return Ok(unknown);
            };
            keep_from = Some(keep_from.map_or(needed, |k| k.min(needed)));
        }
        let Some((ms, seq)) = keep_from else {
            return Ok(unknown);
        };
        let removed: u64 = redis::cmd("XTRIM")
            .arg(&self.stream)
            .arg("MINID")
            .arg(format!("{ms}-{seq}"))
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        // Entry ids are the Redis server's clock in milliseconds.
        let done_before = chrono::DateTime::from_timestamp_millis(ms as i64);
        Ok(Trimmed {
            removed,
            done_before,
        })
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        let mut conn = self.conn.clone();
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(&self.dead)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(limit.max(1))
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        Ok(reply
            .ids
            .into_iter()
            .map(|e| DeadLetter {
                group: e.get("group").unwrap_or_default(),
                original_id: e.get("original_id").unwrap_or_default(),
                payload: e.get("payload").unwrap_or_default(),
                error: e.get("error").unwrap_or_default(),
                attempts: e.get("attempts").unwrap_or_default(),
                dead_at: e
                    .get::<String>("dead_at")
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .unwrap_or_default(),
                id: e.id,
            })
            .collect())
    }

    async fn replay(&self, ids: &[String]) -> Result<usize> {
        let all = self.dead_letters(usize::MAX >> 1).await?;
        let chosen: Vec<DeadLetter> = all
            .into_iter()
            .filter(|d| ids.is_empty() || ids.contains(&d.id))
            .collect();
        if chosen.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for letter in &chosen {
            pipe.cmd("XADD")
                .arg(&self.stream)
                .arg("*")
                .arg(PAYLOAD)
                .arg(&letter.payload)
                .ignore();
            pipe.cmd("XDEL").arg(&self.dead).arg(&letter.id).ignore();
        }
        let mut conn = self.conn.clone();
        let () = pipe.query_async(&mut conn).await.map_err(failed)?;
        Ok(chosen.len())
    }

    async fn stats(&self) -> Result<QueueStats> {
        let mut conn = self.conn.clone();
        let length: u64 = redis::cmd("XLEN")
            .arg(&self.stream)
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        let dead_letters: u64 = redis::cmd("XLEN")
            .arg(&self.dead)
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        let info: StreamInfoGroupsReply = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&self.stream)
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        let mut pending: Vec<(Group, u64)> = Group::ALL
            .iter()
            .map(|g| {
                let n = info
                    .groups
                    .iter()
                    .find(|i| i.name == g.name())
                    .map_or(0, |i| i.pending as u64);
                (*g, n)
            })
            .collect();
        pending.sort_by_key(|(g, _)| g.name());
        let mut lag: Vec<(Group, Option<u64>)> = Group::ALL
            .iter()
            .map(|g| {
                let lag = info
                    .groups
                    .iter()
                    .find(|i| i.name == g.name())
                    .and_then(|i| i.lag);
                (*g, lag.map(|n| n as u64))
            })
            .collect();
        lag.sort_by_key(|(g, _)| g.name());
        Ok(QueueStats {
            length,
            pending,
            lag,
            dead_letters,
        })
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}
