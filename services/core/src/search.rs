//! The search port: a per-chat full-text index of message bodies. Adapters live in the
//! `chat-search` crate (embedded tantivy, Elasticsearch) and pass one conformance suite.
//!
//! Semantics every adapter keeps:
//! - only documents of the requested chat, ever;
//! - each query word matches a whole word or a word prefix, case-insensitively, and every word
//!   must match (`hel wor` finds "hello world", not "hello there");
//! - ranked by relevance, ties broken by the newest (highest number) first;
//! - a document is identified by `{chat_id}:{number}`, so redelivery never duplicates a hit, and
//!   carries the message's version: an older version never replaces a newer one.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::Result;

/// Longest accepted query, in characters.
pub const MAX_QUERY_CHARS: usize = 256;
pub const DEFAULT_SEARCH_LIMIT: u32 = 20;
pub const MAX_SEARCH_LIMIT: u32 = 100;

#[derive(Debug, Clone, PartialEq)]
pub struct SearchDocument {
    pub chat_id: i64,
    pub number: i64,
    pub body: String,
    /// Grows by one on every edit of the message; 1 at creation.
    pub version: i64,
    pub created_at: DateTime<Utc>,
}

impl SearchDocument {
    /// The deterministic document id.
    pub fn key(&self) -> String {
        document_key(self.chat_id, self.number)
    }
}

pub fn document_key(chat_id: i64, number: i64) -> String {
    format!("{chat_id}:{number}")
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    pub chat_id: i64,
    /// Lowercased words, as [`query_words`] splits them; never empty.
    pub words: Vec<String>,
    pub limit: u32,
    /// Continue after this hit (from a previous page's `next`).
    pub after: Option<SearchCursor>,
}

/// Where a page ended, in the ranking order (score descending, then number descending).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchCursor {
    pub score: f32,
    pub number: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub number: i64,
    pub body: String,
    pub created_at: DateTime<Utc>,
    /// A fragment of the body with each matching word wrapped in `<em>…</em>`; the rest of
    /// the text HTML-escaped.
    pub highlight: String,
    pub score: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage {
    pub hits: Vec<SearchHit>,
    /// Set when more hits may follow.
    pub next: Option<SearchCursor>,
}

/// Documents an upsert could not write for a reason retrying the same batch will not fix
/// (the backend rejected them). Transient failures are an `Err` of the whole call instead.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpsertReport {
    pub rejected: Vec<(String, String)>,
}

#[async_trait]
pub trait SearchIndex: Send + Sync + 'static {
    /// Writes the documents durably (searchable once this returns, or within the adapter's
    /// refresh interval), skipping any whose stored version is newer or equal.
    /// `Err(Error::SearchUnavailable)` when the backend is down or overloaded: retry later.
    async fn upsert(&self, documents: Vec<SearchDocument>) -> Result<UpsertReport>;

    async fn search(&self, request: &SearchRequest) -> Result<SearchPage>;

    /// Removes every document of these chats (the purge of deleted chats). Idempotent.
    /// `Err(Error::Config)` from a process that only reads the embedded index.
    async fn delete_chats(&self, chat_ids: &[i64]) -> Result<()>;

    async fn ping(&self) -> Result<()>;

    /// Bytes the index occupies (primary shards for Elasticsearch), for metrics.
    async fn size_bytes(&self) -> Result<u64>;

    /// "tantivy", "elasticsearch".
    fn backend(&self) -> &'static str;
}

/// Splits a query into lowercased words on anything that is not a letter or a digit, so query
/// syntax (`"`, `*`, `:`, `AND`, `-`) is text, never an operator.
pub fn query_words(q: &str) -> Vec<String> {
    q.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_syntax_is_split_away() {
        assert_eq!(query_words("Hello, WORLD!"), vec!["hello", "world"]);
        assert_eq!(
            query_words("title:foo* AND \"bar\" -baz"),
            vec!["title", "foo", "and", "bar", "baz"]
        );
        assert!(query_words("  *** ").is_empty());
        assert_eq!(query_words("Ünïcødé 中文"), vec!["ünïcødé", "中文"]);
    }
}
