//! The embedded index shared by processes on one host: one writer (the indexer or serve),
//! readers (api) that pick up its commits through the directory. A second `open` on the same
//! directory behaves like another process: tantivy's lock and `meta.json` are all they share.

mod common;

use chat_core::Error;
use chat_core::search::SearchIndex;
use chat_search::tantivy::TantivyIndex;
use chat_search::{Access, open};
use common::{doc, numbers, request, settings, versioned};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_sees_each_commit_of_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let writer = open(&settings(dir.path()), Access::Writer).await.unwrap();
    let reader = open(&settings(dir.path()), Access::Reader).await.unwrap();
    reader.ping().await.unwrap();
    assert!(numbers(&*reader, 1, "first").await.is_empty());

    writer
        .upsert(vec![doc(1, 1, "first message")])
        .await
        .unwrap();
    common::eventually("the reader to see the first commit", || async {
        numbers(&*reader, 1, "first").await == vec![1]
    })
    .await;

    writer
        .upsert(vec![versioned(1, 1, 2, "edited message")])
        .await
        .unwrap();
    common::eventually("the reader to see the edit", || async {
        numbers(&*reader, 1, "edited").await == vec![1]
            && numbers(&*reader, 1, "first").await.is_empty()
    })
    .await;
}

#[tokio::test]
async fn a_second_writer_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let _writer = open(&settings(dir.path()), Access::Writer).await.unwrap();
    let err = open(&settings(dir.path()), Access::Writer)
        .await
        .err()
        .expect("second writer refused");
    let Error::Config(message) = err else {
        panic!("expected a setup error, got {err:?}")
    };
    assert!(message.contains("already being written"), "{message}");
    assert!(message.contains("ELASTICSEARCH_URL"), "{message}");
}

#[tokio::test]
async fn the_writer_lock_is_released_with_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let writer = open(&settings(dir.path()), Access::Writer).await.unwrap();
    writer
        .upsert(vec![doc(1, 1, "kept across restarts")])
        .await
        .unwrap();
    drop(writer);
    let again = open(&settings(dir.path()), Access::Writer).await.unwrap();
    assert_eq!(numbers(&*again, 1, "kept").await, vec![1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_started_before_the_index_exists_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let reader = open(&settings(dir.path()), Access::Reader).await.unwrap();
    let err = reader
        .search(&request(1, "early", 10, None))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SearchUnavailable(_)), "{err:?}");
    assert!(matches!(
        reader.ping().await,
        Err(Error::SearchUnavailable(_))
    ));

    let writer = open(&settings(dir.path()), Access::Writer).await.unwrap();
    writer.upsert(vec![doc(1, 1, "early bird")]).await.unwrap();
    common::eventually("the reader to open the new index", || async {
        matches!(reader.search(&request(1, "early", 10, None)).await, Ok(page) if page.hits.len() == 1)
    })
    .await;
    reader.ping().await.unwrap();
}

#[tokio::test]
async fn a_reader_refuses_to_write() {
    let dir = tempfile::tempdir().unwrap();
    let _writer = open(&settings(dir.path()), Access::Writer).await.unwrap();
    let reader = open(&settings(dir.path()), Access::Reader).await.unwrap();
    assert!(reader.upsert(vec![doc(1, 1, "nope")]).await.is_err());
    assert_eq!(reader.backend(), "tantivy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_load_writes_many_documents_with_the_same_rules() {
    let dir = tempfile::tempdir().unwrap();
    let index = TantivyIndex::open_writer(&dir.path().join("search"))
        .await
        .unwrap();
    index
        .upsert(vec![versioned(1, 7, 9, "already edited")])
        .await
        .unwrap();
    let docs = (1..=20_000).map(|n| doc(1, n, &format!("bulk message number{n}")));
    // 19,999 new; number 7 is older than what is stored and is skipped.
    assert_eq!(index.bulk_load(docs).await.unwrap(), 19_999);
    assert_eq!(numbers(&index, 1, "number12345").await, vec![12345]);
    assert_eq!(numbers(&index, 1, "edited").await, vec![7]);
    let page = index.search(&request(1, "bulk", 100, None)).await.unwrap();
    assert_eq!(page.hits.len(), 100);
    assert_eq!(page.hits[0].number, 20_000);
    assert!(page.next.is_some());
}

#[tokio::test]
async fn the_index_size_grows_with_its_documents() {
    let dir = tempfile::tempdir().unwrap();
    let writer = open(&settings(dir.path()), Access::Writer).await.unwrap();
    let empty = writer.size_bytes().await.unwrap();
    let docs: Vec<_> = (1..=200)
        .map(|n| doc(1, n, "some words to store in the index"))
        .collect();
    writer.upsert(docs).await.unwrap();
    let full = writer.size_bytes().await.unwrap();
    assert!(full > empty, "{empty} → {full}");
    let reader = open(&settings(dir.path()), Access::Reader).await.unwrap();
    assert_eq!(
        reader.size_bytes().await.unwrap(),
        full,
        "the same directory, the same size"
    );
}
