//! Adapters of the `SearchIndex` port (`chat_core::search`): the embedded tantivy index and
//! Elasticsearch. [`open`] picks one from the settings. See `docs/search.md`.

pub mod corpus;
pub mod elasticsearch;
mod fragment;
pub mod tantivy;

use std::sync::Arc;

use chat_core::config::Settings;
use chat_core::search::SearchIndex;

/// What this process does with the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The one process that writes (the indexer role, or `serve`); it also answers searches.
    Writer,
    /// api processes: search only; `upsert` is refused.
    Reader,
}

/// Elasticsearch when `ELASTICSEARCH_URL` is set, else the embedded index under
/// `CHAT_DATA_DIR/search`.
pub async fn open(settings: &Settings, access: Access) -> chat_core::Result<Arc<dyn SearchIndex>> {
    if let Some(url) = &settings.elasticsearch_url {
        let index = elasticsearch::ElasticsearchIndex::connect_with(
            url,
            &settings.search_index,
            elasticsearch::Retry::default(),
            &elasticsearch::Connection::from_settings(settings)?,
        )?;
        if url.starts_with("https://") {
            index.verify_certificate().await?;
        }
        // A cluster that is down at start-up is an outage like any later one, not a reason to
        // refuse to start: every call makes sure the index exists before using it.
        if access == Access::Writer {
            match index.ensure_index().await {
                Err(chat_core::Error::SearchUnavailable(err)) => {
                    tracing::warn!(%err, "search index not checked at start-up; will retry");
                }
                other => other?,
            }
        }
        return Ok(Arc::new(index));
    }
    let dir = settings.data_dir.join("search");
    Ok(match access {
        Access::Writer => Arc::new(tantivy::TantivyIndex::open_writer(&dir).await?),
        Access::Reader => Arc::new(tantivy::TantivyIndex::open_reader(&dir)),
    })
}
