//! The embedded search index (tantivy) under `CHAT_DATA_DIR/search`.
//!
//! One process writes (the indexer, or `serve`), guarded by tantivy's writer lock in the
//! directory; any number of api processes on the same host open it read-only and pick up each
//! commit by watching `meta.json` (tantivy polls it every 500 ms). Every upsert ends with a
//! commit, so when it returns the documents are durable and the writer's own searches see them.

mod query;
pub(crate) mod schema;
mod write;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use ::tantivy::collector::TopDocs;
use ::tantivy::directory::MmapDirectory;
use ::tantivy::directory::error::LockError;
use ::tantivy::schema::Value;
use ::tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, TantivyError};
use async_trait::async_trait;
use chat_core::search::{
    MAX_SEARCH_LIMIT, SearchCursor, SearchDocument, SearchHit, SearchIndex, SearchPage,
    SearchRequest, UpsertReport, query_words,
};
use chat_core::{Error, Result};
use chrono::DateTime;

use schema::Fields;

/// Indexing memory shared by the writer's threads; tantivy needs at least 15 MB per thread.
const WRITER_MEMORY_PER_THREAD: usize = 32 * 1024 * 1024;
const MAX_WRITER_THREADS: usize = 4;

pub struct TantivyIndex {
    dir: PathBuf,
    /// Set at start for the writer; for a reader, once the writer has created the index.
    opened: OnceLock<Arc<Opened>>,
    writer: Option<Arc<Mutex<IndexWriter>>>,
}

struct Opened {
    reader: IndexReader,
    fields: Fields,
    index: Index,
}

impl TantivyIndex {
    /// Opens (creating if needed) the index for writing. Fails with `Error::Config` when
    /// another process already writes it.
    pub async fn open_writer(dir: &Path) -> Result<Self> {
        let dir = dir.to_path_buf();
        blocking(move || Self::open_writer_blocking(dir)).await
    }

    /// Opens the index read-only. Never fails because the index is missing: searches answer
    /// `SearchUnavailable` until the writer has created it.
    pub fn open_reader(dir: &Path) -> Self {
        let index = TantivyIndex {
            dir: dir.to_path_buf(),
            opened: OnceLock::new(),
            writer: None,
        };
        if let Err(err) = index.opened() {
            tracing::info!(dir = %index.dir.display(), %err, "embedded search index not open yet");
        }
        index
    }

