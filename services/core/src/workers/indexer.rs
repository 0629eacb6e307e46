//! The indexer role: message events → the search index, in batches (up to N documents or T
//! milliseconds). Each document is acknowledged only once the index holds it; the index keeps
//! the newest version per `{chat_id}:{number}`, so redeliveries and replays never duplicate or
//! resurrect anything.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{ConsumerConfig, Stop, backoff, give_up_or_retry, pause, stopping};
use crate::error::Error;
use crate::events::{Envelope, Event};
use crate::queue::{Delivery, Group, Queue};
use crate::search::{SearchDocument, SearchIndex, UpsertReport};

pub struct Indexer {
    pub index: Arc<dyn SearchIndex>,
    pub queue: Arc<dyn Queue>,
    pub config: ConsumerConfig,
    pub batch: usize,
    pub flush_after: Duration,
}

impl Indexer {
    pub async fn run(self, mut stop: Stop) {
        let mut failures = 0u32;
        loop {
            if stopping(&stop) {
                return;
            }
            let batch = match self.gather(&stop).await {
                Ok(batch) => batch,
                Err(err) => {
                    failures += 1;
                    tracing::warn!(error = %err, "indexer cannot read the queue; retrying");
                    pause(&mut stop, backoff(failures)).await;
                    continue;
                }
            };
            failures = 0;
            if !batch.is_empty() {
                // Even during shutdown the gathered batch is written and acknowledged.
                self.write(batch, &mut stop).await;
            }
        }
    }

    /// Up to `batch` deliveries, waiting at most `flush_after` once the first one arrived.
    async fn gather(&self, stop: &Stop) -> crate::Result<Vec<Delivery>> {
        let mut batch = Vec::new();
        let mut first_at: Option<Instant> = None;
        while batch.len() < self.batch && !stopping(stop) {
            let wait = match first_at {
                None => Duration::from_millis(500),
                Some(at) => match self.flush_after.checked_sub(at.elapsed()) {
                    Some(left) if !left.is_zero() => left,
                    _ => break,
                },
            };
            let got = self
                .queue
                .receive(
                    Group::Indexer,
                    &self.config.consumer,
                    self.batch - batch.len(),
                    wait,
                    self.config.claim_idle,
                )
                .await?;
            if !got.is_empty() && first_at.is_none() {
                first_at = Some(Instant::now());
            }
            if got.is_empty() && first_at.is_none() && !batch.is_empty() {
                break;
            }
            batch.extend(got);
        }
        Ok(batch)
    }

    /// Upserts, splitting a batch the backend refuses as a whole (too large, say) until the
    /// document at fault stands alone and is rejected by itself; the rest is written.
    async fn upsert_bisecting(
        &self,
        documents: Vec<SearchDocument>,
    ) -> crate::Result<UpsertReport> {
        let mut report = UpsertReport::default();
        let mut parts = vec![documents];
        while let Some(mut part) = parts.pop() {
            match self.index.upsert(part.clone()).await {
                Ok(done) => report.rejected.extend(done.rejected),
                Err(Error::SearchRejected(reason)) if part.len() == 1 => {
                    report.rejected.push((part[0].key(), reason));
                }
                Err(Error::SearchRejected(_)) => {
                    let second = part.split_off(part.len() / 2);
                    parts.push(second);
                    parts.push(part);
                }
                Err(err) => return Err(err),
            }
        }
        Ok(report)
    }

    async fn write(&self, batch: Vec<Delivery>, stop: &mut Stop) {
        let mut documents = Vec::new();
        let mut changed_at = Vec::new();
        // One span per document, in the trace of the request that changed it, open until the
        // document is written.
        let mut spans = Vec::new();
        let mut by_key: HashMap<String, Vec<usize>> = HashMap::new();
        let mut done: Vec<String> = Vec::new();
        let mut failed: Vec<(usize, String)> = Vec::new();
        for (i, delivery) in batch.iter().enumerate() {
            match Envelope::parse(&delivery.payload) {
                Ok(envelope) => match envelope.event {
                    Event::MessageCreated(m) | Event::MessageUpdated(m) => {
                        let span = tracing::info_span!(
                            "index_document",
                            chat_id = m.chat_id,
                            number = m.number,
                            version = m.version
                        );
                        crate::telemetry::follow(&span, envelope.trace.as_deref());
                        spans.push(span);
                        let doc = SearchDocument {
                            chat_id: m.chat_id,
                            number: m.number,
                            body: m.body,
                            version: m.version,
                            created_at: m.created_at,
                        };
                        by_key.entry(doc.key()).or_default().push(i);
                        changed_at.push(m.updated_at);
                        documents.push(doc);
                    }
                    // Purging a deleted chat or application removes its documents (the counter
                    // role's purge), not the indexer.
                    Event::ChatCreated { .. }
                    | Event::MessageDeleted(_)
                    | Event::ChatDeleted { .. }
                    | Event::ApplicationDeleted { .. } => done.push(delivery.id.clone()),
                },
                Err(error) => failed.push((i, error)),
            }
        }
        let mut attempt = 0u32;
        let report = loop {
            if documents.is_empty() {
                break Default::default();
            }
            let started = Instant::now();
            match self.upsert_bisecting(documents.clone()).await {
                Ok(report) => {
                    use crate::metrics as m;
                    m::INDEXER_BULK_SECONDS.observe(started.elapsed().as_secs_f64());
                    m::INDEXER_BATCH_SIZE.observe(documents.len() as f64);
                    let rejected = report.rejected.len() as u64;
                    m::INDEXER_DOCUMENTS
                        .with_label_values(&["rejected"])
                        .inc_by(rejected);
                    m::INDEXER_DOCUMENTS
                        .with_label_values(&["indexed"])
                        .inc_by(documents.len() as u64 - rejected.min(documents.len() as u64));
                    for at in &changed_at {
                        m::INDEX_LAG_SECONDS.observe(m::seconds_since(*at));
                    }
                    break report;
                }
                Err(err) => {
                    // An outage is not the events' fault: keep the batch and wait, counting no
                    // attempts against the entries.
                    attempt += 1;
                    tracing::warn!(error = %err, attempt, "search index unavailable; retrying the batch");
                    if pause(stop, backoff(attempt)).await {
                        // Shutting down: leave the batch pending; it is delivered again later.
                        return;
                    }
                }
            }
        };
        let rejected: HashMap<&str, &str> = report
            .rejected
            .iter()
            .map(|(key, reason)| (key.as_str(), reason.as_str()))
            .collect();
        for (key, positions) in &by_key {
            for &i in positions {
                match rejected.get(key.as_str()) {
                    Some(reason) => {
                        failed.push((i, format!("search index rejected {key}: {reason}")))
                    }
                    None => done.push(batch[i].id.clone()),
                }
            }
        }
        if let Err(err) = self.queue.ack(Group::Indexer, &done).await {
            tracing::warn!(error = %err, "could not acknowledge indexed events; they will be redelivered (harmless)");
        }
        for (i, error) in failed {
            give_up_or_retry(
                self.queue.as_ref(),
                Group::Indexer,
                &self.config,
                &batch[i],
                &error,
            )
            .await;
        }
        drop(spans);
        tracing::debug!(documents = by_key.len(), "batch indexed");
    }
}
