//! In-process buckets for the embedded mode (one process: nothing to share).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use super::gcra::{self, Outcome, Quota};

/// Past this many buckets, full ones (TAT in the past: they hold no information) are dropped.
const SWEEP_AT: usize = 100_000;

pub struct LocalBuckets {
    epoch: Instant,
    state: Mutex<State>,
}

struct State {
    tats: HashMap<String, i64>,
    sweep_at: usize,
}

impl Default for LocalBuckets {
    fn default() -> Self {
        LocalBuckets {
            epoch: Instant::now(),
            state: Mutex::new(State {
                tats: HashMap::new(),
                sweep_at: SWEEP_AT,
            }),
        }
    }
}

impl LocalBuckets {
    pub fn take(&self, key: &str, quota: Quota) -> Outcome {
        // Monotonic: a wall-clock step back must not hand out a fresh burst.
        let now = self.epoch.elapsed().as_micros() as i64;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (outcome, next) = gcra::step(state.tats.get(key).copied(), now, quota);
        if let Some(next) = next {
            state.tats.insert(key.to_owned(), next);
        }
        if state.tats.len() >= state.sweep_at {
            state.tats.retain(|_, tat| *tat > now);
            // Still large means that many clients are active: sweep again only once it doubles.
            state.sweep_at = (state.tats.len() * 2).max(SWEEP_AT);
        }
        outcome
    }
}
