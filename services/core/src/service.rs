//! One function per use case. Handlers call exactly one of these; these call the ports.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Notify;

use crate::coalesce::Coalescer;
use crate::domain::{
    self, Application, Chat, Message, Page, PageRequest, Sequence, is_well_formed_token,
};
use crate::error::{Entity, Error, Result};
use crate::numbers::Numbers;
use crate::search::{self, SearchCursor, SearchIndex, SearchPage, SearchRequest};
use crate::store::{NewChat, NewMessage, Store};

/// How many numbers one create may try before answering 503. Collisions only follow a lost
/// counter (each one raises the counter past every committed number), so a handful suffices
/// even with hundreds of creates in flight.
pub const MAX_NUMBER_ATTEMPTS: u32 = 16;

/// Most creates one multi-row `INSERT` carries, and most addresses one lookup resolves.
const MAX_WRITE_BATCH: usize = 128;
const MAX_LOOKUP_BATCH: usize = 64;

#[derive(Clone)]
pub struct ChatService {
    store: Arc<dyn Store>,
    numbers: Arc<dyn Numbers>,
    search: Arc<dyn SearchIndex>,
    /// Poked after each committed write so this process's outbox relay publishes at once.
    wrote: Arc<Notify>,
    max_body_bytes: usize,
    /// How long a rotated-out token keeps working.
    token_grace: std::time::Duration,
    /// Concurrent creates and lookups share round trips (see `coalesce.rs`).
    new_chats: Coalescer<NewChat, Chat>,
    new_messages: Coalescer<NewMessage, Message>,
    lookups: Coalescer<(String, i64), Option<Chat>>,
}

/// What readiness reports about each dependency.
#[derive(Debug, Clone)]
pub struct Health {
    pub database: Result<(), String>,
    pub numbering: Result<(), String>,
    pub numbering_backend: &'static str,
    pub search: Result<(), String>,
    pub search_backend: &'static str,
}

impl ChatService {
    /// `parallel`: how many batches of each kind may be in flight at once (a share of the
    /// database pool). Must be called inside a Tokio runtime.
    pub fn new(
        store: Arc<dyn Store>,
        numbers: Arc<dyn Numbers>,
        search: Arc<dyn SearchIndex>,
        wrote: Arc<Notify>,
        max_body_bytes: usize,
        parallel: usize,
    ) -> Self {
        let writer = store.clone();
        let new_chats = Coalescer::new("insert_chat", MAX_WRITE_BATCH, parallel, move |batch| {
            let store = writer.clone();
            async move { store.insert_chats(&batch).await }
        });
        let writer = store.clone();
        let new_messages =
            Coalescer::new("insert_message", MAX_WRITE_BATCH, parallel, move |batch| {
                let store = writer.clone();
                async move { store.insert_messages(&batch).await }
            });
        let reader = store.clone();
        let lookups = Coalescer::new("chat_lookup", MAX_LOOKUP_BATCH, parallel, move |keys| {
            let store = reader.clone();
            async move {
                match store.chats_by_token(&keys).await {
                    Ok(found) => found.into_iter().map(Ok).collect(),
                    Err(err) => keys.iter().map(|_| Err(err.clone())).collect(),
                }
            }
        });
        ChatService {
            store,
            numbers,
            search,
            wrote,
            max_body_bytes,
            token_grace: std::time::Duration::ZERO,
            new_chats,
            new_messages,
            lookups,
        }
    }

    /// How long a token replaced by [`ChatService::rotate_token`] keeps working (default 0).
    pub fn with_token_grace(mut self, grace: std::time::Duration) -> Self {
        self.token_grace = grace;
        self
    }

    /// Messages of one chat matching every word of `q` (see `search.rs` for the semantics).
    pub async fn search(
        &self,
        token: &str,
        chat: i64,
        q: &str,
        limit: u32,
        after: Option<SearchCursor>,
    ) -> Result<SearchPage> {
        let chat = self.chat(token, chat).await?;
        let chars = q.chars().count();
        if chars > search::MAX_QUERY_CHARS {
            return Err(domain::invalid(
                "q",
                format!(
                    "must be at most {} characters (got {chars})",
                    search::MAX_QUERY_CHARS
                ),
            ));
        }
        let words = search::query_words(q);
        if words.is_empty() {
            // Only punctuation: nothing can match, and that is not an error.
            return Ok(SearchPage {
                hits: Vec::new(),
                next: None,
            });
        }
        self.search
            .search(&SearchRequest {
                chat_id: chat.id,
                words,
                limit,
                after,
            })
            .await
    }

    pub async fn create_application(&self, name: &str) -> Result<Application> {
        domain::validate_name(name)?;
        // A token collision is a 1-in-2^64 event at a billion applications; retrying once is
        // cheaper than ever answering an error for it.
        for _ in 0..3 {
            let token = domain::new_token()?;
            match self
                .store
                .insert_application(&token, name, domain::now())
                .await
            {
                Err(Error::Taken) => continue,
                other => return other,
            }
        }
        Err(Error::Contention { attempts: 3 })
    }

