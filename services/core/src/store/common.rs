//! The `Store` implementation both SQL adapters share. MySQL and SQLite accept the same
//! statements (see `sql.rs`); only connecting, migrating and reading a generated id differ, so
//! each adapter supplies those and this macro writes the rest once.

/// `impl Store` for a struct with a `pool: sqlx::Pool<$db>` field. `$last_id` turns the
/// driver's query result into the generated row id.
macro_rules! impl_sql_store {
    ($store:ty, $db:ty, $last_id:expr) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            async fn ping(&self) -> $crate::Result<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
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
                    .execute(&self.pool)
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
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn rename_application(
                &self,
                application_id: i64,
                name: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<Option<$crate::domain::Application>> {
                let mut tx = self.pool.begin().await?;
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
                let done = sqlx::query($crate::store::sql::INSERT_CHAT)
                    .bind(application_id)
                    .bind(number)
                    .bind(now)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                let last_id: fn(&<$db as sqlx::Database>::QueryResult) -> i64 = $last_id;
                Ok($crate::domain::Chat {
                    id: last_id(&done),
                    application_id,
                    number,
                    messages_count: 0,
                    created_at: now,
                    updated_at: now,
                })
            }

            async fn chat_by_token(
                &self,
                token: &str,
                number: i64,
            ) -> $crate::Result<Option<$crate::domain::Chat>> {
                Ok(sqlx::query_as($crate::store::sql::CHAT_BY_TOKEN)
                    .bind(token)
                    .bind(number)
                    .fetch_optional(&self.pool)
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
                    .fetch_all(&self.pool)
                    .await?;
                Ok($crate::domain::Page::from_overfetch(
                    rows,
                    page.limit,
                    |c: &$crate::domain::Chat| c.number,
                ))
            }

            async fn insert_message(
                &self,
                chat_id: i64,
                number: i64,
                body: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<$crate::domain::Message> {
                let done = sqlx::query($crate::store::sql::INSERT_MESSAGE)
                    .bind(chat_id)
                    .bind(number)
                    .bind(body)
                    .bind(now)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                let last_id: fn(&<$db as sqlx::Database>::QueryResult) -> i64 = $last_id;
                Ok($crate::domain::Message {
                    id: last_id(&done),
                    chat_id,
                    number,
                    body: body.to_owned(),
                    created_at: now,
                    updated_at: now,
                })
            }

            async fn message(
                &self,
                chat_id: i64,
                number: i64,
            ) -> $crate::Result<Option<$crate::domain::Message>> {
                Ok(sqlx::query_as($crate::store::sql::MESSAGE)
                    .bind(chat_id)
                    .bind(number)
                    .fetch_optional(&self.pool)
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
                    .fetch_all(&self.pool)
                    .await?;
                Ok($crate::domain::Page::from_overfetch(
                    rows,
                    page.limit,
                    |m: &$crate::domain::Message| m.number,
                ))
            }

            async fn update_message(
                &self,
                chat_id: i64,
                number: i64,
                body: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<Option<$crate::domain::Message>> {
                let mut tx = self.pool.begin().await?;
                sqlx::query($crate::store::sql::UPDATE_MESSAGE)
                    .bind(body)
                    .bind(now)
                    .bind(chat_id)
                    .bind(number)
                    .execute(&mut *tx)
                    .await?;
                let message = sqlx::query_as($crate::store::sql::MESSAGE)
                    .bind(chat_id)
                    .bind(number)
                    .fetch_optional(&mut *tx)
                    .await?;
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
                    .fetch_one(&self.pool)
                    .await?;
                Ok(max)
            }
        }
    };
}

pub(crate) use impl_sql_store;
