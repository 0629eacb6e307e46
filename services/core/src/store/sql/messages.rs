//! [`MessageStore`] over SQL: `messages`, each write with its outbox row.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Column, Dialect, Hinted, SqlStore, row_level};
use crate::domain::{Chat, Cursor, Message, Page, PageRequest};
use crate::error::Result;
use crate::events::Envelope;
use crate::store::{MessageStore, NewMessage};

const INSERT_MESSAGE: &str =
    "INSERT INTO messages (chat_id, number, body, created_at, updated_at) VALUES (?, ?, ?, ?, ?)";
pub(super) const MESSAGE: &str = "SELECT id, chat_id, number, body, version, created_at, updated_at \
     FROM messages WHERE chat_id = ? AND number = ?";
pub(super) const MESSAGES_AFTER: Hinted = Hinted {
    force_index: "SELECT id, chat_id, number, body, version, created_at, updated_at \
         FROM messages FORCE INDEX (uniq_messages_chat_number) \
         WHERE chat_id = ? AND number > ? ORDER BY number ASC LIMIT ?",
    indexed_by: "SELECT id, chat_id, number, body, version, created_at, updated_at \
         FROM messages INDEXED BY uniq_messages_chat_number \
         WHERE chat_id = ? AND number > ? ORDER BY number ASC LIMIT ?",
};
pub(super) const MESSAGES_BEFORE: Hinted = Hinted {
    force_index: "SELECT id, chat_id, number, body, version, created_at, updated_at \
         FROM messages FORCE INDEX (uniq_messages_chat_number) \
         WHERE chat_id = ? AND number < ? ORDER BY number DESC LIMIT ?",
    indexed_by: "SELECT id, chat_id, number, body, version, created_at, updated_at \
         FROM messages INDEXED BY uniq_messages_chat_number \
         WHERE chat_id = ? AND number < ? ORDER BY number DESC LIMIT ?",
};
const UPDATE_MESSAGE: &str = "UPDATE messages SET body = ?, updated_at = ?, version = version + 1 WHERE chat_id = ? AND number = ?";

#[async_trait]
impl<D> MessageStore for SqlStore<D>
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
    async fn insert_message(
        &self,
        chat: &Chat,
        number: i64,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<Message> {
        let mut tx = self.begin_write().await?;
        // Ended explicitly on failure too: InnoDB keeps a failed statement's locks (a
        // foreign-key miss into a purged chat, say) until the transaction ends.
        let written: Result<Message> = async {
            let done = sqlx::query(INSERT_MESSAGE)
                .bind(chat.id)
                .bind(number)
                .bind(body)
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let message = Message {
                id: D::last_insert_id(&done),
                chat_id: chat.id,
                number,
                body: body.to_owned(),
                version: 1,
                created_at: now,
                updated_at: now,
            };
            let event = Envelope::message_created(chat.application_id, &message);
            Self::insert_event(&mut tx, event.to_json(), now).await?;
            Ok(message)
        }
        .await;
        Self::finish(tx, written).await
    }

    async fn insert_messages(&self, batch: &[NewMessage]) -> Vec<Result<Message>> {
        if batch.len() == 1 {
            return vec![
                self.insert_messages_at_once(batch)
                    .await
                    .map(|mut m| m.remove(0)),
            ];
        }
        match self.insert_messages_at_once(batch).await {
            Ok(messages) => messages.into_iter().map(Ok).collect(),
            Err(err) if row_level(&err) => {
                futures::future::join_all(batch.iter().map(|m| async move {
                    let mut one = self
                        .insert_messages_at_once(std::slice::from_ref(m))
                        .await?;
                    Ok(one.remove(0))
                }))
                .await
            }
            Err(err) => batch.iter().map(|_| Err(err.clone())).collect(),
        }
    }

    async fn message(&self, chat_id: i64, number: i64) -> Result<Option<Message>> {
        Ok(sqlx::query_as(MESSAGE)
            .bind(chat_id)
            .bind(number)
            .fetch_optional(&mut *self.conn().await?)
            .await?)
    }

    async fn messages(&self, chat_id: i64, page: PageRequest) -> Result<Page<Message>> {
        let (sql, from) = match page.cursor {
            Cursor::After(n) => (D::hinted(&MESSAGES_AFTER), n),
            Cursor::Before(n) => (D::hinted(&MESSAGES_BEFORE), n),
        };
        let rows = sqlx::query_as(sql)
            .bind(chat_id)
            .bind(from)
            .bind(i64::from(page.limit) + 1)
            .fetch_all(&mut *self.conn().await?)
            .await?;
        Ok(Page::from_overfetch(rows, page.limit, |m: &Message| {
            m.number
        }))
    }

    async fn update_message(
        &self,
        chat: &Chat,
        number: i64,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Message>> {
        let mut tx = self.begin_write().await?;
        sqlx::query(UPDATE_MESSAGE)
            .bind(body)
            .bind(now)
            .bind(chat.id)
            .bind(number)
            .execute(&mut *tx)
            .await?;
        let message: Option<Message> = sqlx::query_as(MESSAGE)
            .bind(chat.id)
            .bind(number)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(message) = &message {
            let event = Envelope::message_updated(chat.application_id, message);
            Self::insert_event(&mut tx, event.to_json(), now).await?;
        }
        tx.commit().await?;
        Ok(message)
    }
}

impl<D> SqlStore<D>
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
    /// `insert_chats_at_once` (`chats.rs`) for messages.
    async fn insert_messages_at_once(&self, batch: &[NewMessage]) -> Result<Vec<Message>> {
        let mut tx = self.begin_write().await?;
        let written: Result<Vec<Message>> = async {
            let mut insert = sqlx::QueryBuilder::<D>::new(
                "INSERT INTO messages (chat_id, number, body, created_at, updated_at) ",
            );
            let mut sorted: Vec<&NewMessage> = batch.iter().collect();
            sorted.sort_by_key(|m| (m.chat.id, m.number));
            insert.push_values(sorted, |mut row, m| {
                row.push_bind(m.chat.id)
                    .push_bind(m.number)
                    .push_bind(m.body.as_str())
                    .push_bind(m.now)
                    .push_bind(m.now);
            });
            let done = insert.build().execute(&mut *tx).await?;
            let keys: Vec<(i64, i64)> = batch.iter().map(|m| (m.chat.id, m.number)).collect();
            let ids = Self::ids_of(&mut tx, &done, "messages", "chat_id", &keys).await?;
            let mut events = Vec::with_capacity(batch.len());
            let messages = batch
                .iter()
                .zip(ids)
                .map(|(m, id)| {
                    let message = Message {
                        id,
                        chat_id: m.chat.id,
                        number: m.number,
                        body: m.body.clone(),
                        version: 1,
                        created_at: m.now,
                        updated_at: m.now,
                    };
                    events.push((
                        Envelope::message_created(m.chat.application_id, &message)
                            .traced(m.trace.clone())
                            .to_json(),
                        m.now,
                    ));
                    message
                })
                .collect::<Vec<_>>();
            Self::insert_events(&mut tx, &events).await?;
            Ok(messages)
        }
        .await;
        Self::finish(tx, written).await
    }
}