    pub async fn application(&self, token: &str) -> Result<Application> {
        if !is_well_formed_token(token) {
            return Err(Error::NotFound(Entity::Application));
        }
        self.store
            .application_by_token(token)
            .await?
            .ok_or(Error::NotFound(Entity::Application))
    }

    pub async fn rename_application(&self, token: &str, name: &str) -> Result<Application> {
        let app = self.application(token).await?;
        domain::validate_name(name)?;
        let renamed = self
            .store
            .rename_application(app.id, name, domain::now())
            .await?
            .ok_or(Error::NotFound(Entity::Application))?;
        Ok(Application {
            token: token.to_owned(),
            ..renamed
        })
    }

    /// Gives the application a new token. The one used here stops working at once, or after
    /// the grace period; chats, messages and numbers stay as they are.
    pub async fn rotate_token(&self, token: &str) -> Result<Application> {
        let app = self.application(token).await?;
        let now = domain::now();
        let grace = chrono::Duration::from_std(self.token_grace)
            .map_err(|err| Error::Config(format!("CHAT_TOKEN_GRACE_S: {err}")))?;
        let previous_valid_until = (!self.token_grace.is_zero()).then(|| now + grace);
        for _ in 0..3 {
            let new = domain::new_token()?;
            match self
                .store
                .rotate_token(app.id, token, &new, previous_valid_until, now)
                .await
            {
                // A 1-in-2^64 collision with another application's token: draw again.
                Err(Error::Taken) => continue,
                Ok(Some(rotated)) => return Ok(rotated),
                // Found, but only as a rotated-out token in its grace period (or a
                // concurrent rotation won).
                Ok(None) => return Err(Error::TokenRotated),
                Err(err) => return Err(err),
            }
        }
        Err(Error::Contention { attempts: 3 })
    }

    pub async fn create_chat(&self, token: &str) -> Result<Chat> {
        let app = self.application(token).await?;
        let sequence = Sequence::Chats {
            application_id: app.id,
        };
        // Captured here: the batched write runs outside this request's span.
        let trace = crate::telemetry::current_traceparent();
        let chat = self
            .with_next_number(sequence, |number| {
                self.new_chats.run(NewChat {
                    application_id: app.id,
                    number,
                    now: domain::now(),
                    trace: trace.clone(),
                })
            })
            .await?;
        self.wrote.notify_one();
        Ok(chat)
    }

    pub async fn chat(&self, token: &str, number: i64) -> Result<Chat> {
        if !is_well_formed_token(token) {
            return Err(Error::NotFound(Entity::Application));
        }
        if let Some(chat) = self.lookups.run((token.to_owned(), number)).await? {
            return Ok(chat);
        }
        // Tell "no such application" from "no such chat": clients fix different things.
        self.application(token).await?;
        Err(Error::NotFound(Entity::Chat))
    }

    pub async fn chats(&self, token: &str, page: PageRequest) -> Result<Page<Chat>> {
        let app = self.application(token).await?;
        self.store.chats(app.id, page).await
    }

    pub async fn create_message(&self, token: &str, chat: i64, body: &str) -> Result<Message> {
        let started = std::time::Instant::now();
        let chat = self.chat(token, chat).await?;
        stage("lookup", started);
        domain::validate_body(body, self.max_body_bytes)?;
        let sequence = Sequence::Messages { chat_id: chat.id };
        let trace = crate::telemetry::current_traceparent();
        let message = self
            .with_next_number(sequence, |number| {
                self.new_messages.run(NewMessage {
                    chat: chat.clone(),
                    number,
                    body: body.to_owned(),
                    now: domain::now(),
                    trace: trace.clone(),
                })
            })
            .await?;
        self.wrote.notify_one();
        Ok(message)
    }

    pub async fn message(&self, token: &str, chat: i64, number: i64) -> Result<Message> {
        let chat = self.chat(token, chat).await?;
        self.store
            .message(chat.id, number)
            .await?
            .ok_or(Error::NotFound(Entity::Message))
    }

    pub async fn messages(
        &self,
        token: &str,
        chat: i64,
        page: PageRequest,
    ) -> Result<Page<Message>> {
        let chat = self.chat(token, chat).await?;
        self.store.messages(chat.id, page).await
    }

    pub async fn update_message(
        &self,
        token: &str,
        chat: i64,
        number: i64,
        body: &str,
    ) -> Result<Message> {
        let chat = self.chat(token, chat).await?;
        domain::validate_body(body, self.max_body_bytes)?;
        let message = self
            .store
            .update_message(&chat, number, body, domain::now())
            .await?
            .ok_or(Error::NotFound(Entity::Message))?;
        self.wrote.notify_one();
        Ok(message)
    }

    /// Hard-deletes a message; its number is never handed out again.
    pub async fn delete_message(&self, token: &str, chat: i64, number: i64) -> Result<()> {
        let chat = self.chat(token, chat).await?;
        self.store
            .delete_message(&chat, number, domain::now())
            .await?
            .ok_or(Error::NotFound(Entity::Message))?;
        self.wrote.notify_one();
        Ok(())
    }

