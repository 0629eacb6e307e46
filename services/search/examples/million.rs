//! Preloads the embedded index with one chat of N messages (default 1,000,000) through
//! `TantivyIndex::bulk_load`, then times searches in that chat.
//!
//! `cargo run --release -p chat-search --example million -- [DIR] [N]`

use std::time::Instant;

use chat_core::search::{SearchDocument, SearchIndex, SearchRequest, query_words};
use chat_search::corpus::Words;
use chat_search::tantivy::TantivyIndex;
use chrono::Utc;

#[tokio::main]
async fn main() -> chat_core::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .unwrap_or_else(|| "./data/million-search".into());
    let n: i64 = args.next().map_or(1_000_000, |v| v.parse().expect("N"));
    let index = TantivyIndex::open_writer(std::path::Path::new(&dir)).await?;

    let started = Instant::now();
    let mut words = Words::new();
    let now = Utc::now();
    let docs: Vec<SearchDocument> = (1..=n)
        .map(|number| SearchDocument {
            chat_id: 1,
            number,
            body: words.body(),
            version: 1,
            created_at: now,
        })
        .collect();
    let written = index.bulk_load(docs).await?;
    println!(
        "bulk_load: {written} documents in {:.1?}",
        started.elapsed()
    );

    for q in [
        "hello",
        "hel",
        "h",
        "w123x4",
        "w12",
        "hello world",
        "please review the release",
        "nothing",
    ] {
        let mut times = Vec::new();
        let mut hits = 0;
        for round in 0..200 {
            let after = if round % 2 == 1 {
                index.search(&request(q, None)).await?.next
            } else {
                None
            };
            let t = Instant::now();
            hits = index.search(&request(q, after)).await?.hits.len();
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "{q:>28}: {hits:>3} hits  p50 {:>8.2?}  p99 {:>8.2?}",
            times[times.len() / 2],
            times[times.len() * 99 / 100]
        );
    }
    Ok(())
}

fn request(q: &str, after: Option<chat_core::search::SearchCursor>) -> SearchRequest {
    SearchRequest {
        chat_id: 1,
        words: query_words(q),
        limit: 20,
        after,
    }
}
