//! Live subscriptions of one process. One reader task follows every chat that has a subscriber
//! here with one blocking multi-key read (not a connection per subscriber) and fans each entry
//! out to the subscribers' bounded buffers; a subscriber whose buffer is full is ended as slow
//! instead of buffering more.
//!
//! Resume without a gap or a repeat: a subscriber registers first (from then on the reader
//! hands it every entry past the chat's cursor), then reads its backlog from the log, then takes
//! live entries, skipping those at or before the last one it delivered. Entries up to the cursor
//! existed before it registered, so the backlog has them; later ones come from the reader.
//!
//! "Older than retained": the entry after `after` has `prev > after` (entries between were
//! trimmed), or nothing is left after `after` although the head is past it, or `after` is past
//! the head (an id from a log that was lost). The subscriber then gets [`Item::Reset`] and goes
//! on live from the head.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, Weak};
use std::time::Duration;

use prometheus::{Histogram, IntCounterVec, IntGauge};
use tokio::sync::mpsc;

use super::{Entry, EntryId, Feed, application_log};
use crate::error::Error;

/// Longest wait of one follow round; an interrupt ends it sooner.
const BLOCK: Duration = Duration::from_secs(5);
/// Entries per chat per follow round, and per backlog page.
const PAGE: usize = 256;
/// The event type that ends a chat's streams.
pub const CHAT_DELETED: &str = "chat.deleted";
/// The event type, in an application's log, that ends the streams of all its chats (each with
/// a final `chat.deleted`).
pub const APPLICATION_DELETED: &str = "application.deleted";

pub static SUBSCRIBERS: LazyLock<IntGauge> = LazyLock::new(|| {
    let g = IntGauge::new(
        "chat_stream_subscribers",
        "Open live streams in this process",
    )
    .expect("valid metric");
    crate::metrics::REGISTRY
        .register(Box::new(g.clone()))
        .expect("registered once");
    g
});
pub static DISCONNECTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let c = IntCounterVec::new(
        prometheus::Opts::new(
            "chat_stream_disconnects_total",
            "Live streams ended, by reason (client, slow, shutdown, deleted, unavailable)",
        ),
        &["reason"],
    )
    .expect("valid metric");
    crate::metrics::REGISTRY
        .register(Box::new(c.clone()))
        .expect("registered once");
    c
});
pub static DELIVERY_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    let h = Histogram::with_opts(
        prometheus::HistogramOpts::new(
            "chat_stream_delivery_seconds",
            "From an event's append to its chat's log (its id's time) to its hand-over to a stream",
        )
        .buckets(vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ]),
    )
    .expect("valid metric");
    crate::metrics::REGISTRY
        .register(Box::new(h.clone()))
        .expect("registered once");
    h
});
static FOLLOW_FAILURES: LazyLock<prometheus::IntCounter> = LazyLock::new(|| {
    let c = prometheus::IntCounter::new(
        "chat_stream_follow_failures_total",
        "Follow rounds of the live-stream reader that failed (Redis unreachable)",
    )
    .expect("valid metric");
    crate::metrics::REGISTRY
        .register(Box::new(c.clone()))
        .expect("registered once");
    c
});

#[derive(Debug, Clone, Copy)]
pub struct StreamSettings {
    /// Entries a subscriber may have waiting before it is ended as slow.
    pub buffer: usize,
    /// Open streams per application (token) in this process.
    pub per_token: usize,
}

/// Why a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Its buffer filled: the client reads slower than events arrive.
    Slow,
    /// The server is shutting down.
    Shutdown,
    /// The chat was deleted.
    Deleted,
    /// The log cannot be read (Redis unreachable).
    Unavailable,
}

