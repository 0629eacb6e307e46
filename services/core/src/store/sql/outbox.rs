//! [`OutboxStore`] over SQL: the `outbox` table the relay publishes from.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Column, Dialect, SqlStore};
use crate::error::Result;
use crate::queue::Queue;
use crate::store::{OutboxStore, PURGE_CHUNK};

const REPUBLISH_RETAINED: &str =
    "UPDATE outbox SET published_at = NULL WHERE published_at IS NOT NULL";
const OUTBOX_WAITING: &str = "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL";

#[async_trait]
impl<D> OutboxStore for SqlStore<D>
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
    async fn relay_outbox(&self, limit: u32, queue: &dyn Queue) -> Result<usize> {
        let mut tx = self.begin_write().await?;
        let rows: Vec<(i64, String)> = sqlx::query_as(D::CLAIM_OUTBOX)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        // Dropping a transaction only queues its rollback until the connection is used again;
        // an idle pooled connection would keep these rows locked (and skipped by every other
        // relay), so every exit ends the transaction explicitly.
        if rows.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        let payloads: Vec<String> = rows.iter().map(|(_, p)| p.clone()).collect();
        // Published while the rows are locked: a crash between the two steps leaves them
        // unpublished, so they go out again (consumers are idempotent).
        if let Err(err) = queue.publish(&payloads).await {
            tx.rollback().await?;
            return Err(err);
        }
        let mut update = sqlx::QueryBuilder::<D>::new("UPDATE outbox SET published_at = ");
        update
            .push_bind(crate::domain::now())
            .push(" WHERE id IN (");
        let mut ids = update.separated(", ");
        for (id, _) in &rows {
            ids.push_bind(*id);
        }
        update.push(")");
        update.build().execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(rows.len())
    }

    async fn republish_retained(&self) -> Result<u64> {
        let done = sqlx::query(REPUBLISH_RETAINED)
            .execute(&mut *self.conn().await?)
            .await?;
        Ok(D::rows_affected(&done))
    }

    async fn purge_outbox(&self, published_before: DateTime<Utc>) -> Result<u64> {
        // In chunks: one DELETE of everything past retention would be one long statement
        // (and, for SQLite, one long hold of the write lock) at high rates.
        let mut purged = 0;
        loop {
            let done = sqlx::query(D::PURGE_OUTBOX_CHUNK)
                .bind(published_before)
                .bind(i64::from(PURGE_CHUNK))
                .execute(&mut *self.conn().await?)
                .await?;
            let deleted = D::rows_affected(&done);
            purged += deleted;
            if deleted < u64::from(PURGE_CHUNK) {
                return Ok(purged);
            }
        }
    }

    async fn outbox_waiting(&self) -> Result<i64> {
        Ok(sqlx::query_scalar(OUTBOX_WAITING)
            .fetch_one(&mut *self.conn().await?)
            .await?)
    }
}
