//! The queue port: the event stream between the outbox relay and the worker roles. Every
//! adapter passes the same conformance suite (`services/core/tests/queue_conformance.rs`).
//!
//! Delivery is at least once. An entry stays pending for its group until acknowledged; a
//! consumer that dies leaves its entries pending, and after `claim_idle` another consumer of the
//! group receives them again with a higher `attempts` count. Nothing is dropped silently: the
//! worker moves an entry that failed too often to the dead-letter list.

mod local;
mod redis;

pub use self::local::LocalQueue;
pub use self::redis::RedisQueue;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::Result;

/// One consumer group per worker role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    Indexer,
    Counter,
}

impl Group {
    pub const ALL: [Group; 2] = [Group::Indexer, Group::Counter];

    pub fn name(self) -> &'static str {
        match self {
            Group::Indexer => "indexer",
            Group::Counter => "counter",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The entry's id in the stream.
    pub id: String,
    pub payload: String,
    /// 1 on first delivery; grows each time the entry is delivered again.
    pub attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The entry's id in the dead-letter list (what `dlq replay` takes).
    pub id: String,
    pub group: String,
    pub original_id: String,
    pub payload: String,
    pub error: String,
    pub attempts: u32,
    pub dead_at: DateTime<Utc>,
}

#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Appends payloads in order. Returns once they are in the stream.
    async fn publish(&self, payloads: &[String]) -> Result<()>;

    /// Makes sure the stream and every group exist, creating what is missing, and answers the
    /// stream's *epoch*: a value that changes whenever the stream had to be created anew (Redis
    /// restarted empty, or a new in-process queue). The relay re-publishes its retained outbox
    /// rows when the epoch changes.
    async fn ensure(&self) -> Result<String>;

    /// Up to `max` entries for `consumer` of `group`: first entries other consumers left pending
    /// for longer than `claim_idle`, then new ones, waiting up to `block` when there are none.
    async fn receive(
        &self,
        group: Group,
        consumer: &str,
        max: usize,
        block: Duration,
        claim_idle: Duration,
    ) -> Result<Vec<Delivery>>;

    /// Marks entries done for `group`. Call only once their work is durable.
    async fn ack(&self, group: Group, ids: &[String]) -> Result<()>;

    /// Moves an entry to the dead-letter list with its error and acknowledges it.
    async fn dead_letter(&self, group: Group, delivery: &Delivery, error: &str) -> Result<()>;

    /// Removes entries every group has acknowledged.
    async fn trim(&self) -> Result<Trimmed>;

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>>;

    /// Re-queues dead letters (all when `ids` is empty) and removes them from the list.
    async fn replay(&self, ids: &[String]) -> Result<usize>;

    /// Entries in the stream, and entries pending per group (for metrics and tests).
    async fn stats(&self) -> Result<QueueStats>;

    fn backend(&self) -> &'static str;
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trimmed {
    pub removed: u64,
    /// Every entry published before this instant has been acknowledged by every group (`None`:
    /// unknown, e.g. a group is missing). The relay purges outbox rows only below it, so an event
    /// a lagging consumer still needs can always be re-published.
    pub done_before: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub length: u64,
    pub pending: Vec<(Group, u64)>,
    /// Entries not yet delivered to each group (its backlog); `None` where the server cannot
    /// tell (Redis before 7, or after a trim it cannot account for).
    pub lag: Vec<(Group, Option<u64>)>,
    pub dead_letters: u64,
}