impl End {
    pub fn reason(self) -> &'static str {
        match self {
            End::Slow => "slow",
            End::Shutdown => "shutdown",
            End::Deleted => "deleted",
            End::Unavailable => "unavailable",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Event(Arc<Entry>),
    /// Events after the requested id are no longer retained: re-sync through the listing, then
    /// follow from this id.
    Reset(EntryId),
    End(End),
}

#[derive(Debug)]
pub enum SubscribeError {
    /// The application already has `limit` open streams here.
    TooMany {
        limit: usize,
    },
    Unavailable(Error),
}

pub struct Hub {
    feed: Arc<dyn Feed>,
    settings: StreamSettings,
    inner: Mutex<Inner>,
    reader: OnceLock<()>,
}

#[derive(Default)]
struct Inner {
    chats: HashMap<i64, Followed>,
    per_app: HashMap<i64, usize>,
    next_id: u64,
}

struct Followed {
    /// The newest entry handed out (or the head when following began).
    cursor: EntryId,
    subs: HashMap<u64, Sub>,
}

struct Sub {
    tx: mpsc::Sender<Arc<Entry>>,
    end: Arc<OnceLock<End>>,
}

impl Hub {
    pub fn new(feed: Arc<dyn Feed>, settings: StreamSettings) -> Arc<Hub> {
        LazyLock::force(&SUBSCRIBERS);
        LazyLock::force(&DISCONNECTS);
        LazyLock::force(&DELIVERY_SECONDS);
        Arc::new(Hub {
            feed,
            settings: StreamSettings {
                buffer: settings.buffer.max(1),
                per_token: settings.per_token,
            },
            inner: Mutex::new(Inner::default()),
            reader: OnceLock::new(),
        })
    }

    pub fn settings(&self) -> StreamSettings {
        self.settings
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Open streams in this process (for tests and metrics). Each is also registered under its
    /// application's log: counted once, under its chat.
    pub fn subscribers(&self) -> usize {
        self.lock()
            .chats
            .iter()
            .filter(|(log, _)| **log > 0)
            .map(|(_, f)| f.subs.len())
            .sum()
    }

    /// Entries waiting in subscribers' buffers, summed (what a slow client can hold here).
    pub fn buffered(&self) -> usize {
        self.lock()
            .chats
            .iter()
            .filter(|(log, _)| **log > 0)
            .flat_map(|(_, f)| f.subs.values())
            .map(|s| s.tx.max_capacity() - s.tx.capacity())
            .sum()
    }

    /// Subscribes to a chat's events after `after` (`None`: only events from now on). The
    /// chat's number names it in the final `chat.deleted` when its application is deleted.
    pub async fn subscribe(
        self: &Arc<Self>,
        application_id: i64,
        chat_id: i64,
        chat_number: i64,
        after: Option<EntryId>,
    ) -> Result<Subscription, SubscribeError> {
        {
            let mut inner = self.lock();
            let open = inner.per_app.entry(application_id).or_default();
            if *open >= self.settings.per_token {
                return Err(SubscribeError::TooMany {
                    limit: self.settings.per_token,
                });
            }
            *open += 1;
        }
        // From here on the reservation is released by the subscription's drop.
        let mut subscription = Subscription {
            hub: self.clone(),
            id: 0,
            application_id,
            chat_id,
            chat_number,
            rx: None,
            end: Arc::new(OnceLock::new()),
            last: EntryId::ZERO,
            phase: Phase::Live,
            pending: VecDeque::new(),
            ended: false,
            delivered: RecentKeys::default(),
        };
        self.start_reader();
        let app_log = application_log(application_id);
        let heads = async {
            Ok::<_, Error>((
                self.feed.head(chat_id).await?,
                self.feed.head(app_log).await?,
            ))
        };
        let (head, app_head) = match heads.await {
            Ok((head, app_head)) => (head.unwrap_or(EntryId::ZERO), app_head),
            Err(err) => {
                // Never opened: not a disconnect.
                subscription.ended = true;
                return Err(SubscribeError::Unavailable(err));
            }
        };
        let (tx, rx) = mpsc::channel(self.settings.buffer);
        let added = {
            let mut inner = self.lock();
            inner.next_id += 1;
            subscription.id = inner.next_id;
            let mut added = false;
            for (log, cursor) in [
                (chat_id, head),
                (app_log, app_head.unwrap_or(EntryId::ZERO)),
            ] {
                let followed = inner.chats.entry(log).or_insert_with(|| {
                    added = true;
                    Followed {
                        cursor,
                        subs: HashMap::new(),
                    }
                });
                followed.subs.insert(
                    subscription.id,
                    Sub {
                        tx: tx.clone(),
                        end: subscription.end.clone(),
                    },
                );
            }
            added
        };
        SUBSCRIBERS.inc();
        subscription.rx = Some(rx);
        subscription.last = head;
        if let Some(deleted) = app_head {
            // Deleted between the token's lookup and now.
            subscription.pending.push_back(Item::Event(Arc::new(Entry {
                id: deleted,
                prev: EntryId::ZERO,
                origin: deleted,
                key: APPLICATION_DELETED.into(),
                kind: APPLICATION_DELETED.into(),
                data: "{}".into(),
            })));
        }
        match after {
            None => {}
            Some(after) if after > head => subscription.pending.push_back(Item::Reset(head)),
            Some(after) => {
                subscription.last = after;
                subscription.phase = Phase::Backlog;
            }
        }
        if added && let Err(err) = self.feed.interrupt().await {
            // The reader picks the chat up at its next round anyway (within `BLOCK`).
            tracing::warn!(error = %err, "could not interrupt the live-stream reader");
        }
        Ok(subscription)
    }

    fn start_reader(self: &Arc<Self>) {
        self.reader.get_or_init(|| {
            tokio::spawn(read(Arc::downgrade(self), self.feed.clone()));
        });
    }

    fn cursors(&self) -> Vec<(i64, EntryId)> {
        self.lock()
            .chats
            .iter()
            .map(|(chat, f)| (*chat, f.cursor))
            .collect()
    }

    fn fan_out(&self, found: Vec<(i64, Vec<Entry>)>) {
        let mut inner = self.lock();
        let mut slow = Vec::new();
        for (chat, entries) in found {
            let Some(followed) = inner.chats.get_mut(&chat) else {
                continue;
            };
            for entry in entries {
                if entry.id <= followed.cursor {
                    continue;
                }
                followed.cursor = entry.id;
                let entry = Arc::new(entry);
                followed
                    .subs
                    .retain(|id, sub| match sub.tx.try_send(entry.clone()) {
                        Ok(()) => true,
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            let _ = sub.end.set(End::Slow);
                            slow.push(*id);
                            false
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => false,
                    });
            }
        }
        if !slow.is_empty() {
            // Its sender under the application's log too, so its channel closes.
            for followed in inner.chats.values_mut() {
                followed.subs.retain(|id, _| !slow.contains(id));
            }
        }
    }

    fn unsubscribe(&self, application_id: i64, chat_id: i64, id: u64) {
        let mut inner = self.lock();
        for log in [chat_id, application_log(application_id)] {
            if let Some(followed) = inner.chats.get_mut(&log) {
                followed.subs.remove(&id);
                if followed.subs.is_empty() {
                    inner.chats.remove(&log);
                }
            }
        }
        if let Some(open) = inner.per_app.get_mut(&application_id) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                inner.per_app.remove(&application_id);
            }
        }
    }
}

