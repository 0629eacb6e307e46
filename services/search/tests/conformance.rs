//! The one suite every `SearchIndex` adapter passes: always against the embedded index (a
//! temp directory per test), and against Elasticsearch when `ELASTICSEARCH_URL` is set (a
//! random index per test, deleted afterwards).

mod common;

use std::sync::Arc;

use chat_core::search::{SearchDocument, SearchIndex};
use chat_search::elasticsearch::ElasticsearchIndex;
use common::{doc, numbers, page, request, versioned};

/// An adapter under test plus what it needs cleaned up.
struct Fixture {
    index: Arc<dyn SearchIndex>,
    /// Elasticsearch only makes writes searchable at its next refresh; tests force one.
    es: Option<Arc<ElasticsearchIndex>>,
    _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    async fn tantivy() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let settings = common::settings(dir.path());
        let index = chat_search::open(&settings, chat_search::Access::Writer)
            .await
            .unwrap();
        Fixture {
            index,
            es: None,
            _dir: Some(dir),
        }
    }

    async fn elasticsearch() -> Option<Self> {
        let url = std::env::var("ELASTICSEARCH_URL").ok()?;
        let name = format!("chat_search_test_{:016x}", rand_id());
        let es = Arc::new(ElasticsearchIndex::connect(&url, &name).unwrap());
        es.ensure_index().await.unwrap();
        Some(Fixture {
            index: es.clone(),
            es: Some(es),
            _dir: None,
        })
    }

    async fn upsert(&self, docs: Vec<SearchDocument>) {
        let report = self.index.upsert(docs).await.unwrap();
        assert!(
            report.rejected.is_empty(),
            "rejected: {:?}",
            report.rejected
        );
        if let Some(es) = &self.es {
            live::refresh(es).await;
        }
    }
}

impl Fixture {
    async fn refresh(&self) {
        if let Some(es) = &self.es {
            live::refresh(es).await;
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(es) = self.es.take() {
            live::delete_blocking(es);
        }
    }
}

fn rand_id() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// The live-Elasticsearch plumbing of the fixture, on the raw HTTP API.
mod live {
    use super::*;

    pub async fn refresh(es: &ElasticsearchIndex) {
        let url = std::env::var("ELASTICSEARCH_URL").unwrap();
        let client = elasticsearch::Elasticsearch::new(
            elasticsearch::http::transport::Transport::single_node(&url).unwrap(),
        );
        let response = client
            .indices()
            .refresh(elasticsearch::indices::IndicesRefreshParts::Index(&[
                es.index_name()
            ]))
            .send()
            .await
            .unwrap();
        assert!(response.status_code().is_success());
    }

    pub fn delete_blocking(es: Arc<ElasticsearchIndex>) {
        let name = es.index_name().to_owned();
        // Drop runs inside the test's runtime: delete on a thread with its own.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let url = std::env::var("ELASTICSEARCH_URL").unwrap();
                let client = elasticsearch::Elasticsearch::new(
                    elasticsearch::http::transport::Transport::single_node(&url).unwrap(),
                );
                let _ = client
                    .indices()
                    .delete(elasticsearch::indices::IndicesDeleteParts::Index(&[&name]))
                    .send()
                    .await;
            });
        })
        .join()
        .unwrap();
    }
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod tantivy_adapter {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Fixture::tantivy().await).await;
                }
            )*
        }
        mod elasticsearch_adapter {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    match super::Fixture::elasticsearch().await {
                        Some(fixture) => super::$case(fixture).await,
                        None => eprintln!("ELASTICSEARCH_URL unset: live Elasticsearch case skipped"),
                    }
                }
            )*
        }
    };
}

conformance!(
    prefix_or_whole_word_but_not_inside_a_word,
    whole_word_ranks_above_prefix,
    every_word_must_match,
    only_the_requested_chat,
    case_insensitive,
    more_relevant_first,
    ties_newest_first,
    paging_visits_every_hit_once_in_order,
    redelivery_does_not_duplicate,
    older_version_never_overwrites,
    query_syntax_is_plain_text,
    highlight_wraps_matches_and_escapes_html,
    unicode_words,
    hits_carry_the_document,
    no_match_is_an_empty_page,
    a_tombstone_matches_nothing_and_stays,
    deleting_chats_removes_only_their_documents,
);

/// What the indexer writes for a deleted message: an empty body at the deletion's version.
async fn a_tombstone_matches_nothing_and_stays(f: Fixture) {
    f.upsert(vec![doc(1, 1, "secret words"), doc(1, 2, "other words")])
        .await;
    f.upsert(vec![versioned(1, 1, 2, "")]).await;
    assert!(numbers(&*f.index, 1, "secret").await.is_empty());
    assert_eq!(numbers(&*f.index, 1, "words").await, vec![2]);
    for q in ["s", "a", "e", "1", "secret words"] {
        assert!(
            !numbers(&*f.index, 1, q).await.contains(&1),
            "{q:?} found the tombstone"
        );
    }
    // A late redelivery of the create or an edit (lower or equal version) cannot resurrect it.
    f.upsert(vec![doc(1, 1, "secret words")]).await;
    f.upsert(vec![versioned(1, 1, 2, "secret edit")]).await;
    assert!(numbers(&*f.index, 1, "secret").await.is_empty());
}

