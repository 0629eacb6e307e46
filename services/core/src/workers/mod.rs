//! The background roles: the outbox relay (api role), the indexer and the counter (with the
//! purge of deleted chats and applications). Each is a
//! loop over the ports that stops when told to, after finishing and acknowledging its batch.

pub mod counter;
pub mod indexer;
pub mod purge;
pub mod relay;

use std::time::Duration;

use tokio::sync::watch;

use crate::queue::{Delivery, Group, Queue};

/// Tells workers to stop: `true` once shutdown began.
pub type Stop = watch::Receiver<bool>;

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// This process's name in the consumer group (unique per replica).
    pub consumer: String,
    pub claim_idle: Duration,
    pub max_attempts: u32,
}

impl ConsumerConfig {
    /// `{host}-{pid}`: unique per replica (a pod's hostname is its name) and recognisable in
    /// `XINFO CONSUMERS`.
    pub fn consumer_name(role: &str) -> String {
        let host = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|h| h.trim().to_owned())
            })
            .unwrap_or_else(|| "host".to_owned());
        format!("{role}-{host}-{}", std::process::id())
    }
}

pub fn stopping(stop: &Stop) -> bool {
    *stop.borrow()
}

/// Sleeps, waking early on shutdown. Answers whether shutdown began.
pub async fn pause(stop: &mut Stop, duration: Duration) -> bool {
    if stopping(stop) {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(duration) => stopping(stop),
        _ = stop.changed() => true,
    }
}

/// An entry that could not be processed: dead-lettered once it has used its attempts, else left
/// pending so it is delivered again after the claim-idle time.
pub async fn give_up_or_retry(
    queue: &dyn Queue,
    group: Group,
    config: &ConsumerConfig,
    delivery: &Delivery,
    error: &str,
) {
    if delivery.attempts >= config.max_attempts {
        crate::metrics::DEAD_LETTERED
            .with_label_values(&[group.name()])
            .inc();
        tracing::error!(
            group = group.name(),
            entry = %delivery.id,
            attempts = delivery.attempts,
            error,
            "event failed too often; moved to the dead-letter stream"
        );
        if let Err(err) = queue.dead_letter(group, delivery, error).await {
            tracing::error!(entry = %delivery.id, error = %err, "could not dead-letter; it stays pending");
        }
    } else {
        tracing::warn!(
            group = group.name(),
            entry = %delivery.id,
            attempts = delivery.attempts,
            error,
            "event failed; it will be retried"
        );
    }
}

/// Exponential backoff for transient outages, capped.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_millis((100u64 << failures.min(6)).min(5_000))
}
