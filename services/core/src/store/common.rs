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
                    .bind($crate::domain::token_hash(token))
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
                let mut conn = self.conn().await?;
                let found: Option<$crate::domain::Application> =
                    sqlx::query_as($crate::store::sql::APPLICATION_BY_TOKEN_HASH)
                        .bind($crate::domain::token_hash(token))
                        .fetch_optional(&mut *conn)
                        .await?;
                let found = match found {
                    Some(app) => Some(app),
                    None => Self::application_by_old_token(&mut conn, token).await?,
                };
                Ok(found.map(|app| $crate::domain::Application {
                    token: token.to_owned(),
                    ..app
                }))
            }

            async fn rotate_token(
                &self,
                application_id: i64,
                current: &str,
                new: &str,
                previous_valid_until: Option<chrono::DateTime<chrono::Utc>>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<Option<$crate::domain::Application>> {
                let mut tx = self.begin_write().await?;
                let written: $crate::Result<Option<$crate::domain::Application>> = async {
                    let current_hash = $crate::domain::token_hash(current);
                    let done = sqlx::query($crate::store::sql::ROTATE_TOKEN)
                        .bind($crate::domain::token_hash(new))
                        .bind(previous_valid_until.map(|_| current_hash.clone()))
                        .bind(previous_valid_until)
                        .bind(now)
                        .bind(application_id)
                        .bind(&current_hash)
                        .bind(current)
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() == 0 {
                        return Ok(None);
                    }
                    let app: Option<$crate::domain::Application> =
                        sqlx::query_as($crate::store::sql::APPLICATION_BY_ID)
                            .bind(application_id)
                            .fetch_optional(&mut *tx)
                            .await?;
                    Ok(app.map(|app| $crate::domain::Application {
                        token: new.to_owned(),
                        ..app
                    }))
                }
                .await;
                Self::finish(tx, written).await
            }

            async fn hash_plain_tokens(&self, limit: u32) -> $crate::Result<u64> {
                let mut conn = self.conn().await?;
                let rows: Vec<(i64, String)> = sqlx::query_as($crate::store::sql::UNHASHED_TOKENS)
                    .bind(i64::from(limit))
                    .fetch_all(&mut *conn)
                    .await?;
                let mut hashed = 0;
                for (id, token) in rows {
                    hashed += Self::set_token_hash(&mut conn, id, &token).await?;
                }
                Ok(hashed)
            }

            async fn forget_plain_tokens(&self) -> $crate::Result<u64> {
                let done = sqlx::query($crate::store::sql::FORGET_PLAIN_TOKENS)
                    .execute(&mut *self.conn().await?)
                    .await?;
                Ok(done.rows_affected())
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

            async fn insert_chats(
                &self,
                batch: &[$crate::store::NewChat],
            ) -> Vec<$crate::Result<$crate::domain::Chat>> {
                if batch.len() == 1 {
                    return vec![self.insert_chats_at_once(batch).await.map(|mut c| c.remove(0))];
                }
                match self.insert_chats_at_once(batch).await {
                    Ok(chats) => chats.into_iter().map(Ok).collect(),
                    Err(err) if $crate::store::row_level(&err) => {
                        futures::future::join_all(batch.iter().map(|c| async move {
                            let mut one = self
                                .insert_chats_at_once(std::slice::from_ref(c))
                                .await?;
                            Ok(one.remove(0))
                        }))
                        .await
                    }
                    Err(err) => batch.iter().map(|_| Err(err.clone())).collect(),
                }
            }

            async fn chats_by_token(
                &self,
                addresses: &[(String, i64)],
            ) -> $crate::Result<Vec<Option<$crate::domain::Chat>>> {
                use sqlx::{FromRow, Row};
                if let [(token, number)] = addresses {
                    return Ok(vec![self.chat_by_token(token, *number).await?]);
                }
                // Point lookups glued with UNION ALL: each part uses the unique indexes, and
                // `k` says which address a row answers.
                let mut query = sqlx::QueryBuilder::<$db>::new("");
                for (k, (token, number)) in addresses.iter().enumerate() {
                    if k > 0 {
                        query.push(" UNION ALL ");
                    }
                    query.push(format!("SELECT {k} AS k, "));
                    query.push($crate::store::sql::CHAT_BY_TOKEN_HASH_PARTS);
                    query.push_bind($crate::domain::token_hash(token));
                    query.push(" AND c.number = ");
                    query.push_bind(*number);
                }
                let rows = query.build().fetch_all(&mut *self.conn().await?).await?;
                let mut found = vec![None; addresses.len()];
                for row in rows {
                    let k: i64 = row.try_get("k")?;
                    let slot = found.get_mut(k as usize).ok_or_else(|| {
                        $crate::Error::Database(format!("lookup answered unknown key {k}"))
                    })?;
                    *slot = Some($crate::domain::Chat::from_row(&row)?);
                }
                // Misses are rare (unknown chats, a previous-release row, a rotated token in
                // its grace period): each takes the slow path on its own.
                for ((token, number), slot) in addresses.iter().zip(found.iter_mut()) {
                    if slot.is_none() {
                        *slot = self.chat_by_old_token(token, *number).await?;
                    }
                }
                Ok(found)
            }

            async fn chat_by_token(
                &self,
                token: &str,
                number: i64,
            ) -> $crate::Result<Option<$crate::domain::Chat>> {
                let found = sqlx::query_as($crate::store::sql::CHAT_BY_TOKEN_HASH)
                    .bind($crate::domain::token_hash(token))
                    .bind(number)
                    .fetch_optional(&mut *self.conn().await?)
                    .await?;
                match found {
                    Some(chat) => Ok(Some(chat)),
                    None => self.chat_by_old_token(token, number).await,
                }
            }

            async fn chats(
                &self,
                application_id: i64,
                page: $crate::domain::PageRequest,
            ) -> $crate::Result<$crate::domain::Page<$crate::domain::Chat>> {
                use $crate::domain::Cursor;
                let (sql, from) = match page.cursor {
                    Cursor::After(n) => ($crate::store::sql::CHATS_AFTER.get(Self::DIALECT), n),
                    Cursor::Before(n) => ($crate::store::sql::CHATS_BEFORE.get(Self::DIALECT), n),
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

            async fn insert_messages(
                &self,
                batch: &[$crate::store::NewMessage],
            ) -> Vec<$crate::Result<$crate::domain::Message>> {
                if batch.len() == 1 {
                    return vec![
                        self.insert_messages_at_once(batch)
                            .await
                            .map(|mut m| m.remove(0)),
                    ];
                }
                match self.insert_messages_at_once(batch).await {
                    Ok(messages) => messages.into_iter().map(Ok).collect(),
                    Err(err) if $crate::store::row_level(&err) => {
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
                    Cursor::After(n) => ($crate::store::sql::MESSAGES_AFTER.get(Self::DIALECT), n),
                    Cursor::Before(n) => ($crate::store::sql::MESSAGES_BEFORE.get(Self::DIALECT), n),
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
                // In chunks: one DELETE of everything past retention would be one long
                // statement (and, for SQLite, one long hold of the write lock) at high rates.
                let mut purged = 0;
                loop {
                    let done = sqlx::query(Self::PURGE_OUTBOX_CHUNK)
                        .bind(published_before)
                        .bind(i64::from($crate::store::PURGE_CHUNK))
                        .execute(&mut *self.conn().await?)
                        .await?;
                    purged += done.rows_affected();
                    if done.rows_affected() < u64::from($crate::store::PURGE_CHUNK) {
                        return Ok(purged);
                    }
                }
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

            async fn recount_chats(
                &self,
                chat_ids: &[i64],
                settled_before: chrono::DateTime<chrono::Utc>,
                from_scratch: bool,
            ) -> $crate::Result<Vec<i64>> {
                use $crate::store::sql;
                self.recount(
                    chat_ids,
                    settled_before,
                    from_scratch,
                    [
                        sql::CHAT_COUNTS,
                        sql::MESSAGES_SETTLED_MAX.get(Self::DIALECT),
                        sql::MESSAGES_COUNT_RANGE,
                        sql::UPDATE_CHAT_COUNTS,
                    ],
                )
                .await
            }

            async fn recount_applications(
                &self,
                application_ids: &[i64],
                settled_before: chrono::DateTime<chrono::Utc>,
                from_scratch: bool,
            ) -> $crate::Result<Vec<i64>> {
                use $crate::store::sql;
                self.recount(
                    application_ids,
                    settled_before,
                    from_scratch,
                    [
                        sql::APPLICATION_COUNTS,
                        sql::CHATS_SETTLED_MAX.get(Self::DIALECT),
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
            /// An application addressed by a token its hash does not find: a plain token on a
            /// row the previous release wrote (hashed on the way), or the token the last rotation
            /// replaced, while its grace period lasts.
            async fn application_by_old_token(
                conn: &mut sqlx::pool::PoolConnection<$db>,
                token: &str,
            ) -> $crate::Result<Option<$crate::domain::Application>> {
                let legacy: Option<$crate::domain::Application> =
                    sqlx::query_as($crate::store::sql::APPLICATION_BY_PLAIN_TOKEN)
                        .bind(token)
                        .fetch_optional(&mut **conn)
                        .await?;
                if let Some(app) = legacy {
                    Self::set_token_hash(conn, app.id, token).await?;
                    return Ok(Some(app));
                }
                Ok(sqlx::query_as($crate::store::sql::APPLICATION_BY_PREVIOUS_TOKEN)
                    .bind($crate::domain::token_hash(token))
                    .bind($crate::domain::now())
                    .fetch_optional(&mut **conn)
                    .await?)
            }

            async fn set_token_hash(
                conn: &mut sqlx::pool::PoolConnection<$db>,
                id: i64,
                token: &str,
            ) -> $crate::Result<u64> {
                let done = sqlx::query($crate::store::sql::SET_TOKEN_HASH)
                    .bind($crate::domain::token_hash(token))
                    .bind(id)
                    .bind(token)
                    .execute(&mut **conn)
                    .await?;
                Ok(done.rows_affected())
            }

            /// [`Store::chat_by_token`] past a hash miss.
            async fn chat_by_old_token(
                &self,
                token: &str,
                number: i64,
            ) -> $crate::Result<Option<$crate::domain::Chat>> {
                let mut conn = self.conn().await?;
                let Some(app) = Self::application_by_old_token(&mut conn, token).await? else {
                    return Ok(None);
                };
                Ok(sqlx::query_as($crate::store::sql::CHAT_OF_APPLICATION)
                    .bind(app.id)
                    .bind(number)
                    .fetch_optional(&mut *conn)
                    .await?)
            }

            /// The whole batch in one transaction: one multi-row `INSERT` for the chats, one
            /// `SELECT` for their ids, one multi-row `INSERT` for their events.
            async fn insert_chats_at_once(
                &self,
                batch: &[$crate::store::NewChat],
            ) -> $crate::Result<Vec<$crate::domain::Chat>> {
                let mut tx = self.begin_write().await?;
                let written: $crate::Result<Vec<$crate::domain::Chat>> = async {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO chats (chat_application_id, number, messages_count, created_at, updated_at) ",
                    );
                    // Rows go in parent order: the foreign-key checks then lock parents in the
                    // same (ascending) order the counter's writes do, so the two cannot deadlock.
                    let mut sorted: Vec<&$crate::store::NewChat> = batch.iter().collect();
                    sorted.sort_by_key(|c| (c.application_id, c.number));
                    insert.push_values(sorted, |mut row, c| {
                        row.push_bind(c.application_id)
                            .push_bind(c.number)
                            .push_bind(0_i64)
                            .push_bind(c.now)
                            .push_bind(c.now);
                    });
                    let done = insert.build().execute(&mut *tx).await?;
                    let keys: Vec<(i64, i64)> =
                        batch.iter().map(|c| (c.application_id, c.number)).collect();
                    let ids =
                        Self::ids_of(&mut tx, &done, "chats", "chat_application_id", &keys).await?;
                    let chats = batch
                        .iter()
                        .zip(ids)
                        .map(|(c, id)| $crate::domain::Chat {
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
                            let event = $crate::events::Envelope::chat_created(c)
                                .traced(new.trace.clone());
                            (event.to_json(), c.created_at)
                        })
                        .collect();
                    Self::insert_events(&mut tx, &events).await?;
                    Ok(chats)
                }
                .await;
                Self::finish(tx, written).await
            }

            /// [`Self::insert_chats_at_once`] for messages.
            async fn insert_messages_at_once(
                &self,
                batch: &[$crate::store::NewMessage],
            ) -> $crate::Result<Vec<$crate::domain::Message>> {
                let mut tx = self.begin_write().await?;
                let written: $crate::Result<Vec<$crate::domain::Message>> = async {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO messages (chat_id, number, body, created_at, updated_at) ",
                    );
                    let mut sorted: Vec<&$crate::store::NewMessage> = batch.iter().collect();
                    sorted.sort_by_key(|m| (m.chat.id, m.number));
                    insert.push_values(sorted, |mut row, m| {
                        row.push_bind(m.chat.id)
                            .push_bind(m.number)
                            .push_bind(m.body.as_str())
                            .push_bind(m.now)
                            .push_bind(m.now);
                    });
                    let done = insert.build().execute(&mut *tx).await?;
                    let keys: Vec<(i64, i64)> =
                        batch.iter().map(|m| (m.chat.id, m.number)).collect();
                    let ids = Self::ids_of(&mut tx, &done, "messages", "chat_id", &keys).await?;
                    let mut events = Vec::with_capacity(batch.len());
                    let messages = batch
                        .iter()
                        .zip(ids)
                        .map(|(m, id)| {
                            let message = $crate::domain::Message {
                                id,
                                chat_id: m.chat.id,
                                number: m.number,
                                body: m.body.clone(),
                                version: 1,
                                created_at: m.now,
                                updated_at: m.now,
                            };
                            events.push((
                                $crate::events::Envelope::message_created(
                                    m.chat.application_id,
                                    &message,
                                )
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

            /// Commits after success, rolls back after failure (explicitly: a dropped
            /// transaction would keep its locks until the pooled connection is used again).
            async fn finish<T>(
                tx: sqlx::Transaction<'static, $db>,
                written: $crate::Result<T>,
            ) -> $crate::Result<T> {
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

            /// The ids of rows just inserted, in the order of `keys` (parent id, number). Ids
            /// of several rows are read back rather than derived from the last insert id: a
            /// multi-row insert need not get consecutive ids (InnoDB's interleaved
            /// auto-increment mode).
            async fn ids_of(
                tx: &mut sqlx::Transaction<'static, $db>,
                done: &<$db as sqlx::Database>::QueryResult,
                table: &'static str,
                parent: &'static str,
                keys: &[(i64, i64)],
            ) -> $crate::Result<Vec<i64>> {
                use sqlx::Row;
                if keys.len() == 1 {
                    let last_id: fn(&<$db as sqlx::Database>::QueryResult) -> i64 = $last_id;
                    return Ok(vec![last_id(done)]);
                }
                // One shape per batch size (see `coalesce.rs` on statement shapes); the range
                // optimizer turns the disjunction into point lookups on the unique index.
                let mut select = sqlx::QueryBuilder::<$db>::new(format!(
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
                        ids.get(key).copied().ok_or_else(|| {
                            $crate::Error::Database(format!("inserted row {key:?} not found"))
                        })
                    })
                    .collect()
            }

            /// One multi-row `INSERT` into the outbox.
            async fn insert_events(
                tx: &mut sqlx::Transaction<'static, $db>,
                events: &[(String, chrono::DateTime<chrono::Utc>)],
            ) -> $crate::Result<()> {
                let mut insert =
                    sqlx::QueryBuilder::<$db>::new("INSERT INTO outbox (payload, created_at) ");
                insert.push_values(events, |mut row, (payload, at)| {
                    row.push_bind(payload.as_str()).push_bind(*at);
                });
                insert.build().execute(&mut **tx).await?;
                Ok(())
            }

            /// A pooled connection, the wait for it recorded (`chat_db_acquire_duration_seconds`).
            async fn conn(&self) -> $crate::Result<sqlx::pool::PoolConnection<$db>> {
                let started = std::time::Instant::now();
                let conn = self.pool.acquire().await;
                $crate::metrics::DB_ACQUIRE_SECONDS.observe(started.elapsed().as_secs_f64());
                Ok(conn?)
            }

            /// Recounts parents (chats' messages, applications' chats) past their settled
            /// watermarks. `statements`: read a parent's counters, find the new watermark,
            /// count a number range, store the counters if unchanged since read.
            async fn recount(
                &self,
                parent_ids: &[i64],
                settled_before: chrono::DateTime<chrono::Utc>,
                from_scratch: bool,
                [read, settled_max, count_range, store]: [&'static str; 4],
            ) -> $crate::Result<Vec<i64>> {
                // A parent another counter updated meanwhile is recounted from its new values;
                // more than a few rounds means someone recounts it non-stop: give up this time.
                const ROUNDS: usize = 5;
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
                            let settled = base_count
                                + count(base_number, horizon).fetch_one(&mut *conn).await?;
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
                    let written: $crate::Result<()> = async {
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
                            if done.rows_affected() == 0 {
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
                    Err($crate::Error::Contention {
                        attempts: ROUNDS as u32,
                    })
                }
            }
        }
    };
}

pub(crate) use impl_sql_store;
