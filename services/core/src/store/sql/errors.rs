//! What a database error means to the core. The portable part (unique and foreign-key
//! violations, connection and pool failures) is decided here; what only a server's error
//! codes tell (a deadlock, "try again later") each [`Dialect`] decides for its own errors.

use sqlx::error::DatabaseError;

use super::Dialect;
use crate::error::Error;

/// A database-specific condition the portable checks cannot see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The transaction was rolled back to break a deadlock ([`Error::Deadlock`]).
    Deadlock,
    /// The server cannot serve now but will ([`Error::DatabaseUnavailable`]).
    Transient,
}

/// Asks each dialect in turn; each recognises only its own driver's errors.
fn failure(db: &dyn DatabaseError) -> Option<Failure> {
    <sqlx::MySql as Dialect>::failure(db).or_else(|| <sqlx::Sqlite as Dialect>::failure(db))
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
            E::Database(db) => match failure(db.as_ref()) {
                Some(Failure::Deadlock) => Error::Deadlock(err.to_string()),
                Some(Failure::Transient) => Error::DatabaseUnavailable(err.to_string()),
                None => Error::Database(err.to_string()),
            },
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
