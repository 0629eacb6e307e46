//! Which parts one process runs. Every subcommand that serves picks one of these presets; the
//! tests and the bench start the same presets through [`crate::App`], so what they exercise is
//! what production starts.
//!
//! What each part may touch:
//! - **public api**: the REST port, the service layer (store, numbering, search reads), the
//!   rate-limit and idempotency guards, live streams.
//! - **relay**: the outbox table → the queue and the chats' feed logs.
//! - **indexer**: the queue → the search index (the only part that writes documents).
//! - **counter**: the queue → `chats_count` / `messages_count`, and the purge of deleted chats
//!   and applications (rows and their search documents).
//!
//! Every process also serves the admin port (`/up`, `/readyz`, `/metrics`).

use chat_core::config::Settings;
use chat_core::wiring::Schema;
use chat_core::{Error, Result};
use chat_search::Access;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub public_api: bool,
    pub relay: bool,
    pub indexer: bool,
    pub counter: bool,
    /// Whether start-up applies pending migrations (`serve`) or refuses a schema older than
    /// this release (the distributed roles: migrations are a one-shot `migrate` there).
    pub schema: Schema,
}

impl Roles {
    const NONE: Roles = Roles {
        public_api: false,
        relay: false,
        indexer: false,
        counter: false,
        schema: Schema::Check,
    };

    /// `serve`: everything in one process.
    pub const SERVE: Roles = Roles {
        public_api: true,
        relay: true,
        indexer: true,
        counter: true,
        schema: Schema::Migrate,
    };

    /// `api`: the public port and the relay of its own writes.
    pub const API: Roles = Roles {
        public_api: true,
        relay: true,
        ..Roles::NONE
    };

    /// `indexer`.
    pub const INDEXER: Roles = Roles {
        indexer: true,
        ..Roles::NONE
    };

    /// `counter` (and the purge).
    pub const COUNTER: Roles = Roles {
        counter: true,
        ..Roles::NONE
    };

    /// `api`'s parts for these settings. Without `REDIS_URL` the queue is in-process, so no
    /// other process could read it: the api process then runs the indexer and the counter
    /// itself (correct for exactly one api process).
    pub fn api(settings: &Settings) -> Roles {
        if settings.redis_url.is_some() {
            Roles::API
        } else {
            Roles {
                indexer: true,
                counter: true,
                ..Roles::API
            }
        }
    }

    /// A worker role (`indexer`, `counter`) reads the shared queue in Redis; without
    /// `REDIS_URL` there is none to read (the api process runs both workers then), so it is a
    /// configuration error, not a process that waits forever on nothing.
    pub fn worker(name: &str, preset: Roles, settings: &Settings) -> Result<Roles> {
        if settings.redis_url.is_none() {
            return Err(Error::Config(format!(
                "{name}: REDIS_URL is unset: without Redis the queue is in-process and `chat-system api` (or `serve`) runs the {name} itself; set REDIS_URL to run it separately"
            )));
        }
        Ok(preset)
    }

    /// The embedded search index has one writer: the process that indexes. Every other
    /// process only reads it (the purge deletes documents through Elasticsearch, or runs in
    /// `serve`, which is the writer).
    pub fn search_access(&self) -> Access {
        if self.indexer {
            Access::Writer
        } else {
            Access::Reader
        }
    }
}
