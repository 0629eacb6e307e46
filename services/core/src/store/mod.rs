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

/// Durable storage of applications, chats and messages.
///
/// Inserts that hit a unique key answer [`crate::Error::Taken`] and change nothing, so the
/// caller can pick another number and retry. Each call is one transaction.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Fails when the database cannot serve a trivial query.
    async fn ping(&self) -> Result<()>;

    async fn insert_application(
        &self,
        token: &str,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Application>;
    async fn application_by_token(&self, token: &str) -> Result<Option<Application>>;
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
    /// One round trip from the client's address (token, number) to the chat.
    async fn chat_by_token(&self, token: &str, number: i64) -> Result<Option<Chat>>;
    async fn chats(&self, application_id: i64, page: PageRequest) -> Result<Page<Chat>>;

    async fn insert_message(
        &self,
        chat_id: i64,
        number: i64,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<Message>;
    async fn message(&self, chat_id: i64, number: i64) -> Result<Option<Message>>;
    async fn messages(&self, chat_id: i64, page: PageRequest) -> Result<Page<Message>>;
    async fn update_message(
        &self,
        chat_id: i64,
        number: i64,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Message>>;

    /// The highest number used in a sequence (0 when empty): the floor for re-seeding numbering.
    async fn max_number(&self, sequence: Sequence) -> Result<i64>;
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
