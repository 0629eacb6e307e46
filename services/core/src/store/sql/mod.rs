//! The SQL adapter, written once: [`SqlStore`] implements every store trait (one file per
//! concern: `applications.rs`, `chats.rs`, `messages.rs`, `deletion.rs`, `outbox.rs`,
//! `state.rs`, `counts.rs`, `scans.rs`, `health.rs`) over a sqlx [`Database`] that is also a
//! [`Dialect`]. MySQL and SQLite accept the same statements with `?` placeholders; what differs
//! (generated ids, write transactions, `LIMIT` on `DELETE`, row locks, index hints, error
//! codes) is the dialect's, in `store/mysql.rs` and `store/sqlite.rs`.

mod applications;
mod chats;
mod counts;
mod deletion;
mod errors;
mod health;
mod messages;
mod outbox;
mod scans;
mod state;

use std::future::Future;

use chrono::{DateTime, Utc};
use sqlx::error::DatabaseError;
use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool, Transaction};

use crate::error::{Error, Result};

pub use errors::Failure;

/// What differs between the SQL databases the store runs on. Implemented by `sqlx::MySql`
/// (`store/mysql.rs`) and `sqlx::Sqlite` (`store/sqlite.rs`).
pub trait Dialect: Database {
    /// The id the database generated for the row a single-row `INSERT` wrote.
    fn last_insert_id(done: &Self::QueryResult) -> i64;
    fn rows_affected(done: &Self::QueryResult) -> u64;
    /// Begins a transaction that will write.
    fn begin_write(
        pool: &Pool<Self>,
    ) -> impl Future<Output = Result<Transaction<'static, Self>, sqlx::Error>> + Send;
    /// The statement in this dialect's index-hint syntax.
    fn hinted(statement: &Hinted) -> &'static str;
    /// Classifies what the portable checks (unique and foreign-key violations) leave open.
    fn failure(err: &dyn DatabaseError) -> Option<Failure>;

    /// Deletes up to `?` (second) outbox rows published before `?` (first), oldest first.
    const PURGE_OUTBOX_CHUNK: &'static str;
    /// Deletes up to `?` (second) messages of chat `?` (first), walking its `(chat_id, number)`
    /// index.
    const PURGE_MESSAGES_CHUNK: &'static str;
    /// Selects (and, where several relays share the database, locks without waiting) up to `?`
    /// unpublished outbox rows, in id order.
    const CLAIM_OUTBOX: &'static str;
}

/// A statement that must walk the `(parent, number)` unique index as a range. With bound
/// parameters and a non-covering select list MariaDB otherwise picks `ref` on the parent alone
/// and filters `number` row by row from the parent's first entry: a page deep into a chat of a
/// million messages read all of the entries before it. Written in both hint syntaxes (a test
/// checks they differ in the hint only); each dialect picks its own with [`Dialect::hinted`].
pub struct Hinted {
    /// `FROM t FORCE INDEX (i)` (MySQL).
    pub force_index: &'static str,
    /// `FROM t INDEXED BY i` (SQLite).
    pub indexed_by: &'static str,
}

/// The store over a pool of `D` connections. `MySqlStore` and `SqliteStore` are its two
/// instances; each adds how it connects and migrates.
pub struct SqlStore<D: Database> {
    pub(super) pool: Pool<D>,
}

impl<D: Database> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        SqlStore {
            pool: self.pool.clone(),
        }
    }
}

impl<D: Database> SqlStore<D> {
    pub fn pool(&self) -> &Pool<D> {
        &self.pool
    }
}

/// A column type the generic code binds and reads (`i64`, `String`, `DateTime<Utc>`). Rust does
/// not carry bounds on other types along with `D: Dialect`, so every generic block states them
/// (see [`SqlStore`]'s impls); this names the common part once.
pub trait Column<D: Database>:
    for<'q> sqlx::Encode<'q, D> + for<'r> sqlx::Decode<'r, D> + sqlx::Type<D> + Send + Unpin
{
}

