//! The storage port and its adapters, split by concern: each worker takes only the traits it
//! uses ([`OutboxStore`] and [`StateStore`] for the relay, [`CountStore`] for the counter,
//! [`DeletionStore`] for the purge), and [`Store`] is all of them, for the request path and the
//! composition. One generic SQL implementation (`sql/`, one file per concern) serves both
//! adapters through a small dialect trait (`sql/mod.rs`: [`MySqlStore`] in `mysql.rs`,
//! [`SqliteStore`] in `sqlite.rs`); every adapter passes the same conformance suite
//! (`services/core/tests/store_conformance/`, one module per concern).
//!
//! Common to every trait: inserts that hit a unique key answer [`crate::Error::Taken`] and
//! change nothing, so the caller can pick another number and retry. Each call is one
//! transaction; a write that emits an event (chat created, message created or updated, deleted)
//! writes its outbox row in that same transaction.

mod mysql;
mod sql;
mod sqlite;

pub use mysql::MySqlStore;
pub use sql::{Column, Dialect, Failure, Hinted, SqlStore};
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

/// Every concern of durable storage at once: what the request path ([`crate::service`]), the
/// repair commands and the composition ([`crate::wiring`]) hold. Implemented for every type that
/// implements all the concern traits; an `Arc<dyn Store>` upcasts to any one of them.
pub trait Store:
    HealthStore
    + ApplicationStore
    + ChatStore
    + MessageStore
    + DeletionStore
    + OutboxStore
    + StateStore
    + CountStore
    + ScanStore
{
}

impl<T> Store for T where
    T: HealthStore
        + ApplicationStore
        + ChatStore
        + MessageStore
        + DeletionStore
        + OutboxStore
        + StateStore
        + CountStore
        + ScanStore
{
}

/// Whether the database is there: what readiness and the pool metrics ask.
#[async_trait]
pub trait HealthStore: Send + Sync + 'static {
    /// Fails when the database cannot serve a trivial query.
    async fn ping(&self) -> Result<()>;

    /// (connections open, connections idle) of the pool.
    fn pool_usage(&self) -> (u32, u32);
}

/// Applications and the tokens that address them (stored as hashes; see docs/security.md).
#[async_trait]
pub trait ApplicationStore: Send + Sync + 'static {
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
}

/// Chats: creating them (each with its `chat.created` event), finding one by its client
/// address (token, number), and paging an application's chats.
#[async_trait]
pub trait ChatStore: Send + Sync + 'static {
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
    /// old tokens [`ApplicationStore::application_by_token`] accepts).
    async fn chat_by_token(&self, token: &str, number: i64) -> Result<Option<Chat>>;
    /// Many addresses in one round trip: one answer per address, in order.
    async fn chats_by_token(&self, addresses: &[(String, i64)]) -> Result<Vec<Option<Chat>>>;
    async fn chats(&self, application_id: i64, page: PageRequest) -> Result<Page<Chat>>;
}

/// Messages: creating (with `message.created`), reading, paging and editing (with
/// `message.updated`) them.
#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
    async fn insert_message(
        &self,
        chat: &Chat,
        number: i64,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<Message>;
    /// [`ChatStore::insert_chats`] for messages.
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
}

/// Deletion (see docs/architecture.md, "Deletion and purge"): deleting a message, hiding chats
/// and applications, and the purge that later removes what was hidden.
#[async_trait]
pub trait DeletionStore: Send + Sync + 'static {
    /// Hard-deletes a message, raising the chat's `message_floor` to its number and taking it
    /// out of the counts, with its `message.deleted` event, in one transaction. Answers the
    /// row as deleted (its version bumped past every edit: the deletion's version), or `None`
    /// when there is no such message.
    async fn delete_message(
        &self,
        chat: &Chat,
        number: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<Message>>;
    /// Hides a chat (404 from now on) and takes it out of its application's count, with its
    /// `chat.deleted` event. Answers false when it was hidden already or is gone.
    async fn hide_chat(&self, chat: &Chat, now: DateTime<Utc>) -> Result<bool>;
    /// Hides an application (its token stops working), with its `application.deleted` event.
    /// Answers false when it was hidden already or is gone.
    async fn hide_application(&self, application_id: i64, now: DateTime<Utc>) -> Result<bool>;

    /// The purge, step by step (see `workers/purge.rs`); every step is idempotent and all its
    /// state is the hidden markers, so a purge that stopped anywhere resumes. Hides the chats
    /// of up to `limit` hidden applications (as of the application's deletion) and answers
    /// those applications.
    async fn hide_chats_of_hidden_applications(&self, limit: u32) -> Result<Vec<i64>>;
    /// Chats hidden before `hidden_before`, in id order.
    async fn hidden_chats(&self, hidden_before: DateTime<Utc>, limit: u32) -> Result<Vec<i64>>;
    /// Deletes up to `limit` messages of a hidden chat (none of a visible one). Answers how many.
    async fn purge_messages(&self, chat_id: i64, limit: u32) -> Result<u64>;
    /// Deletes a hidden chat's row. Answers false when it is not hidden, or still has messages
    /// (a create that raced the purge): the next round deletes those first.
    async fn purge_chat(&self, chat_id: i64) -> Result<bool>;
    /// Deletes a hidden application's row once it has no chats left. Answers whether it did.
    async fn purge_application(&self, application_id: i64) -> Result<bool>;
}

/// The outbox every event goes through: the relay publishes it to the queue, keeps published
/// rows for the retention window, and re-publishes them after a queue loss.
#[async_trait]
pub trait OutboxStore: Send + Sync + 'static {
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
    /// Rows not published yet.
    async fn outbox_waiting(&self) -> Result<i64>;
}

/// Small named values background roles coordinate through (the queue epoch the outbox was
/// last published under, say).
#[async_trait]
pub trait StateStore: Send + Sync + 'static {
    /// A small named value background roles coordinate through.
    async fn state(&self, name: &str) -> Result<Option<String>>;
    /// Sets `name` to `new` when its current value is `expected` (`None`: absent). Answers
    /// whether it did, so exactly one of several racing processes wins.
    async fn swap_state(&self, name: &str, expected: Option<&str>, new: &str) -> Result<bool>;
}

/// The counts (`messages_count`, `chats_count`): exact recounts past settled watermarks, for
/// the counter and the repair commands, and the table totals for progress reports.
#[async_trait]
pub trait CountStore: Send + Sync + 'static {
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

    /// (applications, chats, messages) rows, for progress reporting.
    async fn totals(&self) -> Result<(i64, i64, i64)>;
}

/// Resumable scans over every row, for the repair commands, and the numbering floor.
#[async_trait]
pub trait ScanStore: Send + Sync + 'static {
    /// The highest number ever used in a sequence, deleted ones included (0 when empty): the
    /// floor for re-seeding numbering.
    async fn max_number(&self, sequence: Sequence) -> Result<i64>;
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
}

/// Hashes every plain token (rows the previous release wrote), in chunks. Answers how many.
pub async fn hash_all_plain_tokens(store: &dyn ApplicationStore) -> Result<u64> {
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

/// Outbox rows deleted per statement by [`OutboxStore::purge_outbox`].
pub const PURGE_CHUNK: u32 = 5000;