async fn deleting_chats_removes_only_their_documents(f: Fixture) {
    f.upsert(vec![
        doc(1, 1, "shared word"),
        doc(1, 2, "shared word again"),
        doc(2, 1, "shared word"),
        doc(3, 1, "shared word"),
    ])
    .await;
    f.index.delete_chats(&[1, 3]).await.unwrap();
    f.refresh().await;
    assert!(numbers(&*f.index, 1, "shared").await.is_empty());
    assert!(numbers(&*f.index, 3, "shared").await.is_empty());
    assert_eq!(numbers(&*f.index, 2, "shared").await, vec![1]);
    // Idempotent, and nothing to do is fine.
    f.index.delete_chats(&[1, 3]).await.unwrap();
    f.index.delete_chats(&[]).await.unwrap();
    f.refresh().await;
    assert_eq!(numbers(&*f.index, 2, "shared").await, vec![1]);
}

async fn prefix_or_whole_word_but_not_inside_a_word(f: Fixture) {
    f.upsert(vec![
        doc(1, 1, "hello there"),
        doc(1, 2, "help me"),
        doc(1, 3, "othello"),
        doc(1, 4, "he"),
    ])
    .await;
    let mut found = numbers(&*f.index, 1, "hel").await;
    found.sort();
    assert_eq!(found, vec![1, 2]);
    assert_eq!(numbers(&*f.index, 1, "othello").await, vec![3]);
    assert_eq!(numbers(&*f.index, 1, "hello").await, vec![1]);
    assert!(numbers(&*f.index, 1, "hellos").await.is_empty());
    assert!(numbers(&*f.index, 1, "ello").await.is_empty());
}

async fn whole_word_ranks_above_prefix(f: Fixture) {
    f.upsert(vec![doc(1, 1, "cat food"), doc(1, 2, "catalog food")])
        .await;
    assert_eq!(numbers(&*f.index, 1, "cat").await, vec![1, 2]);
}

async fn every_word_must_match(f: Fixture) {
    f.upsert(vec![
        doc(1, 1, "hello world"),
        doc(1, 2, "say hello again"),
        doc(1, 3, "world peace"),
    ])
    .await;
    assert_eq!(numbers(&*f.index, 1, "hello world").await, vec![1]);
    assert_eq!(numbers(&*f.index, 1, "hel wor").await, vec![1]);
    assert!(numbers(&*f.index, 1, "hello peace").await.is_empty());
}

async fn only_the_requested_chat(f: Fixture) {
    f.upsert(vec![
        doc(1, 1, "shared words"),
        doc(2, 1, "shared words"),
        doc(2, 2, "shared too"),
    ])
    .await;
    assert_eq!(numbers(&*f.index, 1, "shared").await, vec![1]);
    assert_eq!(numbers(&*f.index, 2, "shared").await, vec![2, 1]);
    assert!(numbers(&*f.index, 3, "shared").await.is_empty());
}

async fn case_insensitive(f: Fixture) {
    f.upsert(vec![doc(1, 1, "HeLLo WORLD")]).await;
    assert_eq!(numbers(&*f.index, 1, "hello").await, vec![1]);
    assert_eq!(numbers(&*f.index, 1, "HELLO world").await, vec![1]);
    assert_eq!(numbers(&*f.index, 1, "Wor").await, vec![1]);
}

async fn more_relevant_first(f: Fixture) {
    f.upsert(vec![
        doc(1, 1, "rust"),
        doc(
            1,
            2,
            "rust is one of many languages people write their programs in",
        ),
    ])
    .await;
    let hits = page(&*f.index, 1, "rust").await.hits;
    assert_eq!(
        hits.iter().map(|h| h.number).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(hits[0].score > hits[1].score);
}

async fn ties_newest_first(f: Fixture) {
    f.upsert((1..=5).map(|n| doc(1, n, "same text")).collect())
        .await;
    assert_eq!(numbers(&*f.index, 1, "same").await, vec![5, 4, 3, 2, 1]);
}

async fn paging_visits_every_hit_once_in_order(f: Fixture) {
    // Several distinct scores (body lengths) and ties within each.
    let docs: Vec<_> = (1..=23)
        .map(|n| {
            doc(
                1,
                n,
                &format!("page {}", "filler ".repeat((n % 4) as usize)),
            )
        })
        .collect();
    f.upsert(docs).await;
    let all = numbers(&*f.index, 1, "page").await;
    assert_eq!(all.len(), 23);
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = f.index.search(&request(1, "page", 4, after)).await.unwrap();
        assert!(page.hits.len() <= 4);
        paged.extend(page.hits.iter().map(|h| h.number));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
        assert!(paged.len() <= 23, "paging does not end");
    }
    assert_eq!(paged, all);
}

