//! [`DeletionStore`] over SQL (see docs/architecture.md, "Deletion and purge").

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::messages::MESSAGE;
use super::{Column, Dialect, SqlStore};
use crate::domain::{Chat, Message};
use crate::error::{Error, Result};
use crate::events::Envelope;
use crate::store::DeletionStore;

// The version bump locks the row first, so a concurrent edit either commits before (and the
// deletion's version is above it) or finds no row.
const BUMP_MESSAGE_VERSION: &str =
    "UPDATE messages SET version = version + 1 WHERE chat_id = ? AND number = ?";
const DELETE_MESSAGE: &str = "DELETE FROM messages WHERE chat_id = ? AND number = ?";
/// Raises the floor to the deleted number and takes the row out of the counts: out of the
/// settled part when the watermark had passed it, and always out of `messages_count`, so a
/// counter's compare-and-set started before this fails and it recounts.
const MESSAGE_DELETED_COUNTS: &str = "UPDATE chats SET \
     message_floor = CASE WHEN message_floor < ? THEN ? ELSE message_floor END, \
     counted_messages = counted_messages - (CASE WHEN counted_number >= ? THEN 1 ELSE 0 END), \
     messages_count = messages_count - 1 \
     WHERE id = ?";
const HIDE_CHAT: &str = "UPDATE chats SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL";
/// [`MESSAGE_DELETED_COUNTS`] for a hidden chat in its application.
const CHAT_DELETED_COUNTS: &str = "UPDATE chat_applications SET \
     chat_floor = CASE WHEN chat_floor < ? THEN ? ELSE chat_floor END, \
     counted_chats = counted_chats - (CASE WHEN counted_number >= ? THEN 1 ELSE 0 END), \
     chats_count = chats_count - 1 \
     WHERE id = ?";
const HIDE_APPLICATION: &str =
    "UPDATE chat_applications SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL";

// The purge. Hidden rows are found through the `deleted_at` indexes.
const HIDDEN_APPLICATIONS: &str = "SELECT id, deleted_at FROM chat_applications \
     WHERE deleted_at IS NOT NULL ORDER BY id LIMIT ?";
/// The chats of a hidden application are hidden as of the application's deletion.
const HIDE_CHATS_OF: &str = "UPDATE chats SET deleted_at = ? \
     WHERE chat_application_id = ? AND deleted_at IS NULL";
const HIDDEN_CHATS: &str = "SELECT id FROM chats \
     WHERE deleted_at IS NOT NULL AND deleted_at < ? ORDER BY id LIMIT ?";
const IS_HIDDEN_CHAT: &str = "SELECT id FROM chats WHERE id = ? AND deleted_at IS NOT NULL";
const PURGE_CHAT: &str = "DELETE FROM chats WHERE id = ? AND deleted_at IS NOT NULL";
const PURGE_APPLICATION: &str = "DELETE FROM chat_applications \
     WHERE id = ? AND deleted_at IS NOT NULL \
     AND NOT EXISTS (SELECT 1 FROM chats WHERE chat_application_id = ?)";

