//! In-process numbering for the embedded mode and single-process deployments.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::Numbers;
use crate::domain::Sequence;
use crate::error::Result;

/// Counters live in memory; after a restart each one is re-seeded from the store on first use.
#[derive(Default)]
pub struct LocalNumbers {
    counters: Mutex<HashMap<Sequence, i64>>,
}

impl LocalNumbers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets every counter, as a Redis restart would (tests use it to exercise re-seeding).
    pub fn forget_all(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Sequence, i64>> {
        // A poisoned map still holds valid counters: the critical sections cannot panic halfway.
        self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Numbers for LocalNumbers {
    async fn next(&self, sequence: Sequence) -> Result<Option<i64>> {
        Ok(self.lock().get_mut(&sequence).map(|n| {
            *n += 1;
            *n
        }))
    }

    async fn next_above(&self, sequence: Sequence, floor: i64) -> Result<i64> {
        let mut counters = self.lock();
        let n = counters.entry(sequence).or_insert(floor);
        *n = (*n).max(floor) + 1;
        Ok(*n)
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "in-process"
    }
}
