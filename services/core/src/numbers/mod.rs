//! The numbering port: hands out chat and message numbers. Every adapter passes the same
//! conformance suite (`services/core/tests/numbers_conformance.rs`).
//!
//! A counter can be *unknown* (never used, or lost when Redis restarted): the adapter then says
//! so instead of guessing, and the service seeds it from the store's highest number.

mod local;
mod redis;

pub use self::local::LocalNumbers;
pub use self::redis::RedisNumbers;

use async_trait::async_trait;

use crate::domain::Sequence;
use crate::error::Result;

#[async_trait]
pub trait Numbers: Send + Sync + 'static {
    /// The next number of a known counter, or `None` when the counter is unknown.
    async fn next(&self, sequence: Sequence) -> Result<Option<i64>>;

    /// Raises the counter to at least `floor` (creating it if unknown; never lowering it) and
    /// returns the next number, atomically: two callers never get the same number.
    async fn next_above(&self, sequence: Sequence, floor: i64) -> Result<i64>;

    /// Fails when the backend cannot answer (readiness reports it).
    async fn ping(&self) -> Result<()>;

    /// The backend's name for logs and readiness ("redis", "in-process").
    fn backend(&self) -> &'static str;
}
