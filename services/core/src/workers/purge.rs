//! The purge (counter role): removes what deletes hid. A deleted application's chats are
//! hidden too; a hidden chat loses its messages in chunks, then its search documents, then
//! its row; an application's row goes once it has no chats left.
//!
//! All state is in the database (the `deleted_at` markers), so a purge that stopped anywhere
//! (crash, shutdown) resumes in the next round, and several purges at once only repeat
//! idempotent steps: a second one deletes nothing twice.

use std::sync::Arc;
use std::time::Duration;

use super::{Stop, backoff, pause, stopping};
use crate::error::{Error, Result};
use crate::search::SearchIndex;
use crate::store::{DeletionStore, PURGE_CHUNK};

/// Time between rounds when there is nothing to purge.
const IDLE: Duration = Duration::from_secs(1);
/// Chats (and applications) taken per round.
const BATCH: u32 = 100;

pub struct Purge {
    pub store: Arc<dyn DeletionStore>,
    pub search: Arc<dyn SearchIndex>,
    /// How long a chat stays hidden before it is purged (`CHAT_PURGE_GRACE_S`).
    pub grace: Duration,
    /// Messages deleted per statement.
    pub chunk: u32,
}

/// What one round removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub messages: u64,
    pub chats: u64,
    pub applications: u64,
}

impl Purge {
    pub fn new(
        store: Arc<dyn DeletionStore>,
        search: Arc<dyn SearchIndex>,
        grace: Duration,
    ) -> Self {
        Purge {
            store,
            search,
            grace,
            chunk: PURGE_CHUNK,
        }
    }

    pub async fn run(self, mut stop: Stop) {
        let mut failures = 0u32;
        while !stopping(&stop) {
            match self.round(&stop).await {
                Ok(purged) => {
                    failures = 0;
                    // A full batch means more is waiting: go on at once.
                    if purged.chats < u64::from(BATCH) && pause(&mut stop, IDLE).await {
                        return;
                    }
                }
                Err(err) => {
                    failures += 1;
                    tracing::warn!(error = %err, failures, "purge round failed; it resumes where it stopped");
                    if pause(&mut stop, backoff(failures)).await {
                        return;
                    }
                }
            }
        }
    }

    /// One round over up to a batch of hidden applications and chats. Stops between message
    /// chunks when shutdown begins (what is left waits for the next round).
    pub async fn round(&self, stop: &Stop) -> Result<Purged> {
        let mut purged = Purged::default();
        let applications = self.store.hide_chats_of_hidden_applications(BATCH).await?;
        // A grace beyond the calendar (never from the settings, which cap it) purges nothing.
        let hidden_before = chrono::Duration::from_std(self.grace)
            .ok()
            .and_then(|grace| crate::domain::now().checked_sub_signed(grace));
        let chats = match hidden_before {
            Some(before) => self.store.hidden_chats(before, BATCH).await?,
            None => Vec::new(),
        };
        crate::metrics::PURGE_HIDDEN_CHATS.set(chats.len() as i64);
        for &chat in &chats {
            loop {
                if stopping(stop) {
                    return Ok(purged);
                }
                let n = self.store.purge_messages(chat, self.chunk).await?;
                purged.messages += n;
                crate::metrics::PURGED_ROWS
                    .with_label_values(&["message"])
                    .inc_by(n);
                if n < u64::from(self.chunk) {
                    break;
                }
            }
        }
        // After the messages: a document a late redelivery indexed meanwhile goes too.
        self.delete_documents(&chats).await?;
        for &chat in &chats {
            if self.store.purge_chat(chat).await? {
                purged.chats += 1;
                crate::metrics::PURGED_ROWS
                    .with_label_values(&["chat"])
                    .inc();
            }
        }
        for &application in &applications {
            if self.store.purge_application(application).await? {
                purged.applications += 1;
                crate::metrics::PURGED_ROWS
                    .with_label_values(&["application"])
                    .inc();
            }
        }
        if purged != Purged::default() {
            tracing::info!(?purged, "purged deleted chats and applications");
        }
        Ok(purged)
    }

    async fn delete_documents(&self, chats: &[i64]) -> Result<()> {
        match self.search.delete_chats(chats).await {
            // A counter process that only reads the embedded index cannot write it; the
            // documents stay, unreachable (search answers only for visible chats, and chat
            // ids are never reused), until the index is rebuilt.
            Err(Error::Config(reason)) => {
                tracing::debug!(%reason, "search documents of purged chats left in place");
                Ok(())
            }
            other => other,
        }
    }
}
