//! The queue the relay publishes through: the real queue first, then the chats' logs. Both
//! happen while the relay holds its outbox rows, so a failure of either leaves the rows
//! unpublished and the next round sends them again (queue consumers are idempotent; the feed
//! skips keys it already holds).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Feed, appends};
use crate::error::Result;
use crate::queue::{DeadLetter, Delivery, Group, Queue, QueueStats, Trimmed};

pub struct Tee {
    queue: Arc<dyn Queue>,
    feed: Arc<dyn Feed>,
}

impl Tee {
    pub fn new(queue: Arc<dyn Queue>, feed: Arc<dyn Feed>) -> Self {
        Tee { queue, feed }
    }
}

#[async_trait]
impl Queue for Tee {
    async fn publish(&self, payloads: &[String]) -> Result<()> {
        self.queue.publish(payloads).await?;
        let items = appends(payloads);
        if !items.is_empty() {
            self.feed.append(&items).await?;
        }
        Ok(())
    }

    async fn ensure(&self) -> Result<String> {
        self.queue.ensure().await
    }

    async fn receive(
        &self,
        group: Group,
        consumer: &str,
        max: usize,
        block: Duration,
        claim_idle: Duration,
    ) -> Result<Vec<Delivery>> {
        self.queue
            .receive(group, consumer, max, block, claim_idle)
            .await
    }

    async fn ack(&self, group: Group, ids: &[String]) -> Result<()> {
        self.queue.ack(group, ids).await
    }

    async fn dead_letter(&self, group: Group, delivery: &Delivery, error: &str) -> Result<()> {
        self.queue.dead_letter(group, delivery, error).await
    }

    async fn trim(&self) -> Result<Trimmed> {
        self.queue.trim().await
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        self.queue.dead_letters(limit).await
    }

    async fn replay(&self, ids: &[String]) -> Result<usize> {
        self.queue.replay(ids).await
    }

    async fn stats(&self) -> Result<QueueStats> {
        self.queue.stats().await
    }

    fn backend(&self) -> &'static str {
        self.queue.backend()
    }
}
