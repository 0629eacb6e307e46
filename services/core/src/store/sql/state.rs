//! [`StateStore`] over SQL: the `system_state` table.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Column, Dialect, SqlStore};
use crate::error::{Error, Result};
use crate::store::StateStore;

const STATE: &str = "SELECT value FROM system_state WHERE name = ?";
const INSERT_STATE: &str = "INSERT INTO system_state (name, value, updated_at) VALUES (?, ?, ?)";
const SWAP_STATE: &str =
    "UPDATE system_state SET value = ?, updated_at = ? WHERE name = ? AND value = ?";

#[async_trait]
impl<D> StateStore for SqlStore<D>
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
    async fn state(&self, name: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(STATE)
            .bind(name)
            .fetch_optional(&mut *self.conn().await?)
            .await?)
    }

    async fn swap_state(&self, name: &str, expected: Option<&str>, new: &str) -> Result<bool> {
        let now = crate::domain::now();
        let result = match expected {
            None => sqlx::query(INSERT_STATE)
                .bind(name)
                .bind(new)
                .bind(now)
                .execute(&mut *self.conn().await?)
                .await
                .map_err(Error::from),
            Some(old) => sqlx::query(SWAP_STATE)
                .bind(new)
                .bind(now)
                .bind(name)
                .bind(old)
                .execute(&mut *self.conn().await?)
                .await
                .map_err(Error::from),
        };
        match result {
            Ok(done) => Ok(D::rows_affected(&done) == 1),
            Err(Error::Taken) => Ok(false),
            Err(err) => Err(err),
        }
    }
}
