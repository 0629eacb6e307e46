//! In-process queue for the embedded mode: the same semantics as the Redis adapter in memory.
//! A crash loses the queue's contents but not the events: the new queue has a new epoch, so the
//! relay re-publishes the outbox rows it retained.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Notify;

use super::{DeadLetter, Delivery, Group, Queue, QueueStats, Trimmed};
use crate::error::Result;

pub struct LocalQueue {
    state: Mutex<State>,
    arrived: Notify,
    epoch: String,
}

#[derive(Default)]
struct State {
    entries: BTreeMap<u64, String>,
    /// When each entry was published (for [`Trimmed::done_before`]).
    published: BTreeMap<u64, chrono::DateTime<chrono::Utc>>,
    next_id: u64,
    groups: HashMap<Group, GroupState>,
    dead: BTreeMap<u64, DeadLetter>,
    next_dead: u64,
}

#[derive(Default)]
struct GroupState {
    /// Highest id handed out to this group.
    last_delivered: u64,
    /// id → (attempts, when last delivered).
    pending: BTreeMap<u64, (u32, Instant)>,
}

impl Default for LocalQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalQueue {
    pub fn new() -> Self {
        let mut random = [0u8; 8];
        let _ = getrandom::fill(&mut random);
        let mut state = State::default();
        for group in Group::ALL {
            state.groups.insert(group, GroupState::default());
        }
        LocalQueue {
            state: Mutex::new(state),
            arrived: Notify::new(),
            epoch: format!("local-{}", hex::encode(random)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take(&self, group: Group, max: usize, claim_idle: Duration) -> Vec<Delivery> {
        let mut state = self.lock();
        let State {
            entries, groups, ..
        } = &mut *state;
        let g = groups.entry(group).or_default();
        let now = Instant::now();
        let mut out = Vec::new();
        // Entries left pending too long are delivered again (a consumer died or gave up).
        for (id, (attempts, at)) in g.pending.iter_mut() {
            if out.len() >= max {
                break;
            }
            if now.duration_since(*at) < claim_idle {
                continue;
            }
            if let Some(payload) = entries.get(id) {
                *attempts += 1;
                *at = now;
                out.push(Delivery {
                    id: id.to_string(),
                    payload: payload.clone(),
                    attempts: *attempts,
                });
            }
        }
        let fresh: Vec<(u64, String)> = entries
            .range(g.last_delivered + 1..)
            .take(max - out.len())
            .map(|(id, p)| (*id, p.clone()))
            .collect();
        for (id, payload) in fresh {
            g.last_delivered = id;
            g.pending.insert(id, (1, now));
            out.push(Delivery {
                id: id.to_string(),
                payload,
                attempts: 1,
            });
        }
        out
    }
}

fn parse_id(id: &str) -> Option<u64> {
    id.parse().ok()
}

#[async_trait]
impl Queue for LocalQueue {
    async fn publish(&self, payloads: &[String]) -> Result<()> {
        {
            let mut state = self.lock();
            for payload in payloads {
                state.next_id += 1;
                let id = state.next_id;
                state.entries.insert(id, payload.clone());
                state.published.insert(id, crate::domain::now());
            }
        }
        self.arrived.notify_waiters();
        Ok(())
    }

    async fn ensure(&self) -> Result<String> {
        Ok(self.epoch.clone())
    }

    async fn receive(
        &self,
        group: Group,
        _consumer: &str,
        max: usize,
        block: Duration,
        claim_idle: Duration,
    ) -> Result<Vec<Delivery>> {
        let deadline = tokio::time::Instant::now() + block;
        loop {
            let arrived = self.arrived.notified();
            let out = self.take(group, max.max(1), claim_idle);
            if !out.is_empty() {
                return Ok(out);
            }
            // Wake for new entries, or in time to redeliver idle ones.
            let wake = deadline
                .min(tokio::time::Instant::now() + claim_idle.max(Duration::from_millis(10)));
            if tokio::time::timeout_at(wake, arrived).await.is_err()
                && tokio::time::Instant::now() >= deadline
            {
                return Ok(Vec::new());
            }
        }
    }

    async fn ack(&self, group: Group, ids: &[String]) -> Result<()> {
        let mut state = self.lock();
        let g = state.groups.entry(group).or_default();
        for id in ids.iter().filter_map(|id| parse_id(id)) {
            g.pending.remove(&id);
        }
        Ok(())
    }

    async fn dead_letter(&self, group: Group, delivery: &Delivery, error: &str) -> Result<()> {
        {
            let mut state = self.lock();
            state.next_dead += 1;
            let id = state.next_dead;
            state.dead.insert(
                id,
                DeadLetter {
                    id: id.to_string(),
                    group: group.name().to_owned(),
                    original_id: delivery.id.clone(),
                    payload: delivery.payload.clone(),
                    error: error.to_owned(),
                    attempts: delivery.attempts,
                    dead_at: crate::domain::now(),
                },
            );
        }
        self.ack(group, std::slice::from_ref(&delivery.id)).await
    }

    async fn trim(&self) -> Result<Trimmed> {
        let mut state = self.lock();
        let keep_from = state
            .groups
            .values()
            .map(|g| {
                g.pending
                    .keys()
                    .next()
                    .copied()
                    .unwrap_or(g.last_delivered + 1)
            })
            .min()
            .unwrap_or(0);
        let keep = state.entries.split_off(&keep_from);
        let removed = std::mem::replace(&mut state.entries, keep).len();
        let published = state.published.split_off(&keep_from);
        state.published = published;
        let done_before = Some(
            state
                .published
                .values()
                .next()
                .copied()
                .unwrap_or_else(crate::domain::now),
        );
        Ok(Trimmed {
            removed: removed as u64,
            done_before,
        })
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        Ok(self.lock().dead.values().take(limit).cloned().collect())
    }

    async fn replay(&self, ids: &[String]) -> Result<usize> {
        let replayed: Vec<DeadLetter> = {
            let mut state = self.lock();
            let chosen: Vec<u64> = if ids.is_empty() {
                state.dead.keys().copied().collect()
            } else {
                ids.iter()
                    .filter_map(|id| parse_id(id))
                    .filter(|id| state.dead.contains_key(id))
                    .collect()
            };
            chosen
                .iter()
                .filter_map(|id| state.dead.remove(id))
                .collect()
        };
        let payloads: Vec<String> = replayed.iter().map(|d| d.payload.clone()).collect();
        self.publish(&payloads).await?;
        Ok(payloads.len())
    }

    async fn stats(&self) -> Result<QueueStats> {
        let state = self.lock();
        let mut pending: Vec<(Group, u64)> = Group::ALL
            .iter()
            .map(|g| {
                (
                    *g,
                    state.groups.get(g).map_or(0, |s| s.pending.len() as u64),
                )
            })
            .collect();
        pending.sort_by_key(|(g, _)| g.name());
        let mut lag: Vec<(Group, Option<u64>)> = Group::ALL
            .iter()
            .map(|g| {
                let after = state.groups.get(g).map_or(0, |s| s.last_delivered);
                (*g, Some(state.entries.range(after + 1..).count() as u64))
            })
            .collect();
        lag.sort_by_key(|(g, _)| g.name());
        Ok(QueueStats {
            length: state.entries.len() as u64,
            pending,
            lag,
            dead_letters: state.dead.len() as u64,
        })
    }

    fn backend(&self) -> &'static str {
        "in-process"
    }
}
