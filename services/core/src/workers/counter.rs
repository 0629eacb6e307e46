//! The counter role: keeps `chats_count` and `messages_count` exact, a flush interval behind.
//!
//! Coalesced and idempotent: a batch of events only says *which* applications and chats changed;
//! each flush recounts those from the database (past their settled watermark), so replays and
//! redeliveries change nothing. Events are acknowledged only after the recount committed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{ConsumerConfig, Stop, backoff, give_up_or_retry, pause, stopping};
use crate::events::{Envelope, Event};
use crate::queue::{Delivery, Group, Queue};
use crate::store::CountStore;

/// Rows older than this can no longer appear below the watermark: every create commits within
/// it (pool wait and statement time are bounded well below it).
pub const SETTLE: Duration = Duration::from_secs(30);
const BATCH: usize = 1000;
/// Keys recounted per write transaction.
const RECOUNT_CHUNK: usize = 200;

pub struct Counter {
    pub store: Arc<dyn CountStore>,
    pub queue: Arc<dyn Queue>,
    pub config: ConsumerConfig,
    pub flush_every: Duration,
}

#[derive(Default)]
struct Dirty {
    applications: BTreeSet<i64>,
    chats: BTreeSet<i64>,
    acks: Vec<String>,
    /// When each collected event's change happened (for the count-lag histogram).
    happened: Vec<chrono::DateTime<chrono::Utc>>,
    /// One span per event, in the trace of the request that caused it, open until flushed.
    spans: Vec<tracing::Span>,
}

impl Counter {
    pub async fn run(self, mut stop: Stop) {
        let mut dirty = Dirty::default();
        let mut last_flush = Instant::now();
        let mut failures = 0u32;
        loop {
            let stopping_now = stopping(&stop);
            if !stopping_now {
                let wait = self
                    .flush_every
                    .saturating_sub(last_flush.elapsed())
                    .min(Duration::from_millis(200));
                match self
                    .queue
                    .receive(
                        Group::Counter,
                        &self.config.consumer,
                        BATCH,
                        wait,
                        self.config.claim_idle,
                    )
                    .await
                {
                    Ok(deliveries) => self.collect(deliveries, &mut dirty).await,
                    Err(err) => {
                        failures += 1;
                        tracing::warn!(error = %err, "counter cannot read the queue; retrying");
                        pause(&mut stop, backoff(failures)).await;
                        continue;
                    }
                }
            }
            if stopping_now || last_flush.elapsed() >= self.flush_every {
                match self.flush(&mut dirty).await {
                    Ok(()) => failures = 0,
                    Err(err) => {
                        failures += 1;
                        tracing::warn!(error = %err, "count flush failed; keeping the dirty set for the next one");
                        if stopping_now {
                            // Unacknowledged events are delivered again to whoever runs next.
                            return;
                        }
                        pause(&mut stop, backoff(failures)).await;
                    }
                }
                last_flush = Instant::now();
            }
            if stopping_now {
                return;
            }
        }
    }

    async fn collect(&self, deliveries: Vec<Delivery>, dirty: &mut Dirty) {
        for delivery in deliveries {
            match Envelope::parse(&delivery.payload) {
                Ok(envelope) => {
                    let span = tracing::info_span!("count_event", entry = %delivery.id);
                    crate::telemetry::follow(&span, envelope.trace.as_deref());
                    dirty.spans.push(span);
                    match envelope.event {
                        Event::ChatCreated {
                            application_id,
                            created_at,
                            ..
                        } => {
                            dirty.applications.insert(application_id);
                            dirty.happened.push(created_at);
                        }
                        Event::MessageCreated(m) => {
                            dirty.chats.insert(m.chat_id);
                            dirty.happened.push(m.created_at);
                        }
                        // The delete already adjusted the count in its transaction; a
                        // recount settles it like any other change.
                        Event::MessageDeleted(m) => {
                            dirty.chats.insert(m.chat_id);
                            dirty.happened.push(m.deleted_at);
                        }
                        Event::ChatDeleted {
                            application_id,
                            deleted_at,
                            ..
                        } => {
                            dirty.applications.insert(application_id);
                            dirty.happened.push(deleted_at);
                        }
                        // An edit changes no count, and a deleted application has none to show.
                        Event::MessageUpdated(_) | Event::ApplicationDeleted { .. } => {}
                    }
                    dirty.acks.push(delivery.id);
                }
                Err(error) => {
                    give_up_or_retry(
                        self.queue.as_ref(),
                        Group::Counter,
                        &self.config,
                        &delivery,
                        &error,
                    )
                    .await
                }
            }
        }
    }

    async fn flush(&self, dirty: &mut Dirty) -> crate::Result<()> {
        if dirty.acks.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let keys = dirty.applications.len() + dirty.chats.len();
        let settled_before =
            crate::domain::now() - chrono::Duration::from_std(SETTLE).expect("small duration");
        // Recounted ones leave the set chunk by chunk, so a failure midway repeats only the
        // rest. A chunk is one short write transaction (one fsync for SQLite, not one per key).
        while !dirty.applications.is_empty() {
            let chunk: Vec<i64> = dirty
                .applications
                .iter()
                .take(RECOUNT_CHUNK)
                .copied()
                .collect();
            self.store
                .recount_applications(&chunk, settled_before, false)
                .await?;
            for id in chunk {
                dirty.applications.remove(&id);
            }
        }
        while !dirty.chats.is_empty() {
            let chunk: Vec<i64> = dirty.chats.iter().take(RECOUNT_CHUNK).copied().collect();
            self.store
                .recount_chats(&chunk, settled_before, false)
                .await?;
            for id in chunk {
                dirty.chats.remove(&id);
            }
        }
        self.queue.ack(Group::Counter, &dirty.acks).await?;
        crate::metrics::COUNTER_FLUSH_SECONDS.observe(started.elapsed().as_secs_f64());
        crate::metrics::COUNTER_DIRTY_KEYS.observe(keys as f64);
        dirty.spans.clear();
        for at in dirty.happened.drain(..) {
            crate::metrics::COUNT_LAG_SECONDS.observe(crate::metrics::seconds_since(at));
        }
        tracing::debug!(
            events = dirty.acks.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "counts flushed"
        );
        dirty.acks.clear();
        Ok(())
    }
}
