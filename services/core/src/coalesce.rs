//! Coalescing of concurrent calls into batches: many requests in flight at once share one
//! database round trip (one multi-row `INSERT`, one multi-key `SELECT`) instead of each paying
//! for its own.
//!
//! Batching is adaptive, never timed: a call that finds a flush slot free is flushed at once
//! (alone, at low load, so no latency is added), and calls arriving while every slot is busy
//! wait and go out together in the next batch. Each caller gets its own result, only after its
//! batch has finished (for writes: committed).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::error::{Error, Result};

type Job<I, O> = (I, oneshot::Sender<Result<O>>);

/// Hands items to a flush function in batches of at most `max_batch` (a power of two), with at
/// most `parallel` flushes in flight.
pub struct Coalescer<I, O> {
    jobs: mpsc::Sender<Job<I, O>>,
    kind: &'static str,
}

impl<I, O> Clone for Coalescer<I, O> {
    fn clone(&self) -> Self {
        Coalescer {
            jobs: self.jobs.clone(),
            kind: self.kind,
        }
    }
}

impl<I: Send + 'static, O: Send + 'static> Coalescer<I, O> {
    /// `flush` answers one result per item, in the items' order. Must be called inside a Tokio
    /// runtime: the dispatcher is a task, and it ends when the last handle is dropped.
    pub fn new<F, Fut>(kind: &'static str, max_batch: usize, parallel: usize, flush: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Result<O>>> + Send + 'static,
    {
        let max_batch = max_batch.max(1).next_power_of_two();
        // Room for a few full batches; beyond that callers wait to enqueue (backpressure).
        let (jobs, queue) = mpsc::channel(max_batch * parallel.max(1) * 4);
        tokio::spawn(dispatch(
            kind,
            queue,
            max_batch,
            Arc::new(Semaphore::new(parallel.max(1))),
            Arc::new(flush),
        ));
        Coalescer { jobs, kind }
    }

    /// Runs `item` in the next batch and answers its result.
    pub async fn run(&self, item: I) -> Result<O> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send((item, reply))
            .await
            .map_err(|_| self.gone())?;
        // A flush that panicked dropped its reply senders: report it rather than hang.
        answer.await.map_err(|_| self.gone())?
    }

    fn gone(&self) -> Error {
        Error::Database(format!("the {} batch was abandoned", self.kind))
    }
}

async fn dispatch<I, O, F, Fut>(
    kind: &'static str,
    mut queue: mpsc::Receiver<Job<I, O>>,
    max_batch: usize,
    slots: Arc<Semaphore>,
    flush: Arc<F>,
) where
    I: Send + 'static,
    O: Send + 'static,
    F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<Result<O>>> + Send + 'static,
{
    let mut received = Vec::with_capacity(max_batch);
    let mut pending: VecDeque<Job<I, O>> = VecDeque::with_capacity(max_batch);
    // The slot is taken before the batch is drained, so items keep accumulating while every
    // slot is busy: that is what makes batches grow with load.
    while let Ok(slot) = slots.clone().acquire_owned().await {
        if pending.is_empty() {
            if queue.recv_many(&mut received, max_batch).await == 0 {
                return;
            }
            pending.extend(received.drain(..));
        }
        while pending.len() < max_batch {
            match queue.try_recv() {
                Ok(job) => pending.push_back(job),
                Err(_) => break,
            }
        }
        // Batches come in power-of-two sizes only (the rest waits for the next slot), so the
        // statements a flush builds take a handful of shapes and stay in each connection's
        // prepared-statement cache. An evicted statement costs a close the server never
        // answers, and the next packet then waits out TCP's delayed acknowledgement (~40 to
        // 200 ms on Linux, as sqlx does not set TCP_NODELAY).
        let take = 1 << pending.len().ilog2();
        let batch: Vec<Job<I, O>> = pending.drain(..take).collect();
        let (items, replies): (Vec<I>, Vec<_>) = batch.into_iter().unzip();
        crate::metrics::BATCH_SIZE
            .with_label_values(&[kind])
            .observe(items.len() as f64);
        let flush = flush.clone();
        tokio::spawn(async move {
            let expected = replies.len();
            let results = flush(items).await;
            debug_assert_eq!(results.len(), expected, "one result per item");
            for (reply, result) in replies.into_iter().zip(results) {
                // The caller may have gone away (client disconnected); its write still stands.
                let _ = reply.send(result);
            }
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    #[tokio::test]
    async fn answers_each_caller_with_its_own_result() {
        let c = Coalescer::new("test", 8, 1, |items: Vec<i64>| async move {
            items
                .into_iter()
                .map(|i| {
                    if i % 3 == 0 {
                        Err(Error::Taken)
                    } else {
                        Ok(i * 10)
                    }
                })
                .collect()
        });
        let results = futures::future::join_all((1..=20).map(|i| c.run(i))).await;
        for (i, result) in (1..=20).zip(results) {
            match result {
                Ok(v) => assert_eq!(v, i * 10),
                Err(Error::Taken) => assert_eq!(i % 3, 0),
                Err(other) => panic!("unexpected {other}"),
            }
        }
    }

    #[tokio::test]
    async fn batches_grow_while_the_slot_is_busy_and_stay_bounded() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        // 10 is rounded down to a power of two by the sizes batches take: at most 8.
        let c = Coalescer::new("test", 8, 1, move |items: Vec<u32>| {
            seen.lock().unwrap().push(items.len());
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                items.into_iter().map(Ok).collect()
            }
        });
        let results = futures::future::join_all((0..35).map(|i| c.run(i))).await;
        assert!(results.iter().all(|r| r.is_ok()));
        let sizes = sizes.lock().unwrap().clone();
        assert_eq!(sizes.iter().sum::<usize>(), 35);
        assert!(
            sizes.iter().all(|&n| n <= 8 && n.is_power_of_two()),
            "{sizes:?}"
        );
        assert!(sizes.iter().any(|&n| n > 1), "nothing coalesced: {sizes:?}");
    }

    #[tokio::test]
    async fn a_lone_call_is_not_delayed_for_company() {
        let c = Coalescer::new("test", 100, 1, |items: Vec<u8>| async move {
            items.into_iter().map(Ok).collect()
        });
        let started = std::time::Instant::now();
        assert_eq!(c.run(7).await.unwrap(), 7);
        assert!(started.elapsed() < Duration::from_millis(500));
    }

    #[tokio::test]
    async fn a_panicking_flush_fails_its_callers_instead_of_hanging() {
        let c = Coalescer::new("test", 4, 1, |items: Vec<u8>| async move {
            if items.contains(&0) {
                panic!("boom");
            }
            items.into_iter().map(Ok).collect()
        });
        assert!(matches!(c.run(0).await, Err(Error::Database(_))));
        // The dispatcher survives and its slot was released.
        assert_eq!(c.run(5).await.unwrap(), 5);
    }
}
