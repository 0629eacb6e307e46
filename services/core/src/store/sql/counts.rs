//! [`CountStore`] over SQL: recounts past settled watermarks, and table totals.
//!
//! Counting past a settled watermark: `h` is the highest number whose row is older than the
//! settle horizon; rows up to it are final, rows past it are counted afresh each time.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Column, Dialect, Hinted, SqlStore};
use crate::error::{Error, Result};
use crate::store::CountStore;

pub(super) const MESSAGES_SETTLED_MAX: Hinted = Hinted {
    force_index: "SELECT COALESCE(MAX(number), 0) \
         FROM messages FORCE INDEX (uniq_messages_chat_number) \
         WHERE chat_id = ? AND number > ? AND created_at < ?",
    indexed_by: "SELECT COALESCE(MAX(number), 0) \
         FROM messages INDEXED BY uniq_messages_chat_number \
         WHERE chat_id = ? AND number > ? AND created_at < ?",
};
const MESSAGES_COUNT_RANGE: &str =
    "SELECT COUNT(*) FROM messages WHERE chat_id = ? AND number > ? AND number <= ?";
const CHAT_COUNTS: &str =
    "SELECT counted_number, counted_messages, messages_count FROM chats WHERE id = ?";
/// Compare-and-set on the values the recount started from: a concurrent counter's write wins,
/// and this one recounts from what it wrote.
const UPDATE_CHAT_COUNTS: &str = "UPDATE chats SET counted_number = ?, counted_messages = ?, messages_count = ? \
     WHERE id = ? AND counted_number = ? AND counted_messages = ? AND messages_count = ?";
pub(super) const CHATS_SETTLED_MAX: Hinted = Hinted {
    force_index: "SELECT COALESCE(MAX(number), 0) \
         FROM chats FORCE INDEX (uniq_chats_application_number) \
         WHERE chat_application_id = ? AND number > ? AND created_at < ?",
    indexed_by: "SELECT COALESCE(MAX(number), 0) \
         FROM chats INDEXED BY uniq_chats_application_number \
         WHERE chat_application_id = ? AND number > ? AND created_at < ?",
};
/// Hidden chats are not counted (hiding one took it out of the counts already).
const CHATS_COUNT_RANGE: &str = "SELECT COUNT(*) FROM chats \
     WHERE chat_application_id = ? AND number > ? AND number <= ? AND deleted_at IS NULL";
const APPLICATION_COUNTS: &str =
    "SELECT counted_number, counted_chats, chats_count FROM chat_applications WHERE id = ?";
const UPDATE_APPLICATION_COUNTS: &str = "UPDATE chat_applications SET counted_number = ?, counted_chats = ?, chats_count = ? \
     WHERE id = ? AND counted_number = ? AND counted_chats = ? AND chats_count = ?";

const COUNT_MESSAGES: &str = "SELECT COUNT(*) FROM messages";
const COUNT_CHATS: &str = "SELECT COUNT(*) FROM chats";
const COUNT_APPLICATIONS: &str = "SELECT COUNT(*) FROM chat_applications";

/// The statements of one kind of recount: read a parent's counters, find the new watermark,
/// count a number range, store the counters if unchanged since read.
struct Recount {
    read: &'static str,
    settled_max: &'static str,
    count_range: &'static str,
    store: &'static str,
}