impl<D: Database, T> Column<D> for T where
    T: for<'q> sqlx::Encode<'q, D> + for<'r> sqlx::Decode<'r, D> + sqlx::Type<D> + Send + Unpin
{
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
    /// A pooled connection, the wait for it recorded (`chat_db_acquire_duration_seconds`).
    async fn conn(&self) -> Result<PoolConnection<D>> {
        let started = std::time::Instant::now();
        let conn = self.pool.acquire().await;
        crate::metrics::DB_ACQUIRE_SECONDS.observe(started.elapsed().as_secs_f64());
        Ok(conn?)
    }

    /// A write transaction, the wait for it recorded (for SQLite this includes waiting for the
    /// write lock: the wait a create sees).
    async fn begin_write(&self) -> Result<Transaction<'static, D>> {
        let started = std::time::Instant::now();
        let tx = D::begin_write(&self.pool).await;
        crate::metrics::DB_ACQUIRE_SECONDS.observe(started.elapsed().as_secs_f64());
        Ok(tx?)
    }

    /// Commits after success, rolls back after failure (explicitly: a dropped transaction
    /// would keep its locks until the pooled connection is used again).
    async fn finish<T>(tx: Transaction<'static, D>, written: Result<T>) -> Result<T> {
        match written {
            Ok(value) => {
                tx.commit().await?;
                Ok(value)
            }
            Err(err) => {
                // The original error says more than a failed rollback on a dead link.
                let _ = tx.rollback().await;
                Err(err)
            }
        }
    }

    /// One multi-row `INSERT` into the outbox.
    async fn insert_events(
        tx: &mut Transaction<'static, D>,
        events: &[(String, DateTime<Utc>)],
    ) -> Result<()> {
        let mut insert = sqlx::QueryBuilder::<D>::new("INSERT INTO outbox (payload, created_at) ");
        insert.push_values(events, |mut row, (payload, at)| {
            row.push_bind(payload.as_str()).push_bind(*at);
        });
        insert.build().execute(&mut **tx).await?;
        Ok(())
    }

    /// One event row, in the transaction that wrote what it reports.
    async fn insert_event(
        tx: &mut Transaction<'static, D>,
        payload: String,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(INSERT_OUTBOX)
            .bind(payload)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// The ids of rows just inserted, in the order of `keys` (parent id, number). Ids of
    /// several rows are read back rather than derived from the last insert id: a multi-row
    /// insert need not get consecutive ids (InnoDB's interleaved auto-increment mode).
    async fn ids_of(
        tx: &mut Transaction<'static, D>,
        done: &D::QueryResult,
        table: &'static str,
        parent: &'static str,
        keys: &[(i64, i64)],
    ) -> Result<Vec<i64>> {
        use sqlx::Row;
        if keys.len() == 1 {
            return Ok(vec![D::last_insert_id(done)]);
        }
        // One shape per batch size (see `coalesce.rs` on statement shapes); the range
        // optimizer turns the disjunction into point lookups on the unique index.
        let mut select = sqlx::QueryBuilder::<D>::new(format!(
            "SELECT id, {parent} AS parent, number FROM {table} WHERE "
        ));
        for (i, (p, n)) in keys.iter().enumerate() {
            if i > 0 {
                select.push(" OR ");
            }
            select.push(format!("({parent} = "));
            select.push_bind(*p);
            select.push(" AND number = ");
            select.push_bind(*n);
            select.push(")");
        }
        let mut ids = std::collections::HashMap::with_capacity(keys.len());
        for row in select.build().fetch_all(&mut **tx).await? {
            let key: (i64, i64) = (row.try_get("parent")?, row.try_get("number")?);
            ids.insert(key, row.try_get::<i64, _>("id")?);
        }
        keys.iter()
            .map(|key| {
                ids.get(key)
                    .copied()
                    .ok_or_else(|| Error::Database(format!("inserted row {key:?} not found")))
            })
            .collect()
    }
}

pub(super) const INSERT_OUTBOX: &str = "INSERT INTO outbox (payload, created_at) VALUES (?, ?)";

/// Whether a failed batch is worth retrying row by row: the database refused some row (a
/// taken number, a constraint, a value) or broke a deadlock over some row's key, not the
/// connection or the server as a whole.
fn row_level(err: &Error) -> bool {
    matches!(
        err,
        Error::Taken | Error::Deadlock(_) | Error::ParentGone(_) | Error::Database(_)
    )
}

/// Compares the migrations this binary ships with those recorded in the database, so an `api`
/// started before `migrate` says what to do instead of failing on the first query.
pub(super) async fn check_applied(
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
        Err(Error::Migration(format!(
            "the database schema is behind this release (missing: {}); run `chat-system migrate`",
            missing.join(", ")
        )))
    }
}

/// Every hinted statement, for the test below.
#[cfg(test)]
const HINTED: [(&str, &str, &Hinted); 6] = [
    (
        "chats",
        "uniq_chats_application_number",
        &chats::CHATS_AFTER,
    ),
    (
        "chats",
        "uniq_chats_application_number",
        &chats::CHATS_BEFORE,
    ),
    (
        "messages",
        "uniq_messages_chat_number",
        &messages::MESSAGES_AFTER,
    ),
    (
        "messages",
        "uniq_messages_chat_number",
        &messages::MESSAGES_BEFORE,
    ),
    (
        "messages",
        "uniq_messages_chat_number",
        &counts::MESSAGES_SETTLED_MAX,
    ),
    (
        "chats",
        "uniq_chats_application_number",
        &counts::CHATS_SETTLED_MAX,
    ),
];

#[cfg(test)]
mod tests {
    use super::HINTED;

    /// The two spellings of a hinted statement are the same statement: only the hint differs.
    #[test]
    fn hinted_statements_differ_in_the_hint_only() {
        for (table, index, hinted) in HINTED {
            let force = format!(" FROM {table} FORCE INDEX ({index}) ");
            let indexed = format!(" FROM {table} INDEXED BY {index} ");
            assert!(
                hinted.force_index.contains(&force),
                "{}",
                hinted.force_index
            );
            assert_eq!(
                hinted.force_index.replace(&force, &indexed),
                hinted.indexed_by,
                "{table} / {index}"
            );
        }
    }
}
