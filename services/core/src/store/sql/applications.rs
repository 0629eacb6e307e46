//! [`ApplicationStore`] over SQL: `chat_applications` and its token columns.
//!
//! Tokens are looked up by their SHA-256 (`domain::token_hash`); `token` holds plain tokens
//! only for rows written by the previous release (see migration 000003 and docs/security.md).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::pool::PoolConnection;

use super::{Column, Dialect, SqlStore};
use crate::domain::{Application, now, token_hash};
use crate::error::Result;
use crate::store::ApplicationStore;

pub(super) const APPLICATION_BY_TOKEN_HASH: &str = "SELECT id, name, chats_count, created_at, updated_at \
     FROM chat_applications WHERE token_hash = ? AND deleted_at IS NULL";
/// A row the previous release wrote during a rollout, not hashed yet.
const APPLICATION_BY_PLAIN_TOKEN: &str = "SELECT id, name, chats_count, created_at, updated_at \
     FROM chat_applications WHERE token = ? AND token_hash IS NULL AND deleted_at IS NULL";
/// The token the last rotation replaced, while its grace period lasts.
const APPLICATION_BY_PREVIOUS_TOKEN: &str = "SELECT id, name, chats_count, created_at, updated_at \
     FROM chat_applications WHERE previous_token_hash = ? AND previous_token_expires_at > ? AND deleted_at IS NULL";
const APPLICATION_BY_ID: &str = "SELECT id, name, chats_count, created_at, updated_at \
     FROM chat_applications WHERE id = ?";
const INSERT_APPLICATION: &str = "INSERT INTO chat_applications (token_hash, name, chats_count, created_at, updated_at) \
     VALUES (?, ?, 0, ?, ?)";
const RENAME_APPLICATION: &str =
    "UPDATE chat_applications SET name = ?, updated_at = ? WHERE id = ?";
/// Replaces the current token (hashed or, on a previous-release row, plain) and nothing else.
const ROTATE_TOKEN: &str = "UPDATE chat_applications SET token_hash = ?, token = NULL, \
            previous_token_hash = ?, previous_token_expires_at = ?, updated_at = ? \
     WHERE id = ? AND (token_hash = ? OR (token_hash IS NULL AND token = ?))";
const UNHASHED_TOKENS: &str = "SELECT id, token FROM chat_applications WHERE token_hash IS NULL AND token IS NOT NULL ORDER BY id LIMIT ?";
const SET_TOKEN_HASH: &str =
    "UPDATE chat_applications SET token_hash = ? WHERE id = ? AND token_hash IS NULL AND token = ?";
const FORGET_PLAIN_TOKENS: &str =
    "UPDATE chat_applications SET token = NULL WHERE token IS NOT NULL AND token_hash IS NOT NULL";

#[async_trait]
impl<D> ApplicationStore for SqlStore<D>
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
    async fn insert_application(
        &self,
        token: &str,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Application> {
        let done = sqlx::query(INSERT_APPLICATION)
            .bind(token_hash(token))
            .bind(name)
            .bind(now)
            .bind(now)
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(Application {
            id: D::last_insert_id(&done),
            token: token.to_owned(),
            name: name.to_owned(),
            chats_count: 0,
            created_at: now,
            updated_at: now,
        })
    }

    async fn application_by_token(&self, token: &str) -> Result<Option<Application>> {
        let mut conn = self.conn().await?;
        let found: Option<Application> = sqlx::query_as(APPLICATION_BY_TOKEN_HASH)
            .bind(token_hash(token))
            .fetch_optional(&mut *conn)
            .await?;
        let found = match found {
            Some(app) => Some(app),
            None => Self::application_by_old_token(&mut conn, token).await?,
        };
        Ok(found.map(|app| Application {
            token: token.to_owned(),
            ..app
        }))
    }

    async fn rotate_token(
        &self,
        application_id: i64,
        current: &str,
        new: &str,
        previous_valid_until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Option<Application>> {
        let mut tx = self.begin_write().await?;
        let written: Result<Option<Application>> = async {
            let current_hash = token_hash(current);
            let done = sqlx::query(ROTATE_TOKEN)
                .bind(token_hash(new))
                .bind(previous_valid_until.map(|_| current_hash.clone()))
                .bind(previous_valid_until)
                .bind(now)
                .bind(application_id)
                .bind(&current_hash)
                .bind(current)
                .execute(&mut *tx)
                .await?;
            if D::rows_affected(&done) == 0 {
                return Ok(None);
            }
            let app: Option<Application> = sqlx::query_as(APPLICATION_BY_ID)
                .bind(application_id)
                .fetch_optional(&mut *tx)
                .await?;
            Ok(app.map(|app| Application {
                token: new.to_owned(),
                ..app
            }))
        }
        .await;
        Self::finish(tx, written).await
    }

    async fn hash_plain_tokens(&self, limit: u32) -> Result<u64> {
        let mut conn = self.conn().await?;
        let rows: Vec<(i64, String)> = sqlx::query_as(UNHASHED_TOKENS)
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await?;
        let mut hashed = 0;
        for (id, token) in rows {
            hashed += Self::set_token_hash(&mut conn, id, &token).await?;
        }
        Ok(hashed)
    }

    async fn forget_plain_tokens(&self) -> Result<u64> {
        let done = sqlx::query(FORGET_PLAIN_TOKENS)
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(D::rows_affected(&done))
    }

    async fn rename_application(
        &self,
        application_id: i64,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Application>> {
        let mut tx = self.begin_write().await?;
        sqlx::query(RENAME_APPLICATION)
            .bind(name)
            .bind(now)
            .bind(application_id)
            .execute(&mut *tx)
            .await?;
        let app = sqlx::query_as(APPLICATION_BY_ID)
            .bind(application_id)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(app)
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
    /// An application addressed by a token its hash does not find: a plain token on a row the
    /// previous release wrote (hashed on the way), or the token the last rotation replaced,
    /// while its grace period lasts.
    pub(super) async fn application_by_old_token(
        conn: &mut PoolConnection<D>,
        token: &str,
    ) -> Result<Option<Application>> {
        let legacy: Option<Application> = sqlx::query_as(APPLICATION_BY_PLAIN_TOKEN)
            .bind(token)
            .fetch_optional(&mut **conn)
            .await?;
        if let Some(app) = legacy {
            Self::set_token_hash(conn, app.id, token).await?;
            return Ok(Some(app));
        }
        Ok(sqlx::query_as(APPLICATION_BY_PREVIOUS_TOKEN)
            .bind(token_hash(token))
            .bind(now())
            .fetch_optional(&mut **conn)
            .await?)
    }

    async fn set_token_hash(conn: &mut PoolConnection<D>, id: i64, token: &str) -> Result<u64> {
        let done = sqlx::query(SET_TOKEN_HASH)
            .bind(token_hash(token))
            .bind(id)
            .bind(token)
            .execute(&mut **conn)
            .await?;
        Ok(D::rows_affected(&done))
    }
}