/// The reader: follows every chat with a subscriber here, until the hub is gone.
async fn read(hub: Weak<Hub>, feed: Arc<dyn Feed>) {
    let mut failures = 0u32;
    loop {
        let Some(cursors) = hub.upgrade().map(|h| h.cursors()) else {
            return;
        };
        match feed.follow(&cursors, PAGE, BLOCK).await {
            Ok(found) => {
                failures = 0;
                match hub.upgrade() {
                    Some(hub) if !found.is_empty() => hub.fan_out(found),
                    Some(_) => {}
                    None => return,
                }
            }
            Err(err) => {
                failures += 1;
                FOLLOW_FAILURES.inc();
                tracing::warn!(error = %err, failures, "live-stream reader failed; retrying");
                let pause = Duration::from_millis(100 * u64::from(failures.min(20)));
                tokio::time::sleep(pause).await;
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Backlog,
    Live,
    Done(End),
}

/// One open stream. Dropping it unsubscribes.
pub struct Subscription {
    hub: Arc<Hub>,
    id: u64,
    application_id: i64,
    chat_id: i64,
    chat_number: i64,
    rx: Option<mpsc::Receiver<Arc<Entry>>>,
    end: Arc<OnceLock<End>>,
    /// The last entry delivered (or skipped past by a reset).
    last: EntryId,
    phase: Phase,
    pending: VecDeque<Item>,
    ended: bool,
    /// Keys of recently delivered events: a log lost with Redis is written anew from the
    /// retained outbox, under new ids, and a live subscriber must not see those events twice
    /// (a resuming one gets a reset: see `backlog`).
    delivered: RecentKeys,
}

/// The last [`RECENT_KEYS`] keys delivered, as hashes (a few bytes each per subscriber).
#[derive(Default)]
struct RecentKeys {
    set: std::collections::HashSet<u64>,
    order: VecDeque<u64>,
}

const RECENT_KEYS: usize = 1024;

impl RecentKeys {
    fn hash(key: &str) -> u64 {
        use std::hash::{BuildHasher, BuildHasherDefault};
        BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(key)
    }

    fn contains(&self, key: &str) -> bool {
        self.set.contains(&Self::hash(key))
    }

    fn insert(&mut self, key: &str) {
        let hash = Self::hash(key);
        if !self.set.insert(hash) {
            return;
        }
        self.order.push_back(hash);
        if self.order.len() > RECENT_KEYS
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
    }
}

impl Subscription {
    /// The next item; after an [`Item::End`] the stream is over and answers `None`.
    pub async fn next(&mut self) -> Option<Item> {
        loop {
            if self.ended {
                return None;
            }
            if let Some(item) = self.pending.pop_front() {
                return Some(self.hand_over(item));
            }
            match self.phase {
                Phase::Done(end) => return Some(self.hand_over(Item::End(end))),
                Phase::Backlog => {
                    if let Err(err) = self.backlog().await {
                        tracing::warn!(error = %err, "live-stream backlog unreadable");
                        self.phase = Phase::Done(End::Unavailable);
                    }
                }
                Phase::Live => {
                    let rx = self.rx.as_mut()?;
                    match rx.recv().await {
                        // From the application's log: its ids are not comparable to the chat's.
                        Some(entry) if entry.kind == APPLICATION_DELETED => {
                            return Some(self.hand_over(Item::Event(entry)));
                        }
                        Some(entry) if entry.id <= self.last => {}
                        Some(entry) => {
                            self.last = entry.id;
                            if !self.delivered.contains(&entry.key) {
                                return Some(self.hand_over(Item::Event(entry)));
                            }
                        }
                        None => {
                            let end = self.end.get().copied().unwrap_or(End::Unavailable);
                            self.phase = Phase::Done(end);
                        }
                    }
                }
            }
        }
    }

    /// Ends the stream as the server shuts down (counted once).
    pub fn shut_down(&mut self) -> Item {
        self.hand_over(Item::End(End::Shutdown))
    }

    async fn backlog(&mut self) -> crate::Result<()> {
        let feed = &self.hub.feed;
        let head = feed.head(self.chat_id).await?.unwrap_or(EntryId::ZERO);
        let page = feed.range(self.chat_id, self.last, PAGE).await?;
        let gap = match page.first() {
            // Entries between were trimmed, or `last` is from an older incarnation of the log
            // (whose events the new one may hold again under new ids).
            Some(first) => {
                first.prev > self.last || (self.last != EntryId::ZERO && first.origin > self.last)
            }
            None => head > self.last,
        };
        if gap {
            self.last = self.last.max(head);
            self.pending.push_back(Item::Reset(self.last));
            self.phase = Phase::Live;
            return Ok(());
        }
        if page.len() < PAGE {
            self.phase = Phase::Live;
        }
        if let Some(newest) = page.last() {
            self.last = newest.id;
        }
        self.pending
            .extend(page.into_iter().map(|e| Item::Event(Arc::new(e))));
        Ok(())
    }

    fn hand_over(&mut self, item: Item) -> Item {
        let item = match item {
            // The application's deletion ends this chat's stream as the chat's own would.
            Item::Event(entry) if entry.kind == APPLICATION_DELETED => {
                let deleted_at = serde_json::from_str::<serde_json::Value>(&entry.data)
                    .ok()
                    .and_then(|v| v.get("deleted_at").cloned())
                    .unwrap_or(serde_json::Value::Null);
                Item::Event(Arc::new(Entry {
                    id: entry.id,
                    prev: EntryId::ZERO,
                    origin: entry.origin,
                    key: CHAT_DELETED.into(),
                    kind: CHAT_DELETED.into(),
                    data:
                        serde_json::json!({ "number": self.chat_number, "deleted_at": deleted_at })
                            .to_string(),
                }))
            }
            item => item,
        };
        match &item {
            Item::Event(entry) => {
                self.delivered.insert(&entry.key);
                let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
                DELIVERY_SECONDS.observe(now.saturating_sub(entry.id.ms) as f64 / 1000.0);
                if entry.kind == CHAT_DELETED {
                    self.phase = Phase::Done(End::Deleted);
                    self.pending.clear();
                }
            }
            Item::End(end) => {
                DISCONNECTS.with_label_values(&[end.reason()]).inc();
                self.ended = true;
            }
            Item::Reset(_) => {}
        }
        item
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if self.rx.is_some() {
            SUBSCRIBERS.dec();
        }
        if !self.ended {
            DISCONNECTS.with_label_values(&["client"]).inc();
        }
        self.hub
            .unsubscribe(self.application_id, self.chat_id, self.id);
    }
}