    /// Hides a chat at once; the purge removes its messages and documents later.
    pub async fn delete_chat(&self, token: &str, number: i64) -> Result<()> {
        let chat = self.chat(token, number).await?;
        if !self.store.hide_chat(&chat, domain::now()).await? {
            return Err(Error::NotFound(Entity::Chat));
        }
        self.wrote.notify_one();
        Ok(())
    }

    /// Hides an application (its token stops working at once); the purge removes the rest.
    pub async fn delete_application(&self, token: &str) -> Result<()> {
        let app = self.application(token).await?;
        if !self.store.hide_application(app.id, domain::now()).await? {
            return Err(Error::NotFound(Entity::Application));
        }
        self.wrote.notify_one();
        Ok(())
    }

    /// (connections open, connections idle) of the database pool, for metrics.
    pub fn pool_usage(&self) -> (u32, u32) {
        self.store.pool_usage()
    }

    /// Bytes of the search index, for metrics.
    pub async fn search_index_bytes(&self) -> Result<u64> {
        self.search.size_bytes().await
    }

    pub async fn health(&self) -> Health {
        // Each dependency gets its own deadline, so a slow one never reads as another one down.
        let (database, numbering, search) = tokio::join!(
            within(self.store.ping()),
            within(self.numbers.ping()),
            within(self.search.ping())
        );
        Health {
            database: database.map_err(|e| e.to_string()),
            numbering: numbering.map_err(|e| e.to_string()),
            numbering_backend: self.numbers.backend(),
            search: search.map_err(|e| e.to_string()),
            search_backend: self.search.backend(),
        }
    }

    /// Allocates a number and inserts with it. The unique index is the last defence: on a
    /// collision (only possible after a counter was lost and re-seeded while creates were in
    /// flight) the counter is raised past the highest committed number and the insert retried.
    async fn with_next_number<T, F, Fut>(&self, sequence: Sequence, insert: F) -> Result<T>
    where
        F: Fn(i64) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let started = std::time::Instant::now();
        // Once Redis failed this create, its retries number from the database directly
        // instead of waiting out the Redis timeout again on each.
        let mut redis_down = false;
        let mut number = match self.numbers.next(sequence).await {
            Ok(Some(number)) => number,
            Ok(None) => self.reseed(sequence, &mut redis_down).await?,
            Err(Error::RedisUnavailable(reason)) => {
                redis_down = true;
                self.number_from_database(sequence, &reason).await?
            }
            Err(err) => return Err(err),
        };
        stage("number", started);
        for attempt in 1..=MAX_NUMBER_ATTEMPTS {
            let started = std::time::Instant::now();
            let inserted = insert(number).await;
            stage("write", started);
            match inserted {
                // Rolled back whole: the number is still ours, try it again.
                Err(Error::Deadlock(reason)) => {
                    tracing::debug!(?sequence, number, attempt, %reason, "deadlock victim; retrying");
                }
                Err(Error::Taken) => {
                    crate::metrics::NUMBER_RETRIES.inc();
                    tracing::warn!(
                        ?sequence,
                        number,
                        attempt,
                        "number already taken; re-seeding"
                    );
                    number = if redis_down {
                        self.number_from_database(sequence, "unavailable earlier in this create")
                            .await?
                    } else {
                        self.reseed(sequence, &mut redis_down).await?
                    };
                }
                other => return other,
            }
        }
        Err(Error::Contention {
            attempts: MAX_NUMBER_ATTEMPTS,
        })
    }

    async fn reseed(&self, sequence: Sequence, redis_down: &mut bool) -> Result<i64> {
        crate::metrics::NUMBER_RESEEDS.inc();
        let floor = self.store.max_number(sequence).await?;
        match self.numbers.next_above(sequence, floor).await {
            Err(Error::RedisUnavailable(reason)) => {
                *redis_down = true;
                Ok(self.fallback_number(sequence, floor, &reason))
            }
            other => other,
        }
    }

    /// Numbering while Redis is unreachable: one above the highest number the database ever
    /// handed out (stored or deleted), so writes keep succeeding. Concurrent creates in one
    /// parent then collide on the unique key and retry (slower, never a duplicate); when
    /// Redis is back its counter may lag these numbers, and the first collision re-seeds it
    /// above them.
    async fn number_from_database(&self, sequence: Sequence, reason: &str) -> Result<i64> {
        let floor = self.store.max_number(sequence).await?;
        Ok(self.fallback_number(sequence, floor, reason))
    }

    fn fallback_number(&self, sequence: Sequence, floor: i64, reason: &str) -> i64 {
        crate::metrics::NUMBER_FALLBACKS.inc();
        tracing::debug!(?sequence, floor, %reason, "numbering from the database: Redis unavailable");
        floor + 1
    }
}

fn stage(name: &str, started: std::time::Instant) {
    crate::metrics::CREATE_STAGE_SECONDS
        .with_label_values(&[name])
        .observe(started.elapsed().as_secs_f64());
}

async fn within(check: impl Future<Output = Result<()>>) -> Result<()> {
    match tokio::time::timeout(std::time::Duration::from_millis(1500), check).await {
        Ok(result) => result,
        Err(_) => Err(Error::Config("no answer within 1.5 s".into())),
    }
}
