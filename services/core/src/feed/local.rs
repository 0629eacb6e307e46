//! In-process feed for the embedded mode: the Redis adapter's semantics in memory (ids from the
//! wall clock, the same caps, the same duplicate check). A restart loses the logs; clients
//! resuming then get a `reset` (their id is past every head).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Notify;

use super::{Append, Entry, EntryId, Feed, Retention};
use crate::error::Result;

pub struct LocalFeed {
    state: Mutex<State>,
    changed: Notify,
    retention: Retention,
}

#[derive(Default)]
struct State {
    logs: HashMap<i64, Log>,
    last: EntryId,
    /// When the idle logs were last looked at (see `sweep`).
    swept: Option<Instant>,
    interrupts: u64,
    interrupts_seen: u64,
}

struct Log {
    entries: VecDeque<Entry>,
    head: EntryId,
    origin: EntryId,
    /// Keys of the retained window, with the id they were appended under.
    keys: HashMap<String, EntryId>,
    touched: Instant,
}

impl LocalFeed {
    pub fn new(retention: Retention) -> Self {
        LocalFeed {
            state: Mutex::new(State::default()),
            changed: Notify::new(),
            retention,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding it leaves consistent data (every change is one push or pop).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now_ms() -> u64 {
        chrono::Utc::now().timestamp_millis().max(0) as u64
    }

    fn entries_after(log: &Log, after: EntryId, max: usize) -> Vec<Entry> {
        let start = log.entries.partition_point(|e| e.id <= after);
        log.entries.iter().skip(start).take(max).cloned().collect()
    }
}

impl State {
    fn next_id(&mut self, now_ms: u64) -> EntryId {
        self.last = if now_ms > self.last.ms {
            EntryId { ms: now_ms, seq: 0 }
        } else {
            EntryId {
                ms: self.last.ms,
                seq: self.last.seq + 1,
            }
        };
        self.last
    }

    /// Drops logs idle for twice the age cap (Redis lets such keys expire). At most once a
    /// minute: the map is walked whole.
    fn sweep(&mut self, retention: Retention) {
        if self
            .swept
            .is_some_and(|at| at.elapsed() < Duration::from_secs(60))
        {
            return;
        }
        self.swept = Some(Instant::now());
        let idle = retention.max_age * 2;
        self.logs.retain(|_, log| log.touched.elapsed() < idle);
    }
}

impl Log {
    fn trim(&mut self, retention: Retention, now_ms: u64) {
        let cutoff = now_ms.saturating_sub(retention.max_age.as_millis() as u64);
        while self.entries.len() as u64 > retention.max_len
            || self.entries.front().is_some_and(|e| e.id.ms < cutoff)
        {
            self.entries.pop_front();
        }
        // Keys outlive their entries a little, as in Redis (where trimming is approximate).
        if self.keys.len() as u64 > retention.max_len * 2 {
            let floor = self.entries.front().map_or(self.head, |e| e.id);
            self.keys.retain(|_, id| *id >= floor);
        }
    }
}

#[async_trait]
impl Feed for LocalFeed {
    async fn append(&self, items: &[Append]) -> Result<Vec<Option<EntryId>>> {
        let now_ms = Self::now_ms();
        let mut ids = Vec::with_capacity(items.len());
        {
            let mut state = self.lock();
            state.sweep(self.retention);
            for item in items {
                let id = state.next_id(now_ms);
                let log = state.logs.entry(item.chat_id).or_insert_with(|| Log {
                    entries: VecDeque::new(),
                    head: EntryId::ZERO,
                    origin: EntryId::ZERO,
                    keys: HashMap::new(),
                    touched: Instant::now(),
                });
                log.touched = Instant::now();
                if log.keys.contains_key(&item.key) {
                    ids.push(None);
                    continue;
                }
                if log.head == EntryId::ZERO {
                    log.origin = id;
                }
                log.entries.push_back(Entry {
                    id,
                    prev: log.head,
                    origin: log.origin,
                    key: item.key.clone(),
                    kind: item.kind.clone(),
                    data: item.data.clone(),
                });
                log.head = id;
                log.keys.insert(item.key.clone(), id);
                log.trim(self.retention, now_ms);
                ids.push(Some(id));
            }
        }
        self.changed.notify_waiters();
        Ok(ids)
    }

    async fn head(&self, chat_id: i64) -> Result<Option<EntryId>> {
        Ok(self.lock().logs.get(&chat_id).map(|log| log.head))
    }

    async fn range(&self, chat_id: i64, after: EntryId, max: usize) -> Result<Vec<Entry>> {
        let now_ms = Self::now_ms();
        let mut state = self.lock();
        Ok(match state.logs.get_mut(&chat_id) {
            Some(log) => {
                log.trim(self.retention, now_ms);
                Self::entries_after(log, after, max)
            }
            None => Vec::new(),
        })
    }

    async fn follow(
        &self,
        cursors: &[(i64, EntryId)],
        max: usize,
        block: Duration,
    ) -> Result<Vec<(i64, Vec<Entry>)>> {
        let deadline = tokio::time::Instant::now() + block;
        loop {
            // Registered before looking, so an append between the look and the wait wakes it.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let found: Vec<(i64, Vec<Entry>)> = {
                let mut state = self.lock();
                // An interrupt since the last follow (even one before this call began): the
                // caller starts again with its new cursors.
                if state.interrupts != state.interrupts_seen {
                    state.interrupts_seen = state.interrupts;
                    return Ok(Vec::new());
                }
                cursors
                    .iter()
                    .filter_map(|(chat, after)| {
                        let log = state.logs.get(chat)?;
                        let entries = Self::entries_after(log, *after, max);
                        (!entries.is_empty()).then_some((*chat, entries))
                    })
                    .collect()
            };
            if !found.is_empty() {
                return Ok(found);
            }
            tokio::select! {
                () = &mut changed => {}
                () = tokio::time::sleep_until(deadline) => return Ok(Vec::new()),
            }
        }
    }

    async fn interrupt(&self) -> Result<()> {
        self.lock().interrupts += 1;
        self.changed.notify_waiters();
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "in-process"
    }
}