    fn open_writer_blocking(dir: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&dir).map_err(|err| {
            Error::Config(format!(
                "CHAT_DATA_DIR: cannot create {}: {err}",
                dir.display()
            ))
        })?;
        let directory = MmapDirectory::open(&dir).map_err(|err| {
            Error::Config(format!(
                "CHAT_DATA_DIR: cannot open {}: {err}",
                dir.display()
            ))
        })?;
        let (schema, fields) = schema::schema();
        let index =
            Index::open_or_create(directory, schema).map_err(|err| incompatible(&dir, err))?;
        schema::register_tokenizers(&index);
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(MAX_WRITER_THREADS);
        let writer = index
            .writer_with_num_threads(threads, threads * WRITER_MEMORY_PER_THREAD)
            .map_err(|err| match err {
                TantivyError::LockFailure(LockError::LockBusy, _) => Error::Config(format!(
                    "the embedded search index at {} is already being written by another \
                     process (an indexer or serve); it has one writer, so several indexer \
                     replicas need Elasticsearch (set ELASTICSEARCH_URL)",
                    dir.display()
                )),
                other => Error::Config(format!(
                    "cannot open the embedded search index at {} for writing: {other}",
                    dir.display()
                )),
            })?;
        // The writer reloads right after each of its commits, so it needs no watcher.
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(unavailable)?;
        let opened = OnceLock::from(Arc::new(Opened {
            reader,
            fields,
            index,
        }));
        Ok(TantivyIndex {
            dir,
            opened,
            writer: Some(Arc::new(Mutex::new(writer))),
        })
    }

    /// The open index, opening it now (reader) if the writer has created it meanwhile.
    fn opened(&self) -> Result<Arc<Opened>> {
        if let Some(opened) = self.opened.get() {
            return Ok(opened.clone());
        }
        if !self.dir.join("meta.json").exists() {
            return Err(Error::SearchUnavailable(format!(
                "the embedded search index at {} does not exist yet (the indexer creates it)",
                self.dir.display()
            )));
        }
        // A reader that cannot open the index answers 503s rather than failing the process:
        // the writer may be creating it right now, or rebuilding it after an upgrade.
        let index = Index::open_in_dir(&self.dir)
            .map_err(|err| unavailable(incompatible(&self.dir, err)))?;
        schema::register_tokenizers(&index);
        let (expected, fields) = schema::schema();
        if index.schema() != expected {
            return Err(unavailable(incompatible(
                &self.dir,
                "schema differs from this release's",
            )));
        }
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::OnCommitWithDelay)
            .try_into()
            .map_err(unavailable)?;
        // Two searches may race to open; either result is the same index.
        Ok(self
            .opened
            .get_or_init(|| {
                Arc::new(Opened {
                    reader,
                    fields,
                    index,
                })
            })
            .clone())
    }

    fn writer(&self) -> Result<Arc<Mutex<IndexWriter>>> {
        self.writer.clone().ok_or_else(|| {
            Error::Config(
                "the embedded search index is read-only in this process; only the indexer \
                 (or serve) writes it"
                    .into(),
            )
        })
    }

    /// Loads many documents with one commit at the end, for preloading (benchmarks, restores):
    /// the same version rules as [`SearchIndex::upsert`], without a commit per batch. Returns
    /// how many documents were written.
    pub async fn bulk_load<I>(&self, documents: I) -> Result<u64>
    where
        I: IntoIterator<Item = SearchDocument> + Send + 'static,
    {
        let opened = self.opened()?;
        let writer = self.writer()?;
        blocking(move || {
            let mut writer = writer.lock().map_err(|_| poisoned())?;
            let searcher = opened.reader.searcher();
            let mut versions =
                write::Versions::new(opened.fields, &searcher).map_err(unavailable)?;
            let mut analyzer = schema::words_analyzer();
            let mut written = 0;
            for doc in documents {
                if versions
                    .write(&writer, &mut analyzer, &doc)
                    .map_err(unavailable)?
                {
                    written += 1;
                }
            }
            drop(versions);
            commit(&mut writer, &opened)?;
            Ok(written)
        })
        .await
    }
}

#[async_trait]
impl SearchIndex for TantivyIndex {
    async fn upsert(&self, documents: Vec<SearchDocument>) -> Result<UpsertReport> {
        let writer = self.writer()?;
        let opened = self.opened()?;
        blocking(move || {
            let mut writer = writer.lock().map_err(|_| poisoned())?;
            let searcher = opened.reader.searcher();
            let mut versions =
                write::Versions::new(opened.fields, &searcher).map_err(unavailable)?;
            let mut analyzer = schema::words_analyzer();
            let mut changed = false;
            let mut added = Ok(());
            for doc in write::dedupe(documents) {
                match versions.write(&writer, &mut analyzer, &doc) {
                    Ok(wrote) => changed |= wrote,
                    Err(err) => {
                        added = Err(unavailable(err));
                        break;
                    }
                }
            }
            drop(versions);
            // A half-added batch must not ride along with the next commit: the retry adds
            // the same documents again.
            let outcome = added.and_then(|()| {
                if changed {
                    commit(&mut writer, &opened)
                } else {
                    Ok(())
                }
            });
            if let Err(err) = outcome {
                let _ = writer.rollback();
                return Err(err);
            }
            Ok(UpsertReport::default())
        })
        .await
    }

