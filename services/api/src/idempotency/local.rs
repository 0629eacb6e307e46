//! In-process idempotency store (embedded mode). Bounded twice: at most `capacity` keys and
//! `budget` bytes of stored responses; past either, the oldest keys are evicted first.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::store::Entry;

pub struct LocalStore {
    capacity: usize,
    budget: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Slot>,
    /// Insertion order: sequence number → key.
    order: BTreeMap<u64, String>,
    next: u64,
    bytes: usize,
}

struct Slot {
    entry: Entry,
    expires: Instant,
    seq: u64,
    size: usize,
}

impl LocalStore {
    pub fn new(capacity: usize, budget: usize) -> LocalStore {
        LocalStore {
            capacity: capacity.max(1),
            budget,
            state: Mutex::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn begin(&self, key: &str, marker: &Entry, in_flight_ms: u64) -> Option<Entry> {
        let mut state = self.lock();
        let now = Instant::now();
        if let Some(slot) = state.entries.get(key) {
            if slot.expires > now {
                return Some(slot.entry.clone());
            }
            state.remove(key);
        }
        self.insert(&mut state, key, marker.clone(), in_flight_ms, now);
        None
    }

    pub fn finish(&self, key: &str, marker: &Entry, done: &Entry, ttl_ms: u64) {
        let mut state = self.lock();
        if state.entries.get(key).is_some_and(|s| &s.entry == marker) {
            state.remove(key);
            self.insert(&mut state, key, done.clone(), ttl_ms, Instant::now());
        }
    }

    pub fn abandon(&self, key: &str, marker: &Entry) {
        let mut state = self.lock();
        if state.entries.get(key).is_some_and(|s| &s.entry == marker) {
            state.remove(key);
        }
    }

    fn insert(&self, state: &mut State, key: &str, entry: Entry, ttl_ms: u64, now: Instant) {
        let size = key.len()
            + match &entry {
                Entry::Done { response, .. } => response.size(),
                Entry::InFlight { .. } => 0,
            };
        let seq = state.next;
        state.next += 1;
        state.order.insert(seq, key.to_owned());
        state.bytes += size;
        state.entries.insert(
            key.to_owned(),
            Slot {
                entry,
                expires: now + Duration::from_millis(ttl_ms),
                seq,
                size,
            },
        );
        while state.entries.len() > self.capacity || state.bytes > self.budget {
            let Some((_, oldest)) = state.order.pop_first() else {
                break;
            };
            if oldest == key {
                // Never evict what was just stored: put it back and stop.
                state.order.insert(seq, oldest);
                break;
            }
            if let Some(slot) = state.entries.remove(&oldest) {
                state.bytes -= slot.size;
            }
        }
    }
}

impl State {
    fn remove(&mut self, key: &str) {
        if let Some(slot) = self.entries.remove(key) {
            self.order.remove(&slot.seq);
            self.bytes -= slot.size;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idempotency::store::Stored;

    fn done(body: &str) -> Entry {
        Entry::Done {
            fingerprint: "f".into(),
            response: Stored {
                status: 201,
                content_type: None,
                location: None,
                body: body.into(),
            },
        }
    }

    fn marker() -> Entry {
        Entry::InFlight {
            owner: "o".into(),
            fingerprint: "f".into(),
        }
    }

    #[test]
    fn the_oldest_keys_go_first_past_the_capacity() {
        let store = LocalStore::new(3, usize::MAX);
        for key in ["a", "b", "c", "d"] {
            assert_eq!(store.begin(key, &marker(), 60_000), None);
            store.finish(key, &marker(), &done(key), 60_000);
        }
        assert_eq!(store.len(), 3);
        // "a" was evicted: it can be claimed again; "d" is still there.
        assert_eq!(store.begin("a", &marker(), 60_000), None);
        assert_eq!(store.begin("d", &marker(), 60_000), Some(done("d")));
    }

    #[test]
    fn the_byte_budget_evicts_too() {
        let store = LocalStore::new(1000, 250);
        for key in ["a", "b", "c"] {
            store.begin(key, &marker(), 60_000);
            store.finish(key, &marker(), &done(&"x".repeat(100)), 60_000);
        }
        assert_eq!(store.len(), 2);
        assert_eq!(store.begin("a", &marker(), 60_000), None);
    }

    #[test]
    fn expired_keys_are_free_again() {
        let store = LocalStore::new(10, usize::MAX);
        store.begin("a", &marker(), 1);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(store.begin("a", &marker(), 60_000), None);
    }

    #[test]
    fn only_the_owner_finishes_or_abandons() {
        let store = LocalStore::new(10, usize::MAX);
        let other = Entry::InFlight {
            owner: "other".into(),
            fingerprint: "f".into(),
        };
        store.begin("a", &marker(), 60_000);
        store.finish("a", &other, &done("x"), 60_000);
        store.abandon("a", &other);
        assert_eq!(store.begin("a", &other, 60_000), Some(marker()));
        store.abandon("a", &marker());
        assert!(store.is_empty());
    }
}
