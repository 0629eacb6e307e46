//! [`ChatStore`] over SQL: `chats`, each insert with its `chat.created` outbox row.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Column, Dialect, Hinted, SqlStore, row_level};
use crate::domain::{Chat, Cursor, Page, PageRequest, token_hash};
use crate::error::{Error, Result};
use crate::events::Envelope;
use crate::store::{ChatStore, NewChat};

const INSERT_CHAT: &str = "INSERT INTO chats (chat_application_id, number, messages_count, created_at, updated_at) \
     VALUES (?, ?, 0, ?, ?)";
const CHAT_BY_TOKEN_HASH: &str = "SELECT c.id, c.chat_application_id AS application_id, c.number, c.messages_count, \
            c.created_at, c.updated_at \
     FROM chats c JOIN chat_applications a ON a.id = c.chat_application_id \
     WHERE a.token_hash = ? AND c.number = ? AND a.deleted_at IS NULL AND c.deleted_at IS NULL";
/// `CHAT_BY_TOKEN_HASH` without its `SELECT` keyword and last placeholder, for batched lookups:
/// `SELECT <k> AS k, ` + this + token hash + ` AND c.number = ` + number.
const CHAT_BY_TOKEN_HASH_PARTS: &str = "c.id, c.chat_application_id AS application_id, c.number, c.messages_count, \
            c.created_at, c.updated_at \
     FROM chats c JOIN chat_applications a ON a.id = c.chat_application_id \
     WHERE a.deleted_at IS NULL AND c.deleted_at IS NULL AND a.token_hash = ";
const CHAT_OF_APPLICATION: &str = "SELECT id, chat_application_id AS application_id, number, messages_count, \
            created_at, updated_at \
     FROM chats WHERE chat_application_id = ? AND number = ? AND deleted_at IS NULL";
pub(super) const CHATS_AFTER: Hinted = Hinted {
    force_index: "SELECT id, chat_application_id AS application_id, number, messages_count, created_at, updated_at \
         FROM chats FORCE INDEX (uniq_chats_application_number) \
         WHERE chat_application_id = ? AND number > ? AND deleted_at IS NULL ORDER BY number ASC LIMIT ?",
    indexed_by: "SELECT id, chat_application_id AS application_id, number, messages_count, created_at, updated_at \
         FROM chats INDEXED BY uniq_chats_application_number \
         WHERE chat_application_id = ? AND number > ? AND deleted_at IS NULL ORDER BY number ASC LIMIT ?",
};
pub(super) const CHATS_BEFORE: Hinted = Hinted {
    force_index: "SELECT id, chat_application_id AS application_id, number, messages_count, created_at, updated_at \
         FROM chats FORCE INDEX (uniq_chats_application_number) \
         WHERE chat_application_id = ? AND number < ? AND deleted_at IS NULL ORDER BY number DESC LIMIT ?",
    indexed_by: "SELECT id, chat_application_id AS application_id, number, messages_count, created_at, updated_at \
         FROM chats INDEXED BY uniq_chats_application_number \
         WHERE chat_application_id = ? AND number < ? AND deleted_at IS NULL ORDER BY number DESC LIMIT ?",
};