    async fn delete_chats(&self, chat_ids: &[i64]) -> Result<()> {
        if chat_ids.is_empty() {
            return Ok(());
        }
        let writer = self.writer()?;
        let opened = self.opened()?;
        let chat_ids = chat_ids.to_vec();
        blocking(move || {
            let mut writer = writer.lock().map_err(|_| poisoned())?;
            for chat_id in chat_ids {
                writer.delete_term(::tantivy::Term::from_field_i64(
                    opened.fields.chat_id,
                    chat_id,
                ));
            }
            if let Err(err) = commit(&mut writer, &opened) {
                let _ = writer.rollback();
                return Err(err);
            }
            Ok(())
        })
        .await
    }

    async fn search(&self, request: &SearchRequest) -> Result<SearchPage> {
        let opened = self.opened()?;
        let request = request.clone();
        blocking(move || search(&opened, &request)).await
    }

    async fn ping(&self) -> Result<()> {
        self.opened().map(drop)
    }

    async fn size_bytes(&self) -> Result<u64> {
        let dir = self.dir.clone();
        blocking(move || {
            let entries = std::fs::read_dir(&dir).map_err(unavailable)?;
            Ok(entries
                .filter_map(|entry| entry.ok()?.metadata().ok())
                .filter(|meta| meta.is_file())
                .map(|meta| meta.len())
                .sum())
        })
        .await
    }

    fn backend(&self) -> &'static str {
        "tantivy"
    }
}

fn search(opened: &Opened, request: &SearchRequest) -> Result<SearchPage> {
    // Normalised again so a caller's stray syntax can never reach the query.
    let words: Vec<String> = request.words.iter().flat_map(|w| query_words(w)).collect();
    if words.is_empty() {
        return Ok(SearchPage {
            hits: Vec::new(),
            next: None,
        });
    }
    let limit = request.limit.clamp(1, MAX_SEARCH_LIMIT) as usize;
    let fields = &opened.fields;
    let query = query::build(fields, request.chat_id, &words).map_err(unavailable)?;
    let searcher = opened.reader.searcher();
    // One extra hit tells whether another page exists.
    let collector = TopDocs::with_limit(limit + 1).order_by(query::RankAfter {
        after: request.after,
    });
    let mut top = searcher.search(&query, &collector).map_err(unavailable)?;
    let more = top.len() > limit;
    top.truncate(limit);
    let mut analyzer = opened
        .index
        .tokenizer_for_field(fields.body)
        .map_err(unavailable)?;
    let mut hits = Vec::with_capacity(top.len());
    for ((score, number), address) in top {
        let doc: TantivyDocument = searcher.doc(address).map_err(unavailable)?;
        let body = doc
            .get_first(fields.body)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        let micros = doc
            .get_first(fields.created_at)
            .and_then(|v| v.as_i64())
            .unwrap_or_default();
        let highlight =
            crate::fragment::highlight(&body, &schema::words(&mut analyzer, &body), &words);
        hits.push(SearchHit {
            number,
            created_at: DateTime::from_timestamp_micros(micros).unwrap_or_default(),
            body,
            highlight,
            score,
        });
    }
    let next = match hits.last() {
        Some(last) if more => Some(SearchCursor {
            score: last.score,
            number: last.number,
        }),
        _ => None,
    };
    Ok(SearchPage { hits, next })
}

fn commit(writer: &mut IndexWriter, opened: &Opened) -> Result<()> {
    writer.commit().map_err(unavailable)?;
    opened.reader.reload().map_err(unavailable)
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| Error::SearchUnavailable(format!("embedded search task failed: {err}")))?
}

/// Disk and I/O trouble: the caller retries later.
fn unavailable(err: impl std::fmt::Display) -> Error {
    Error::SearchUnavailable(format!("embedded search index: {err}"))
}

fn incompatible(dir: &Path, err: impl std::fmt::Display) -> Error {
    Error::Config(format!(
        "the embedded search index at {} cannot be opened ({err}); if it was written by another \
         release, delete the directory and run `chat-system reindex`",
        dir.display()
    ))
}

fn poisoned() -> Error {
    Error::SearchUnavailable("embedded search writer poisoned by an earlier panic".into())
}