async fn redelivery_does_not_duplicate(f: Fixture) {
    f.upsert(vec![doc(1, 1, "once only"), doc(1, 1, "once only")])
        .await;
    f.upsert(vec![doc(1, 1, "once only")]).await;
    assert_eq!(numbers(&*f.index, 1, "once").await, vec![1]);
}

async fn older_version_never_overwrites(f: Fixture) {
    f.upsert(vec![versioned(1, 1, 2, "edited text")]).await;
    f.upsert(vec![versioned(1, 1, 1, "original text")]).await;
    assert!(numbers(&*f.index, 1, "original").await.is_empty());
    assert_eq!(numbers(&*f.index, 1, "edited").await, vec![1]);
    // An equal version is a redelivery, not an edit.
    f.upsert(vec![versioned(1, 1, 2, "imposter text")]).await;
    assert!(numbers(&*f.index, 1, "imposter").await.is_empty());
    f.upsert(vec![versioned(1, 1, 3, "third text")]).await;
    assert!(numbers(&*f.index, 1, "edited").await.is_empty());
    assert_eq!(numbers(&*f.index, 1, "third").await, vec![1]);
    // Within one batch the highest version wins whatever the order.
    f.upsert(vec![
        versioned(1, 2, 5, "newest words"),
        versioned(1, 2, 4, "stale words"),
    ])
    .await;
    assert_eq!(numbers(&*f.index, 1, "words").await, vec![2]);
    assert!(numbers(&*f.index, 1, "stale").await.is_empty());
    assert_eq!(numbers(&*f.index, 1, "text").await, vec![1]);
}

async fn query_syntax_is_plain_text(f: Fixture) {
    f.upsert(vec![
        doc(1, 1, "cats and dogs"),
        doc(
            1,
            2,
            r#"title:foo* AND "bar" (baz) [q] {x} ~y ^z \ / -not || &&"#,
        ),
        doc(1, 3, "only cats"),
    ])
    .await;
    // `AND`, `-`, `*`, `:` are words or separators, never operators.
    assert_eq!(numbers(&*f.index, 1, "cats AND -dogs").await, vec![1]);
    assert_eq!(numbers(&*f.index, 1, "title:foo*").await, vec![2]);
    assert_eq!(numbers(&*f.index, 1, r#""bar" (baz) -not"#).await, vec![2]);
    assert!(numbers(&*f.index, 1, "cats OR dogs").await.is_empty());
    assert!(page(&*f.index, 1, r#"* "" ~ \ ()"#).await.hits.is_empty());
}

async fn highlight_wraps_matches_and_escapes_html(f: Fixture) {
    f.upsert(vec![doc(1, 1, "<b>Hello</b> & \"help\" othello")])
        .await;
    let hits = page(&*f.index, 1, "hel").await.hits;
    let highlight = &hits[0].highlight;
    assert!(highlight.contains("<em>Hello</em>"), "{highlight}");
    assert!(highlight.contains("<em>help</em>"), "{highlight}");
    assert!(highlight.contains("&lt;b&gt;"), "{highlight}");
    assert!(highlight.contains("&amp;"), "{highlight}");
    assert!(!highlight.contains("<b>"), "{highlight}");
    assert!(!highlight.contains("<em>othello</em>"), "{highlight}");
    assert_eq!(hits[0].body, "<b>Hello</b> & \"help\" othello");
}

async fn unicode_words(f: Fixture) {
    f.upsert(vec![
        doc(1, 1, "Ünïcødé café naïve"),
        doc(1, 2, "cafe plain"),
    ])
    .await;
    assert_eq!(numbers(&*f.index, 1, "ünï").await, vec![1]);
    assert_eq!(numbers(&*f.index, 1, "CAFÉ").await, vec![1]);
    assert_eq!(numbers(&*f.index, 1, "naïve ünïcødé").await, vec![1]);
    let hits = page(&*f.index, 1, "ÜNÏCØDÉ").await.hits;
    assert!(
        hits[0].highlight.contains("<em>Ünïcødé</em>"),
        "{}",
        hits[0].highlight
    );
}

async fn hits_carry_the_document(f: Fixture) {
    let stored = doc(7, 42, "Carry this body");
    f.upsert(vec![stored.clone()]).await;
    let hits = page(&*f.index, 7, "carry").await.hits;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].number, 42);
    assert_eq!(hits[0].body, stored.body);
    assert_eq!(hits[0].created_at, stored.created_at);
    assert!(hits[0].score > 0.0);
}

async fn no_match_is_an_empty_page(f: Fixture) {
    let empty = page(&*f.index, 1, "anything").await;
    assert!(empty.hits.is_empty() && empty.next.is_none());
    f.upsert(vec![doc(1, 1, "something")]).await;
    let none = page(&*f.index, 1, "nothing").await;
    assert!(none.hits.is_empty() && none.next.is_none());
}