#[async_trait]
impl<D> ChatStore for SqlStore<D>
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
    async fn insert_chat(
        &self,
        application_id: i64,
        number: i64,
        now: DateTime<Utc>,
    ) -> Result<Chat> {
        let mut tx = self.begin_write().await?;
        // Ended explicitly on failure too (see `insert_message`).
        let written: Result<Chat> = async {
            let done = sqlx::query(INSERT_CHAT)
                .bind(application_id)
                .bind(number)
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let chat = Chat {
                id: D::last_insert_id(&done),
                application_id,
                number,
                messages_count: 0,
                created_at: now,
                updated_at: now,
            };
            Self::insert_event(&mut tx, Envelope::chat_created(&chat).to_json(), now).await?;
            Ok(chat)
        }
        .await;
        Self::finish(tx, written).await
    }

    async fn insert_chats(&self, batch: &[NewChat]) -> Vec<Result<Chat>> {
        if batch.len() == 1 {
            return vec![
                self.insert_chats_at_once(batch)
                    .await
                    .map(|mut c| c.remove(0)),
            ];
        }
        match self.insert_chats_at_once(batch).await {
            Ok(chats) => chats.into_iter().map(Ok).collect(),
            Err(err) if row_level(&err) => {
                futures::future::join_all(batch.iter().map(|c| async move {
                    let mut one = self.insert_chats_at_once(std::slice::from_ref(c)).await?;
                    Ok(one.remove(0))
                }))
                .await
            }
            Err(err) => batch.iter().map(|_| Err(err.clone())).collect(),
        }
    }

    async fn chat_by_token(&self, token: &str, number: i64) -> Result<Option<Chat>> {
        let found = sqlx::query_as(CHAT_BY_TOKEN_HASH)
            .bind(token_hash(token))
            .bind(number)
            .fetch_optional(&mut *self.conn().await?)
            .await?;
        match found {
            Some(chat) => Ok(Some(chat)),
            None => self.chat_by_old_token(token, number).await,
        }
    }

    async fn chats_by_token(&self, addresses: &[(String, i64)]) -> Result<Vec<Option<Chat>>> {
        use sqlx::{FromRow, Row};
        if let [(token, number)] = addresses {
            return Ok(vec![self.chat_by_token(token, *number).await?]);
        }
        // Point lookups glued with UNION ALL: each part uses the unique indexes, and `k` says
        // which address a row answers.
        let mut query = sqlx::QueryBuilder::<D>::new("");
        for (k, (token, number)) in addresses.iter().enumerate() {
            if k > 0 {
                query.push(" UNION ALL ");
            }
            query.push(format!("SELECT {k} AS k, "));
            query.push(CHAT_BY_TOKEN_HASH_PARTS);
            query.push_bind(token_hash(token));
            query.push(" AND c.number = ");
            query.push_bind(*number);
        }
        let rows = query.build().fetch_all(&mut *self.conn().await?).await?;
        let mut found = vec![None; addresses.len()];
        for row in rows {
            let k: i64 = row.try_get("k")?;
            let slot = found
                .get_mut(k as usize)
                .ok_or_else(|| Error::Database(format!("lookup answered unknown key {k}")))?;
            *slot = Some(Chat::from_row(&row)?);
        }
        // Misses are rare (unknown chats, a previous-release row, a rotated token in its grace
        // period): each takes the slow path on its own.
        for ((token, number), slot) in addresses.iter().zip(found.iter_mut()) {
            if slot.is_none() {
                *slot = self.chat_by_old_token(token, *number).await?;
            }
        }
        Ok(found)
    }

    async fn chats(&self, application_id: i64, page: PageRequest) -> Result<Page<Chat>> {
        let (sql, from) = match page.cursor {
            Cursor::After(n) => (D::hinted(&CHATS_AFTER), n),
            Cursor::Before(n) => (D::hinted(&CHATS_BEFORE), n),
        };
        let rows = sqlx::query_as(sql)
            .bind(application_id)
            .bind(from)
            .bind(i64::from(page.limit) + 1)
            .fetch_all(&mut *self.conn().await?)
            .await?;
        Ok(Page::from_overfetch(rows, page.limit, |c: &Chat| c.number))
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
    /// [`ChatStore::chat_by_token`] past a hash miss.
    async fn chat_by_old_token(&self, token: &str, number: i64) -> Result<Option<Chat>> {
        let mut conn = self.conn().await?;
        let Some(app) = Self::application_by_old_token(&mut conn, token).await? else {
            return Ok(None);
        };
        Ok(sqlx::query_as(CHAT_OF_APPLICATION)
            .bind(app.id)
            .bind(number)
            .fetch_optional(&mut *conn)
            .await?)
    }

    /// The whole batch in one transaction: one multi-row `INSERT` for the chats, one `SELECT`
    /// for their ids, one multi-row `INSERT` for their events.
    async fn insert_chats_at_once(&self, batch: &[NewChat]) -> Result<Vec<Chat>> {
        let mut tx = self.begin_write().await?;
        let written: Result<Vec<Chat>> = async {
            let mut insert = sqlx::QueryBuilder::<D>::new(
                "INSERT INTO chats (chat_application_id, number, messages_count, created_at, updated_at) ",
            );
            // Rows go in parent order: the foreign-key checks then lock parents in the same
            // (ascending) order the counter's writes do, so the two cannot deadlock.
            let mut sorted: Vec<&NewChat> = batch.iter().collect();
            sorted.sort_by_key(|c| (c.application_id, c.number));
            insert.push_values(sorted, |mut row, c| {
                row.push_bind(c.application_id)
                    .push_bind(c.number)
                    .push_bind(0_i64)
                    .push_bind(c.now)
                    .push_bind(c.now);
            });
            let done = insert.build().execute(&mut *tx).await?;
            let keys: Vec<(i64, i64)> = batch.iter().map(|c| (c.application_id, c.number)).collect();
            let ids = Self::ids_of(&mut tx, &done, "chats", "chat_application_id", &keys).await?;
            let chats = batch
                .iter()
                .zip(ids)
                .map(|(c, id)| Chat {
                    id,
                    application_id: c.application_id,
                    number: c.number,
                    messages_count: 0,
                    created_at: c.now,
                    updated_at: c.now,
                })
                .collect::<Vec<_>>();
            let events: Vec<_> = chats
                .iter()
                .zip(batch)
                .map(|(c, new)| {
                    let event = Envelope::chat_created(c).traced(new.trace.clone());
                    (event.to_json(), c.created_at)
                })
                .collect();
            Self::insert_events(&mut tx, &events).await?;
            Ok(chats)
        }
        .await;
        Self::finish(tx, written).await
    }
}