#[async_trait]
impl<D> CountStore for SqlStore<D>
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
    async fn recount_chats(
        &self,
        chat_ids: &[i64],
        settled_before: DateTime<Utc>,
        from_scratch: bool,
    ) -> Result<Vec<i64>> {
        let statements = Recount {
            read: CHAT_COUNTS,
            settled_max: D::hinted(&MESSAGES_SETTLED_MAX),
            count_range: MESSAGES_COUNT_RANGE,
            store: UPDATE_CHAT_COUNTS,
        };
        self.recount(chat_ids, settled_before, from_scratch, statements)
            .await
    }

    async fn recount_applications(
        &self,
        application_ids: &[i64],
        settled_before: DateTime<Utc>,
        from_scratch: bool,
    ) -> Result<Vec<i64>> {
        let statements = Recount {
            read: APPLICATION_COUNTS,
            settled_max: D::hinted(&CHATS_SETTLED_MAX),
            count_range: CHATS_COUNT_RANGE,
            store: UPDATE_APPLICATION_COUNTS,
        };
        self.recount(application_ids, settled_before, from_scratch, statements)
            .await
    }

    async fn totals(&self) -> Result<(i64, i64, i64)> {
        let apps: i64 = sqlx::query_scalar(COUNT_APPLICATIONS)
            .fetch_one(&mut *self.conn().await?)
            .await?;
        let chats: i64 = sqlx::query_scalar(COUNT_CHATS)
            .fetch_one(&mut *self.conn().await?)
            .await?;
        let messages: i64 = sqlx::query_scalar(COUNT_MESSAGES)
            .fetch_one(&mut *self.conn().await?)
            .await?;
        Ok((apps, chats, messages))
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
    /// Recounts parents (chats' messages, applications' chats) past their settled watermarks.
    async fn recount(
        &self,
        parent_ids: &[i64],
        settled_before: DateTime<Utc>,
        from_scratch: bool,
        statements: Recount,
    ) -> Result<Vec<i64>> {
        // A parent another counter updated meanwhile is recounted from its new values; more
        // than a few rounds means someone recounts it non-stop: give up this time.
        const ROUNDS: usize = 5;
        let Recount {
            read,
            settled_max,
            count_range,
            store,
        } = statements;
        let mut counts = vec![0_i64; parent_ids.len()];
        let mut pending: Vec<usize> = (0..parent_ids.len()).collect();
        for _ in 0..ROUNDS {
            if pending.is_empty() {
                return Ok(counts);
            }
            // (index, read values, new values)
            let mut plans = Vec::with_capacity(pending.len());
            {
                let mut conn = self.conn().await?;
                for &i in &pending {
                    let id = parent_ids[i];
                    let Some(old): Option<(i64, i64, i64)> = sqlx::query_as(read)
                        .bind(id)
                        .fetch_optional(&mut *conn)
                        .await?
                    else {
                        continue;
                    };
                    let (base_number, base_count) =
                        if from_scratch { (0, 0) } else { (old.0, old.1) };
                    let horizon: i64 = sqlx::query_scalar::<_, i64>(settled_max)
                        .bind(id)
                        .bind(base_number)
                        .bind(settled_before)
                        .fetch_one(&mut *conn)
                        .await?
                        .max(base_number);
                    let count = |from: i64, to: i64| {
                        sqlx::query_scalar::<_, i64>(count_range)
                            .bind(id)
                            .bind(from)
                            .bind(to)
                    };
                    let settled =
                        base_count + count(base_number, horizon).fetch_one(&mut *conn).await?;
                    let recent = count(horizon, i64::MAX).fetch_one(&mut *conn).await?;
                    counts[i] = settled + recent;
                    let new = (horizon, settled, settled + recent);
                    if new != old {
                        plans.push((i, old, new));
                    }
                }
            }
            pending.clear();
            if plans.is_empty() {
                return Ok(counts);
            }
            let mut tx = self.begin_write().await?;
            let written: Result<()> = async {
                for (i, old, new) in &plans {
                    let done = sqlx::query(store)
                        .bind(new.0)
                        .bind(new.1)
                        .bind(new.2)
                        .bind(parent_ids[*i])
                        .bind(old.0)
                        .bind(old.1)
                        .bind(old.2)
                        .execute(&mut *tx)
                        .await?;
                    if D::rows_affected(&done) == 0 {
                        pending.push(*i);
                    }
                }
                Ok(())
            }
            .await;
            Self::finish(tx, written).await?;
        }
        if pending.is_empty() {
            Ok(counts)
        } else {
            Err(Error::Contention {
                attempts: ROUNDS as u32,
            })
        }
    }
}
