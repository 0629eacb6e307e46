use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the core can fail with. The api crate maps each variant to one HTTP status.
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

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        use sqlx::Error as E;
        // sqlx reports a handshake failure as `Tls` or, from inside the stream, as `Io`.
        if matches!(err, E::Tls(_) | E::Io(_))
            && let Some(problem) = crate::tls::certificate_problem(&err)
        {
            return database_certificate(&problem);
        }
        match &err {
            E::Database(db) if db.is_unique_violation() => Error::Taken,
            E::Database(db) if db.is_foreign_key_violation() => Error::ParentGone(err.to_string()),
            E::Database(db) if is_deadlock(db.as_ref()) => Error::Deadlock(err.to_string()),
            E::Database(db) if is_transient(db.as_ref()) => {
                Error::DatabaseUnavailable(err.to_string())
            }
            E::Io(_)
            | E::Tls(_)
            | E::PoolTimedOut
            | E::PoolClosed
            | E::WorkerCrashed
            | E::Protocol(_) => Error::DatabaseUnavailable(err.to_string()),
            _ => Error::Database(err.to_string()),
        }
    }
}

/// MySQL 1213. (SQLite has one writer at a time: it cannot deadlock.)
fn is_deadlock(db: &dyn sqlx::error::DatabaseError) -> bool {
    db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .is_some_and(|mysql| mysql.number() == 1213)
}

/// Server-side conditions that mean "try again later", not "bug": MySQL too many connections
/// (1040), server shutdown (1053), lock wait timeout (1205), read-only (1290,
/// 1836); SQLite busy / locked (primary codes 5, 6, with any extended code).
fn is_transient(db: &dyn sqlx::error::DatabaseError) -> bool {
    if let Some(mysql) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return matches!(mysql.number(), 1040 | 1053 | 1205 | 1290 | 1836);
    }
    db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
        && db
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| matches!(code & 0xff, 5 | 6))
}

/// One line naming what to fix, instead of the driver's nested wording.
fn database_certificate(problem: &str) -> Error {
    Error::DatabaseUnavailable(format!(
        "the database server's TLS certificate did not verify: {problem} (check DATABASE_URL's \
         host and ssl-mode, and the CA in CHAT_DATABASE_CA_FILE or ssl-ca)"
    ))
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        // The migrator's first query is where an untrusted server shows up.
        if let Some(problem) = crate::tls::certificate_problem(&err) {
            return database_certificate(&problem);
        }
        Error::Migration(err.to_string())
    }
}

impl From<redis::RedisError> for Error {
    fn from(err: redis::RedisError) -> Self {
        crate::metrics::REDIS_ERRORS.inc();
        if let Some(problem) = crate::tls::certificate_problem(&err) {
            return Error::RedisUnavailable(format!(
                "the Redis server's TLS certificate did not verify: {problem} (check REDIS_URL's \
                 host and CHAT_REDIS_CA_FILE)"
            ));
        }
        Error::RedisUnavailable(err.to_string())
    }
}
