//! The storage port and its adapters. Every adapter passes the same conformance suite
//! (`services/core/tests/store_conformance.rs`).

mod common;
mod mysql;
mod sql;
mod sqlite;

pub use mysql::MySqlStore;
pub use sqlite::SqliteStore;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::{Application, Chat, Message, Page, PageRequest, Sequence};
use crate::error::Result;
use crate::queue::Queue;

/// A message to insert: its chat, the number numbering gave it, and the body.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub chat: Chat,
    pub number: i64,
    pub body: String,
    pub now: DateTime<Utc>,
    /// `traceparent` of the request, for the event (see [`crate::events::Envelope::trace`]).
    pub trace: Option<String>,
}

/// A chat to insert into an application under a number.
#[derive(Debug, Clone)]
pub struct NewChat {
    pub application_id: i64,
    pub number: i64,
    pub now: DateTime<Utc>,
    pub trace: Option<String>,
}

/// Durable storage of applications, chats and messages, and of the outbox their events go
/// through.
///
/// Inserts that hit a unique key answer [`crate::Error::Taken`] and change nothing, so the
/// caller can pick another number and retry. Each call is one transaction; a write that emits
/// an event (chat created, message created or updated) writes its outbox row in that same
/// transaction.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Fails when the database cannot serve a trivial query.
    async fn ping(&self) -> Result<()>;

    /// (connections open, connections idle) of the pool.
    fn pool_usage(&self) -> (u32, u32);

    async fn insert_application(
        &self,
        token: &str,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Application>;
    /// The application a token addresses: its current token (looked up by hash), a plain token
    /// on a row the previous release wrote (hashed on the way), or the token the last rotation
    /// replaced while its grace period lasts. The answer carries `token` as given.
    async fn application_by_token(&self, token: &str) -> Result<Option<Application>>;
    /// Replaces the application's current token `current` by `new`; `current` keeps working
    /// until `previous_valid_until` (`None`: stops at once). `None` when `current` is not the
    /// current token (any more). The answer carries the new token.
    async fn rotate_token(
        &self,
        application_id: i64,
        current: &str,
        new: &str,
        previous_valid_until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Option<Application>>;
    /// Hashes up to `limit` plain tokens (rows the previous release wrote), keeping the plain
    /// column as it is. Answers how many.
    async fn hash_plain_tokens(&self, limit: u32) -> Result<u64>;
    /// Clears the plain token of every row whose hash is stored (the contract step, once no
    /// previous-release replica reads them). Answers how many.
    async fn forget_plain_tokens(&self) -> Result<u64>;
    async fn rename_application(
        &self,
        application_id: i64,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Application>>;

    async fn insert_chat(
        &self,
        application_id: i64,
        number: i64,
        now: DateTime<Utc>,
    ) -> Result<Chat>;
    /// Inserts many chats in one transaction (one multi-row `INSERT`), answering one result
    /// per item in order. A row the database refuses (a taken number) does not fail the
    /// others: the batch is then retried row by row, so only that row answers the error.
    async fn insert_chats(&self, batch: &[NewChat]) -> Vec<Result<Chat>>;
    /// One round trip from the client's address (token, number) to the chat (more only for the
    /// old tokens [`Store::application_by_token`] accepts).
    async fn chat_by_token(&self, token: &str, number: i64) -> Result<Option<Chat>>;
    /// Many addresses in one round trip: one answer per address, in order.
    async fn chats_by_token(&self, addresses: &[(String, i64)]) -> Result<Vec<Option<Chat>>>;
    async fn chats(&self, application_id: i64, page: PageRequest) -> Result<Page<Chat>>;

    async fn insert_message(
        &self,
        chat: &Chat,
        number: i64,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<Message>;
    /// [`Store::insert_chats`] for messages.
    async fn insert_messages(&self, batch: &[NewMessage]) -> Vec<Result<Message>>;
    async fn message(&self, chat_id: i64, number: i64) -> Result<Option<Message>>;
    async fn messages(&self, chat_id: i64, page: PageRequest) -> Result<Page<Message>>;
    /// Replaces the body and bumps the version.
    async fn update_message(
        &self,
        chat: &Chat,
        number: i64,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Message>>;

    /// The highest number used in a sequence (0 when empty): the floor for re-seeding numbering.
    async fn max_number(&self, sequence: Sequence) -> Result<i64>;

    /// Publishes up to `limit` unpublished outbox rows to `queue`, in id order, and marks them
    /// published once the queue has them. Rows other relays are publishing are skipped, never
    /// waited for. Answers how many rows it published.
    async fn relay_outbox(&self, limit: u32, queue: &dyn Queue) -> Result<usize>;
    /// Marks every retained (published, not yet purged) row unpublished again, so the relay
    /// re-publishes it after the queue lost its contents. Answers how many.
    async fn republish_retained(&self) -> Result<u64>;
    /// Deletes rows published before the cutoff (the retention window), in chunks of
    /// [`PURGE_CHUNK`]. Answers how many.
    async fn purge_outbox(&self, published_before: DateTime<Utc>) -> Result<u64>;
    async fn outbox_waiting(&self) -> Result<i64>;

    /// A small named value background roles coordinate through.
    async fn state(&self, name: &str) -> Result<Option<String>>;
    /// Sets `name` to `new` when its current value is `expected` (`None`: absent). Answers
    /// whether it did, so exactly one of several racing processes wins.
    async fn swap_state(&self, name: &str, expected: Option<&str>, new: &str) -> Result<bool>;

    /// Recomputes chats' `messages_count` exactly, counting only rows past each chat's settled
    /// watermark (rows created before `settled_before` can no longer appear below it) unless
    /// `from_scratch`. Counting takes no lock (writers never wait for it); the results are
    /// written together in one short transaction, each as a compare-and-set on the values the
    /// count started from, so concurrent counters never double count. Answers the counts in
    /// order; 0 for a chat that does not exist.
    async fn recount_chats(
        &self,
        chat_ids: &[i64],
        settled_before: DateTime<Utc>,
        from_scratch: bool,
    ) -> Result<Vec<i64>>;
    /// The same for applications' `chats_count`.
    async fn recount_applications(
        &self,
        application_ids: &[i64],
        settled_before: DateTime<Utc>,
        from_scratch: bool,
    ) -> Result<Vec<i64>>;

    async fn recount_chat(
        &self,
        chat_id: i64,
        settled_before: DateTime<Utc>,
        from_scratch: bool,
    ) -> Result<i64> {
        let counts = self
            .recount_chats(&[chat_id], settled_before, from_scratch)
            .await?;
        Ok(counts.first().copied().unwrap_or(0))
    }
    async fn recount_application(
        &self,
        application_id: i64,
        settled_before: DateTime<Utc>,
        from_scratch: bool,
    ) -> Result<i64> {
        let counts = self
            .recount_applications(&[application_id], settled_before, from_scratch)
            .await?;
        Ok(counts.first().copied().unwrap_or(0))
    }

    /// Messages in id order after `after_id` (optionally of one chat): the repair commands'
    /// resumable scan.
    async fn messages_by_id(
        &self,
        after_id: i64,
        limit: u32,
        chat_id: Option<i64>,
    ) -> Result<Vec<Message>>;
    async fn chat_ids(&self, after_id: i64, limit: u32) -> Result<Vec<i64>>;
    async fn application_ids(&self, after_id: i64, limit: u32) -> Result<Vec<i64>>;
    /// (applications, chats, messages) rows, for progress reporting.
    async fn totals(&self) -> Result<(i64, i64, i64)>;
}

/// Hashes every plain token (rows the previous release wrote), in chunks. Answers how many.
pub async fn hash_all_plain_tokens(store: &dyn Store) -> Result<u64> {
    const CHUNK: u32 = 1000;
    let mut hashed = 0;
    loop {
        let done = store.hash_plain_tokens(CHUNK).await?;
        hashed += done;
        if done == 0 {
            return Ok(hashed);
        }
    }
}

/// Outbox rows deleted per statement by [`Store::purge_outbox`].
pub const PURGE_CHUNK: u32 = 5000;

/// Whether a failed batch is worth retrying row by row: the database refused some row (a
/// taken number, a constraint, a value) or broke a deadlock over some row's key, not the
/// connection or the server as a whole.
fn row_level(err: &crate::Error) -> bool {
    matches!(
        err,
        crate::Error::Taken | crate::Error::Deadlock(_) | crate::Error::Database(_)
    )
}

/// Compares the migrations this binary ships with those recorded in the database, so an `api`
/// started before `migrate` says what to do instead of failing on the first query.
async fn check_applied(
    migrator: &sqlx::migrate::Migrator,
    conn: &mut impl sqlx::migrate::Migrate,
) -> Result<()> {
    use sqlx::migrate::MigrateError;

    let applied = match conn.list_applied_migrations(&migrator.table_name).await {
        Ok(applied) => applied,
        // No bookkeeping table yet: nothing was ever migrated.
        Err(MigrateError::Execute(sqlx::Error::Database(_))) => Vec::new(),
        Err(MigrateError::Execute(err)) => return Err(err.into()),
        Err(err) => return Err(err.into()),
    };
    let missing: Vec<String> = migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .filter(|m| !applied.iter().any(|a| a.version == m.version))
        .map(|m| format!("{} {}", m.version, m.description))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(crate::Error::Migration(format!(
            "the database schema is behind this release (missing: {}); run `chat-system migrate`",
            missing.join(", ")
        )))
    }
}
