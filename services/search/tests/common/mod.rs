//! Helpers shared by the test files: settings for a temp directory, documents, requests.
#![allow(dead_code)] // each test file uses its own subset

use chat_core::config::Settings;
use chat_core::search::{
    SearchCursor, SearchDocument, SearchIndex, SearchPage, SearchRequest, query_words,
};
use chrono::{DateTime, TimeZone, Utc};
use clap::Parser;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
}

/// Embedded-index settings under `data_dir`, whatever the environment says.
pub fn settings(data_dir: &Path) -> Settings {
    let mut settings = Cli::parse_from(["chat-search-test"]).settings;
    settings.elasticsearch_url = None;
    settings.data_dir = data_dir.to_path_buf();
    settings
}

pub fn created_at(number: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(1_780_000_000_000_000 + number * 1_000_123)
        .unwrap()
}

pub fn doc(chat_id: i64, number: i64, body: &str) -> SearchDocument {
    SearchDocument {
        chat_id,
        number,
        body: body.into(),
        version: 1,
        created_at: created_at(number),
    }
}

pub fn versioned(chat_id: i64, number: i64, version: i64, body: &str) -> SearchDocument {
    SearchDocument {
        version,
        ..doc(chat_id, number, body)
    }
}

pub fn request(chat_id: i64, q: &str, limit: u32, after: Option<SearchCursor>) -> SearchRequest {
    SearchRequest {
        chat_id,
        words: query_words(q),
        limit,
        after,
    }
}

pub async fn numbers(index: &dyn SearchIndex, chat_id: i64, q: &str) -> Vec<i64> {
    page(index, chat_id, q)
        .await
        .hits
        .iter()
        .map(|h| h.number)
        .collect()
}

pub async fn page(index: &dyn SearchIndex, chat_id: i64, q: &str) -> SearchPage {
    index
        .search(&request(chat_id, q, 100, None))
        .await
        .expect("search")
}

/// Polls until `check` holds, for what another process makes visible later.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
