//! The outbox relay: publishes committed events to the queue. Runs in the api role (several
//! replicas may run it at once) and in `serve`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::{Stop, backoff, pause, stopping};
use crate::error::Result;
use crate::queue::Queue;
use crate::store::{OutboxStore, StateStore};

const BATCH: u32 = 500;
/// Idle polling interval: other replicas' writes are found this fast even without a nudge.
const POLL: Duration = Duration::from_millis(50);
const ENSURE_EVERY: Duration = Duration::from_secs(1);
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(10);
/// The `system_state` entry holding the queue epoch the outbox was last published under.
const EPOCH_STATE: &str = "queue_epoch";

pub struct Relay {
    pub outbox: Arc<dyn OutboxStore>,
    /// Where the queue epoch the outbox was last published under is recorded.
    pub state: Arc<dyn StateStore>,
    pub queue: Arc<dyn Queue>,
    /// Poked after each local write so events go out at once.
    pub wake: Arc<Notify>,
    /// How long published rows are kept for re-publishing after a queue loss.
    pub retention: Duration,
}

impl Relay {
    pub async fn run(self, mut stop: Stop) {
        let mut seen_epoch: Option<String> = None;
        let mut last_ensure: Option<Instant> = None;
        let mut last_housekeeping = Instant::now();
        let mut failures = 0u32;
        while !stopping(&stop) {
            let round = async {
                if last_ensure.is_none_or(|t| t.elapsed() >= ENSURE_EVERY) {
                    self.follow_epoch(&mut seen_epoch).await?;
                    last_ensure = Some(Instant::now());
                }
                let published = self.drain().await?;
                if last_housekeeping.elapsed() >= HOUSEKEEPING_EVERY {
                    self.housekeeping().await?;
                    last_housekeeping = Instant::now();
                }
                Ok::<_, crate::Error>(published)
            };
            match round.await {
                Ok(_) => failures = 0,
                Err(err) => {
                    failures += 1;
                    crate::metrics::OUTBOX_PUBLISH_FAILURES.inc();
                    tracing::warn!(error = %err, failures, "outbox relay round failed; retrying");
                    if pause(&mut stop, backoff(failures)).await {
                        break;
                    }
                    continue;
                }
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = stop.changed() => {}
            }
        }
        // Whatever was committed before the stop goes out now if the queue is there.
        if let Err(err) = self.drain().await {
            tracing::warn!(error = %err, "outbox not fully published at shutdown; the next relay will");
        }
    }

    /// Publishes until nothing is waiting.
    pub async fn drain(&self) -> Result<usize> {
        let mut total = 0;
        loop {
            let started = std::time::Instant::now();
            let n = self.outbox.relay_outbox(BATCH, self.queue.as_ref()).await?;
            if n > 0 {
                crate::metrics::OUTBOX_PUBLISH_SECONDS.observe(started.elapsed().as_secs_f64());
                crate::metrics::OUTBOX_PUBLISHED.inc_by(n as u64);
            }
            total += n;
            if n < BATCH as usize {
                return Ok(total);
            }
        }
    }

    /// When the queue's epoch changed (it lost its contents), exactly one relay wins the swap in
    /// the database and marks the retained rows for re-publishing.
    async fn follow_epoch(&self, seen: &mut Option<String>) -> Result<()> {
        let epoch = self.queue.ensure().await?;
        if seen.as_deref() == Some(epoch.as_str()) {
            return Ok(());
        }
        let recorded = self.state.state(EPOCH_STATE).await?;
        if recorded.as_deref() != Some(epoch.as_str())
            && self
                .state
                .swap_state(EPOCH_STATE, recorded.as_deref(), &epoch)
                .await?
        {
            let rows = self.outbox.republish_retained().await?;
            crate::metrics::OUTBOX_REPUBLISHED.inc_by(rows);
            if recorded.is_some() {
                tracing::warn!(
                    rows,
                    "the queue lost its contents; re-publishing retained outbox rows"
                );
            }
        }
        *seen = Some(epoch);
        Ok(())
    }

    /// Trims the stream, then purges outbox rows past retention that every group is done with
    /// (a lagging consumer keeps its events re-publishable however long it lags).
    async fn housekeeping(&self) -> Result<()> {
        crate::metrics::OUTBOX_WAITING.set(self.outbox.outbox_waiting().await?);
        let trimmed = self.queue.trim().await?;
        let Some(done_before) = trimmed.done_before else {
            return Ok(());
        };
        let retention =
            chrono::Duration::from_std(self.retention).unwrap_or(chrono::Duration::minutes(15));
        // Stream ids come from the Redis server's clock, `published_at` from ours: allow skew.
        let cutoff = (crate::domain::now() - retention).min(done_before - CLOCK_SKEW);
        let purged = self.outbox.purge_outbox(cutoff).await?;
        if purged > 0 || trimmed.removed > 0 {
            tracing::debug!(
                purged,
                trimmed = trimmed.removed,
                "outbox purged and stream trimmed"
            );
        }
        Ok(())
    }
}

const CLOCK_SKEW: chrono::Duration = chrono::Duration::seconds(60);