#[async_trait]
impl<D> DeletionStore for SqlStore<D>
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
    async fn delete_message(
        &self,
        chat: &Chat,
        number: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<Message>> {
        let mut tx = self.begin_write().await?;
        let written: Result<Option<Message>> = async {
            let bumped = sqlx::query(BUMP_MESSAGE_VERSION)
                .bind(chat.id)
                .bind(number)
                .execute(&mut *tx)
                .await?;
            if D::rows_affected(&bumped) == 0 {
                return Ok(None);
            }
            let message: Option<Message> = sqlx::query_as(MESSAGE)
                .bind(chat.id)
                .bind(number)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(message) = message else {
                return Ok(None);
            };
            sqlx::query(DELETE_MESSAGE)
                .bind(chat.id)
                .bind(number)
                .execute(&mut *tx)
                .await?;
            sqlx::query(MESSAGE_DELETED_COUNTS)
                .bind(number)
                .bind(number)
                .bind(number)
                .bind(chat.id)
                .execute(&mut *tx)
                .await?;
            let event = Envelope::message_deleted(chat.application_id, &message, now);
            Self::insert_event(&mut tx, event.to_json(), now).await?;
            Ok(Some(message))
        }
        .await;
        Self::finish(tx, written).await
    }

    async fn hide_chat(&self, chat: &Chat, now: DateTime<Utc>) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let written: Result<bool> = async {
            let hidden = sqlx::query(HIDE_CHAT)
                .bind(now)
                .bind(chat.id)
                .execute(&mut *tx)
                .await?;
            if D::rows_affected(&hidden) == 0 {
                return Ok(false);
            }
            sqlx::query(CHAT_DELETED_COUNTS)
                .bind(chat.number)
                .bind(chat.number)
                .bind(chat.number)
                .bind(chat.application_id)
                .execute(&mut *tx)
                .await?;
            Self::insert_event(&mut tx, Envelope::chat_deleted(chat, now).to_json(), now).await?;
            Ok(true)
        }
        .await;
        Self::finish(tx, written).await
    }

    async fn hide_application(&self, application_id: i64, now: DateTime<Utc>) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let written: Result<bool> = async {
            let hidden = sqlx::query(HIDE_APPLICATION)
                .bind(now)
                .bind(application_id)
                .execute(&mut *tx)
                .await?;
            if D::rows_affected(&hidden) == 0 {
                return Ok(false);
            }
            let event = Envelope::application_deleted(application_id, now);
            Self::insert_event(&mut tx, event.to_json(), now).await?;
            Ok(true)
        }
        .await;
        Self::finish(tx, written).await
    }

    async fn hide_chats_of_hidden_applications(&self, limit: u32) -> Result<Vec<i64>> {
        let hidden: Vec<(i64, DateTime<Utc>)> = sqlx::query_as(HIDDEN_APPLICATIONS)
            .bind(i64::from(limit))
            .fetch_all(&mut *self.conn().await?)
            .await?;
        for (id, deleted_at) in &hidden {
            sqlx::query(HIDE_CHATS_OF)
                .bind(*deleted_at)
                .bind(*id)
                .execute(&mut *self.conn().await?)
                .await?;
        }
        Ok(hidden.into_iter().map(|(id, _)| id).collect())
    }

    async fn hidden_chats(&self, hidden_before: DateTime<Utc>, limit: u32) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(HIDDEN_CHATS)
            .bind(hidden_before)
            .bind(i64::from(limit))
            .fetch_all(&mut *self.conn().await?)
            .await?)
    }

    async fn purge_messages(&self, chat_id: i64, limit: u32) -> Result<u64> {
        // Hidden chats never become visible again, so checking first is race-free.
        let hidden: Option<i64> = sqlx::query_scalar(IS_HIDDEN_CHAT)
            .bind(chat_id)
            .fetch_optional(&mut *self.conn().await?)
            .await?;
        if hidden.is_none() {
            return Ok(0);
        }
        let done = sqlx::query(D::PURGE_MESSAGES_CHUNK)
            .bind(chat_id)
            .bind(i64::from(limit))
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(D::rows_affected(&done))
    }

    async fn purge_chat(&self, chat_id: i64) -> Result<bool> {
        match sqlx::query(PURGE_CHAT)
            .bind(chat_id)
            .execute(&mut *self.conn().await?)
            .await
            .map_err(Error::from)
        {
            Ok(done) => Ok(D::rows_affected(&done) == 1),
            // A message inserted after the chunks were deleted: next round.
            Err(Error::ParentGone(_)) => Ok(false),
            Err(err) => Err(err),
        }
    }

    async fn purge_application(&self, application_id: i64) -> Result<bool> {
        match sqlx::query(PURGE_APPLICATION)
            .bind(application_id)
            .bind(application_id)
            .execute(&mut *self.conn().await?)
            .await
            .map_err(Error::from)
        {
            Ok(done) => Ok(D::rows_affected(&done) == 1),
            // A chat inserted after the check (a create that raced the hide): next round.
            Err(Error::ParentGone(_)) => Ok(false),
            Err(err) => Err(err),
        }
    }
}
