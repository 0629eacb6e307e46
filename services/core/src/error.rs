use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the core can fail with. The api crate maps each variant to one HTTP status. The
/// adapters say which variant a driver's error is: `store/sql/errors.rs` (with each SQL
/// dialect's error codes) and [`crate::redis_conn::failed`].
#[derive(Debug, Clone, Error)]
pub enum Error {
    /// The addressed application, chat or message does not exist.
    #[error("{0} not found")]
    NotFound(Entity),

    /// A body field broke a domain rule.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },

    /// The number (or token) the adapter was asked to insert is already used. Internal: the
    /// service re-seeds its numbering and retries, so callers only see it as [`Error::Contention`].
    #[error("unique key already taken")]
    Taken,

    /// The database rolled the transaction back to break a deadlock (concurrent inserts
    /// checking the same unique keys). Nothing was written; the service retries at once.
    #[error("transaction chosen as a deadlock victim: {0}")]
    Deadlock(String),

    /// The token addressed the application but is no longer its current token (it was
    /// rotated; it may still work in its grace period, but cannot rotate again).
    #[error("this token was already rotated; use the new token")]
    TokenRotated,
    /// A foreign key refused the write: the parent (chat or application) was purged after the
    /// request looked it up, or (for the purge) a row still has children. Clients see a 404:
    /// what they addressed is gone.
    #[error("foreign key refused the write: {0}")]
    ParentGone(String),

    /// Numbering kept colliding after re-seeding; the client may retry.
    #[error("could not allocate a number after {attempts} attempts")]
    Contention { attempts: u32 },

    /// The database cannot be reached or refused to serve (connection, pool, timeouts).
    #[error("database unavailable: {0}")]
    DatabaseUnavailable(String),

    /// Redis cannot be reached or timed out.
    #[error("redis unavailable: {0}")]
    RedisUnavailable(String),

    /// The search backend cannot be reached, is overloaded, or (embedded) is not open yet.
    #[error("search unavailable: {0}")]
    SearchUnavailable(String),

    /// The search backend refused a request as such (too large, malformed): retrying it
    /// unchanged cannot succeed, a smaller or different one may.
    #[error("search request rejected: {0}")]
    SearchRejected(String),

    /// A database error that is not the client's fault and not an outage: a bug or a schema drift.
    #[error("database error: {0}")]
    Database(String),

    /// Migrations could not be applied or the schema does not match this release.
    #[error("migration: {0}")]
    Migration(String),

    /// A setting was rejected after parsing (its name is part of the message).
    #[error("{0}")]
    Config(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Application,
    Chat,
    Message,
}

impl std::fmt::Display for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Entity::Application => "chat application",
            Entity::Chat => "chat",
            Entity::Message => "message",
        })
    }
}
