//! The `Store` implementation both SQL adapters share. MySQL and SQLite accept the same
//! statements (see `sql.rs`); only connecting, migrating and reading a generated id differ, so
//! each adapter supplies those and this macro writes the rest once.

/// `impl Store` for a struct with a `pool: sqlx::Pool<$db>` field. `$last_id` turns the
/// driver's query result into the generated row id.
macro_rules! impl_sql_store {
    ($store:ty, $db:ty, $last_id:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            fn pool_usage(&self) -> (u32, u32) {
                (self.pool.size(), self.pool.num_idle() as u32)
            }

            async fn ping(&self) -> $crate::Result<()> {
                sqlx::query("SELECT 1")
                    .execute(&mut *self.conn().await?)
                    .await?;
                Ok(())
            }

            async fn insert_application(
                &self,
                token: &str,
                name: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<$crate::domain::Application> {
                let done = sqlx::query($crate::store::sql::INSERT_APPLICATION)
                    .bind(token)
                    .bind(name)
                    .bind(now)
                    .bind(now)
                    .execute(&mut *self.conn().await?)
                    .await?;
                let last_id: fn(&<$db as sqlx::Database>::QueryResult) -> i64 = $last_id;
                Ok($crate::domain::Application {
                    id: last_id(&done),
                    token: token.to_owned(),
                    name: name.to_owned(),
                    chats_count: 0,
                    created_at: now,
                    updated_at: now,
                })
            }

            async fn application_by_token(
                &self,
                token: &str,
            ) -> $crate::Result<Option<$crate::domain::Application>> {
                Ok(sqlx::query_as($crate::store::sql::APPLICATION_BY_TOKEN)
                    .bind(token)
                    .fetch_optional(&mut *self.conn().await?)
                    .await?)
            }

            async fn rename_application(
                &self,
                application_id: i64,
                name: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<Option<$crate::domain::Application>> {
                let mut tx = self.begin_write().await?;
                sqlx::query($crate::store::sql::RENAME_APPLICATION)
                    .bind(name)
                    .bind(now)
                    .bind(application_id)
                    .execute(&mut *tx)
                    .await?;
                let app = sqlx::query_as($crate::store::sql::APPLICATION_BY_ID)
                    .bind(application_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(app)
            }

            async fn insert_chat(
                &self,
                application_id: i64,
                number: i64,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<$crate::domain::Chat> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query($crate::store::sql::INSERT_CHAT)
                    .bind(application_id)
                    .bind(number)
                    .bind(now)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                let last_id: fn(&<$db as sqlx::Database>::QueryResult) -> i64 = $last_id;
                let chat = $crate::domain::Chat {
                    id: last_id(&done),
                    application_id,
                    number,
                    messages_count: 0,
                    created_at: now,
                    updated_at: now,
                };
                let event = $crate::events::Envelope::chat_created(&chat);
                sqlx::query($crate::store::sql::INSERT_OUTBOX)
                    .bind(event.to_json())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(chat)
            }

            async fn chat_by_token(
                &self,
                token: &str,
                number: i64,
            ) -> $crate::Result<Option<$crate::domain::Chat>> {
                Ok(sqlx::query_as($crate::store::sql::CHAT_BY_TOKEN)
                    .bind(token)
                    .bind(number)
                    .fetch_optional(&mut *self.conn().await?)
                    .await?)
            }

            async fn chats(
                &self,
                application_id: i64,
                page: $crate::domain::PageRequest,
            ) -> $crate::Result<$crate::domain::Page<$crate::domain::Chat>> {
                use $crate::domain::Cursor;
                let (sql, from) = match page.cursor {
                    Cursor::After(n) => ($crate::store::sql::CHATS_AFTER, n),
                    Cursor::Before(n) => ($crate::store::sql::CHATS_BEFORE, n),
                };
                let rows = sqlx::query_as(sql)
                    .bind(application_id)
                    .bind(from)
                    .bind(i64::from(page.limit) + 1)
                    .fetch_all(&mut *self.conn().await?)
                    .await?;
                Ok($crate::domain::Page::from_overfetch(
                    rows,
                    page.limit,
                    |c: &$crate::domain::Chat| c.number,
                ))
            }

            async fn insert_message(
                &self,
                chat: &$crate::domain::Chat,
                number: i64,
                body: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<$crate::domain::Message> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query($crate::store::sql::INSERT_MESSAGE)
                    .bind(chat.id)
                    .bind(number)
                    .bind(body)
                    .bind(now)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                let last_id: fn(&<$db as sqlx::Database>::QueryResult) -> i64 = $last_id;
                let message = $crate::domain::Message {
                    id: last_id(&done),
                    chat_id: chat.id,
                    number,
                    body: body.to_owned(),
                    version: 1,
                    created_at: now,
                    updated_at: now,
                };
                let event =
                    $crate::events::Envelope::message_created(chat.application_id, &message);
                sqlx::query($crate::store::sql::INSERT_OUTBOX)
                    .bind(event.to_json())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(message)
            }

            async fn message(
                &self,
                chat_id: i64,
                number: i64,
            ) -> $crate::Result<Option<$crate::domain::Message>> {
                Ok(sqlx::query_as($crate::store::sql::MESSAGE)
                    .bind(chat_id)
                    .bind(number)
                    .fetch_optional(&mut *self.conn().await?)
                    .await?)
            }

            async fn messages(
                &self,
                chat_id: i64,
                page: $crate::domain::PageRequest,
            ) -> $crate::Result<$crate::domain::Page<$crate::domain::Message>> {
                use $crate::domain::Cursor;
                let (sql, from) = match page.cursor {
                    Cursor::After(n) => ($crate::store::sql::MESSAGES_AFTER, n),
                    Cursor::Before(n) => ($crate::store::sql::MESSAGES_BEFORE, n),
                };
                let rows = sqlx::query_as(sql)
                    .bind(chat_id)
                    .bind(from)
                    .bind(i64::from(page.limit) + 1)
                    .fetch_all(&mut *self.conn().await?)
                    .await?;
                Ok($crate::domain::Page::from_overfetch(
                    rows,
                    page.limit,
                    |m: &$crate::domain::Message| m.number,
                ))
            }

            async fn update_message(
                &self,
                chat: &$crate::domain::Chat,
                number: i64,
                body: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<Option<$crate::domain::Message>> {
                let mut tx = self.begin_write().await?;
                sqlx::query($crate::store::sql::UPDATE_MESSAGE)
                    .bind(body)
                    .bind(now)
                    .bind(chat.id)
                    .bind(number)
                    .execute(&mut *tx)
                    .await?;
                let message: Option<$crate::domain::Message> =
                    sqlx::query_as($crate::store::sql::MESSAGE)
                        .bind(chat.id)
                        .bind(number)
                        .fetch_optional(&mut *tx)
                        .await?;
                if let Some(message) = &message {
                    let event =
                        $crate::events::Envelope::message_updated(chat.application_id, message);
                    sqlx::query($crate::store::sql::INSERT_OUTBOX)
                        .bind(event.to_json())
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(message)
            }

            async fn max_number(&self, sequence: $crate::domain::Sequence) -> $crate::Result<i64> {
                use $crate::domain::Sequence;
                let (sql, id) = match sequence {
                    Sequence::Chats { application_id } => {
                        ($crate::store::sql::MAX_CHAT_NUMBER, application_id)
                    }
                    Sequence::Messages { chat_id } => {
                        ($crate::store::sql::MAX_MESSAGE_NUMBER, chat_id)
                    }
                };
                let max: i64 = sqlx::query_scalar(sql)
                    .bind(id)
                    .fetch_one(&mut *self.conn().await?)
                    .await?;
                Ok(max)
            }

            async fn relay_outbox(
                &self,
                limit: u32,
                queue: &dyn $crate::queue::Queue,
            ) -> $crate::Result<usize> {
                let mut tx = self.begin_write().await?;
                let rows: Vec<(i64, String)> = sqlx::query_as(Self::CLAIM_OUTBOX)
                    .bind(i64::from(limit))
                    .fetch_all(&mut *tx)
                    .await?;
                // Dropping a transaction only queues its rollback until the connection is used
                // again; an idle pooled connection would keep these rows locked (and skipped by
                // every other relay), so every exit ends the transaction explicitly.
                if rows.is_empty() {
                    tx.rollback().await?;
                    return Ok(0);
                }
                let payloads: Vec<String> = rows.iter().map(|(_, p)| p.clone()).collect();
                // Published while the rows are locked: a crash between the two steps leaves
                // them unpublished, so they go out again (consumers are idempotent).
                if let Err(err) = queue.publish(&payloads).await {
                    tx.rollback().await?;
                    return Err(err);
                }
                let mut update =
                    sqlx::QueryBuilder::<$db>::new("UPDATE outbox SET published_at = ");
                update
                    .push_bind($crate::domain::now())
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

            async fn republish_retained(&self) -> $crate::Result<u64> {
                let done = sqlx::query($crate::store::sql::REPUBLISH_RETAINED)
                    .execute(&mut *self.conn().await?)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn purge_outbox(
                &self,
                published_before: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<u64> {
                let done = sqlx::query($crate::store::sql::PURGE_OUTBOX)
                    .bind(published_before)
                    .execute(&mut *self.conn().await?)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn outbox_waiting(&self) -> $crate::Result<i64> {
                Ok(sqlx::query_scalar($crate::store::sql::OUTBOX_WAITING)
                    .fetch_one(&mut *self.conn().await?)
                    .await?)
            }

            async fn state(&self, name: &str) -> $crate::Result<Option<String>> {
                Ok(sqlx::query_scalar($crate::store::sql::STATE)
                    .bind(name)
                    .fetch_optional(&mut *self.conn().await?)
                    .await?)
            }

            async fn swap_state(
                &self,
                name: &str,
                expected: Option<&str>,
                new: &str,
            ) -> $crate::Result<bool> {
                let now = $crate::domain::now();
                let result = match expected {
                    None => sqlx::query($crate::store::sql::INSERT_STATE)
                        .bind(name)
                        .bind(new)
                        .bind(now)
                        .execute(&mut *self.conn().await?)
                        .await
                        .map_err($crate::Error::from),
                    Some(old) => sqlx::query($crate::store::sql::SWAP_STATE)
                        .bind(new)
                        .bind(now)
                        .bind(name)
                        .bind(old)
                        .execute(&mut *self.conn().await?)
                        .await
                        .map_err($crate::Error::from),
                };
                match result {
                    Ok(done) => Ok(done.rows_affected() == 1),
                    Err($crate::Error::Taken) => Ok(false),
                    Err(err) => Err(err),
                }
            }

            async fn recount_chat(
                &self,
                chat_id: i64,
                settled_before: chrono::DateTime<chrono::Utc>,
                from_scratch: bool,
            ) -> $crate::Result<i64> {
                use $crate::store::sql;
                self.recount(
                    chat_id,
                    settled_before,
                    from_scratch,
                    [
                        Self::LOCK_CHAT_COUNTS,
                        sql::MESSAGES_SETTLED_MAX,
                        sql::MESSAGES_COUNT_RANGE,
                        sql::UPDATE_CHAT_COUNTS,
                    ],
                )
                .await
            }

            async fn recount_application(
                &self,
                application_id: i64,
                settled_before: chrono::DateTime<chrono::Utc>,
                from_scratch: bool,
            ) -> $crate::Result<i64> {
                use $crate::store::sql;
                self.recount(
                    application_id,
                    settled_before,
                    from_scratch,
                    [
                        Self::LOCK_APPLICATION_COUNTS,
                        sql::CHATS_SETTLED_MAX,
                        sql::CHATS_COUNT_RANGE,
                        sql::UPDATE_APPLICATION_COUNTS,
                    ],
                )
                .await
            }

            async fn messages_by_id(
                &self,
                after_id: i64,
                limit: u32,
                chat_id: Option<i64>,
            ) -> $crate::Result<Vec<$crate::domain::Message>> {
                let rows = match chat_id {
                    Some(chat_id) => {
                        sqlx::query_as($crate::store::sql::CHAT_MESSAGES_BY_ID)
                            .bind(chat_id)
                            .bind(after_id)
                            .bind(i64::from(limit))
                            .fetch_all(&mut *self.conn().await?)
                            .await?
                    }
                    None => {
                        sqlx::query_as($crate::store::sql::MESSAGES_BY_ID)
                            .bind(after_id)
                            .bind(i64::from(limit))
                            .fetch_all(&mut *self.conn().await?)
                            .await?
                    }
                };
                Ok(rows)
            }

            async fn chat_ids(&self, after_id: i64, limit: u32) -> $crate::Result<Vec<i64>> {
                Ok(sqlx::query_scalar($crate::store::sql::CHAT_IDS)
                    .bind(after_id)
                    .bind(i64::from(limit))
                    .fetch_all(&mut *self.conn().await?)
                    .await?)
            }

            async fn application_ids(&self, after_id: i64, limit: u32) -> $crate::Result<Vec<i64>> {
                Ok(sqlx::query_scalar($crate::store::sql::APPLICATION_IDS)
                    .bind(after_id)
                    .bind(i64::from(limit))
                    .fetch_all(&mut *self.conn().await?)
                    .await?)
            }

            async fn totals(&self) -> $crate::Result<(i64, i64, i64)> {
                use $crate::store::sql;
                let apps: i64 = sqlx::query_scalar(sql::COUNT_APPLICATIONS)
                    .fetch_one(&mut *self.conn().await?)
                    .await?;
                let chats: i64 = sqlx::query_scalar(sql::COUNT_CHATS)
                    .fetch_one(&mut *self.conn().await?)
                    .await?;
                let messages: i64 = sqlx::query_scalar(sql::COUNT_MESSAGES)
                    .fetch_one(&mut *self.conn().await?)
                    .await?;
                Ok((apps, chats, messages))
            }
        }

        impl $store {
            /// A pooled connection, the wait for it recorded (`chat_db_acquire_duration_seconds`).
            async fn conn(&self) -> $crate::Result<sqlx::pool::PoolConnection<$db>> {
                let started = std::time::Instant::now();
                let conn = self.pool.acquire().await;
                $crate::metrics::DB_ACQUIRE_SECONDS.observe(started.elapsed().as_secs_f64());
                Ok(conn?)
            }

            /// Recounts one parent (a chat's messages, an application's chats) past its settled
            /// watermark. `statements`: lock the parent's counters, find the new watermark,
            /// count a number range, store the counters.
            async fn recount(
                &self,
                parent_id: i64,
                settled_before: chrono::DateTime<chrono::Utc>,
                from_scratch: bool,
                [lock, settled_max, count_range, store]: [&'static str; 4],
            ) -> $crate::Result<i64> {
                let mut tx = self.begin_write().await?;
                let Some((mut counted_number, mut counted)): Option<(i64, i64)> =
                    sqlx::query_as(lock)
                        .bind(parent_id)
                        .fetch_optional(&mut *tx)
                        .await?
                else {
                    tx.rollback().await?;
                    return Ok(0);
                };
                if from_scratch {
                    (counted_number, counted) = (0, 0);
                }
                let horizon: i64 = sqlx::query_scalar::<_, i64>(settled_max)
                    .bind(parent_id)
                    .bind(counted_number)
                    .bind(settled_before)
                    .fetch_one(&mut *tx)
                    .await?
                    .max(counted_number);
                let count = |from: i64, to: i64| {
                    sqlx::query_scalar::<_, i64>(count_range)
                        .bind(parent_id)
                        .bind(from)
                        .bind(to)
                };
                let newly_settled = count(counted_number, horizon).fetch_one(&mut *tx).await?;
                let recent = count(horizon, i64::MAX).fetch_one(&mut *tx).await?;
                let settled = counted + newly_settled;
                sqlx::query(store)
                    .bind(horizon)
                    .bind(settled)
                    .bind(settled + recent)
                    .bind(parent_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(settled + recent)
            }
        }
    };
}

pub(crate) use impl_sql_store;
