//! [`ScanStore`] over SQL: id-ordered scans for the repair commands, and numbering floors.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Column, Dialect, SqlStore};
use crate::domain::{Message, Sequence};
use crate::error::Result;
use crate::store::ScanStore;

/// (highest number in use, highest number ever deleted): re-seeding starts above both.
const MAX_CHAT_NUMBER: &str = "SELECT \
     (SELECT COALESCE(MAX(number), 0) FROM chats WHERE chat_application_id = ?), \
     COALESCE((SELECT chat_floor FROM chat_applications WHERE id = ?), 0)";
const MAX_MESSAGE_NUMBER: &str = "SELECT \
     (SELECT COALESCE(MAX(number), 0) FROM messages WHERE chat_id = ?), \
     COALESCE((SELECT message_floor FROM chats WHERE id = ?), 0)";
const MESSAGES_BY_ID: &str = "SELECT id, chat_id, number, body, version, created_at, updated_at \
     FROM messages WHERE id > ? ORDER BY id LIMIT ?";
const CHAT_MESSAGES_BY_ID: &str = "SELECT id, chat_id, number, body, version, created_at, updated_at \
     FROM messages WHERE chat_id = ? AND id > ? ORDER BY id LIMIT ?";
const CHAT_IDS: &str = "SELECT id FROM chats WHERE id > ? ORDER BY id LIMIT ?";
const APPLICATION_IDS: &str = "SELECT id FROM chat_applications WHERE id > ? ORDER BY id LIMIT ?";

#[async_trait]
impl<D> ScanStore for SqlStore<D>
where
    D: Dialect,
    for<'c> &'c mut D::Connection: sqlx::Executor<'c, Database = D>,
    D::Arguments: sqlx::IntoArguments<D>,
    i64: Column<D>,
    String: Column<D>,
    DateTime<Utc>: Column<D>,
    for<'q> &'q str: sqlx::Encode<'q, D> + sqlx::Type<D>,
    for<'q> Option<String>: sqlx::Encode<'q, D>,
    for<'q> Option<DateTime<Utc>>: sqlx::Encode<'q, D>,
    usize: sqlx::ColumnIndex<D::Row>,
    for<'a> &'a str: sqlx::ColumnIndex<D::Row>,
{
    async fn max_number(&self, sequence: Sequence) -> Result<i64> {
        let (sql, id) = match sequence {
            Sequence::Chats { application_id } => (MAX_CHAT_NUMBER, application_id),
            Sequence::Messages { chat_id } => (MAX_MESSAGE_NUMBER, chat_id),
        };
        let (used, floor): (i64, i64) = sqlx::query_as(sql)
            .bind(id)
            .bind(id)
            .fetch_one(&mut *self.conn().await?)
            .await?;
        Ok(used.max(floor))
    }

    async fn messages_by_id(
        &self,
        after_id: i64,
        limit: u32,
        chat_id: Option<i64>,
    ) -> Result<Vec<Message>> {
        let rows = match chat_id {
            Some(chat_id) => {
                sqlx::query_as(CHAT_MESSAGES_BY_ID)
                    .bind(chat_id)
                    .bind(after_id)
                    .bind(i64::from(limit))
                    .fetch_all(&mut *self.conn().await?)
                    .await?
            }
            None => {
                sqlx::query_as(MESSAGES_BY_ID)
                    .bind(after_id)
                    .bind(i64::from(limit))
                    .fetch_all(&mut *self.conn().await?)
                    .await?
            }
        };
        Ok(rows)
    }

    async fn chat_ids(&self, after_id: i64, limit: u32) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(CHAT_IDS)
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(&mut *self.conn().await?)
            .await?)
    }

    async fn application_ids(&self, after_id: i64, limit: u32) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(APPLICATION_IDS)
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(&mut *self.conn().await?)
            .await?)
    }
}
