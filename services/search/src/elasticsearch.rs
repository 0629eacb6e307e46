//! The Elasticsearch adapter (also OpenSearch 2, where the APIs agree): one index, named by
//! `CHAT_SEARCH_INDEX`, holding every chat's messages under the id `{chat_id}:{number}` with
//! the message version as an external version.
//!
//! Freshness: documents become searchable at the index's next refresh (1 s by default); the
//! adapter does not force refreshes, which would cost far more than they buy under load.

mod bulk;
mod mapping;
mod query;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chat_core::config::{SearchAuth, Settings};
use chat_core::search::{
    MAX_SEARCH_LIMIT, SearchDocument, SearchIndex, SearchPage, SearchRequest, UpsertReport,
    query_words,
};
use chat_core::tls::certificate_problem;
use chat_core::{Error, Result};
use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::StatusCode;
use elasticsearch::http::headers::{CONTENT_TYPE, HeaderValue};
use elasticsearch::http::response::Response;
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::indices::{IndicesCreateParts, IndicesExistsParts, IndicesStatsParts};
use elasticsearch::params::Conflicts;
use elasticsearch::{BulkParts, DeleteByQueryParts, Elasticsearch, SearchParts};
use serde_json::json;

pub use mapping::index_definition;

/// Longest wait for one request; past it the call answers `SearchUnavailable`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a request (or the failed items of a bulk request) is sent again after a 429 or a
/// 5xx, waiting `base_delay`, then twice that, and so on.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempts: u32,
    pub base_delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 4,
            base_delay: Duration::from_millis(200),
        }
    }
}

impl Retry {
    fn delay(&self, attempt: u32) -> Duration {
        self.base_delay.saturating_mul(1 << attempt.min(10))
    }
}

/// How the adapter reaches the cluster besides its URL: which CAs it trusts and how it
/// authenticates.
#[derive(Debug, Clone)]
pub struct Connection {
    /// PEM CA bundle trusted for `https://`, on top of the public roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Explicit credentials; [`SearchAuth::None`] falls back to the URL's `user:password`.
    pub auth: SearchAuth,
}

impl Default for Connection {
    fn default() -> Self {
        Connection {
            ca_pem: None,
            auth: SearchAuth::None,
        }
    }
}

impl Connection {
    /// `CHAT_ELASTICSEARCH_CA_FILE`, `CHAT_ELASTICSEARCH_API_KEY`,
    /// `CHAT_ELASTICSEARCH_USERNAME` / `_PASSWORD`.
    pub fn from_settings(settings: &Settings) -> Result<Self> {
        let ca_pem = match &settings.elasticsearch_ca_file {
            Some(file) => Some(chat_core::tls::read_ca_bundle(
                "CHAT_ELASTICSEARCH_CA_FILE",
                file,
            )?),
            None => None,
        };
        Ok(Connection {
            ca_pem,
            auth: settings.search_auth(),
        })
    }
}

pub struct ElasticsearchIndex {
    client: Elasticsearch,
    index: String,
    retry: Retry,
    /// The index is known to exist; until then every call first makes sure it does, so a
    /// bulk request can never auto-create it with a dynamic mapping.
    ready: AtomicBool,
    /// `host:port`, for messages.
    server: String,
    custom_ca: bool,
}

impl ElasticsearchIndex {
    pub fn connect(url: &str, index: &str) -> Result<Self> {
        Self::with_retry(url, index, Retry::default())
    }

    pub fn with_retry(url: &str, index: &str, retry: Retry) -> Result<Self> {
        Self::connect_with(url, index, retry, &Connection::default())
    }

    pub fn connect_with(
        url: &str,
        index: &str,
        retry: Retry,
        connection: &Connection,
    ) -> Result<Self> {
        let mut url = url::Url::parse(url)
            .map_err(|err| Error::Config(format!("ELASTICSEARCH_URL: {err}")))?;
        // Credentials travel in the Authorization header only, never in the request URL.
        let from_url = (!url.username().is_empty()).then(|| {
            Credentials::Basic(
                percent_decoded(url.username()),
                url.password().map(percent_decoded).unwrap_or_default(),
            )
        });
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let credentials = match &connection.auth {
            SearchAuth::ApiKey(key) => Some(match key.expose().split_once(':') {
                // Encoded keys are base64, which has no ':'.
                Some((id, secret)) => Credentials::ApiKey(id.to_owned(), secret.to_owned()),
                None => Credentials::EncodedApiKey(key.expose().to_owned()),
            }),
            SearchAuth::Basic { username, password } => Some(Credentials::Basic(
                username.clone(),
                password.expose().to_owned(),
            )),
            SearchAuth::None => from_url,
        };
        let server = format!(
            "{}:{}",
            url.host_str().unwrap_or("?"),
            url.port_or_known_default().unwrap_or(9200)
        );
        let mut builder =
            TransportBuilder::new(SingleNodeConnectionPool::new(url)).timeout(REQUEST_TIMEOUT);
        if let Some(credentials) = credentials {
            builder = builder.auth(credentials);
        }
        if let Some(pem) = &connection.ca_pem {
            // The client's PEM splitter matches whole lines: a CRLF file would look empty.
            let pem = String::from_utf8_lossy(pem).replace('\r', "");
            let certificate = Certificate::from_pem(pem.as_bytes())
                .map_err(|err| Error::Config(format!("CHAT_ELASTICSEARCH_CA_FILE: {err}")))?;
            builder = builder.cert_validation(CertificateValidation::Full(certificate));
        }
        let transport = builder
            .build()
            .map_err(|err| Error::Config(format!("ELASTICSEARCH_URL: {err}")))?;
        if index.is_empty() {
            return Err(Error::Config("CHAT_SEARCH_INDEX: must not be empty".into()));
        }
        Ok(ElasticsearchIndex {
            client: Elasticsearch::new(transport),
            index: index.to_owned(),
            retry,
            ready: AtomicBool::new(false),
            server,
            custom_ca: connection.ca_pem.is_some(),
        })
    }

    /// Start-up check of an `https://` cluster's certificate: one request, and if it fails
    /// because the certificate does not verify, a one-line configuration error naming the
    /// server. Any other outcome passes (a cluster that is down is an outage like any later
    /// one; an answer of any status proves the TLS handshake).
    pub async fn verify_certificate(&self) -> Result<()> {
        match self.client.ping().send().await {
            Err(err) => match certificate_problem(&err) {
                Some(problem) => Err(Error::Config(format!(
                    "ELASTICSEARCH_URL: the certificate of {} did not verify: {problem} ({})",
                    self.server,
                    if self.custom_ca {
                        "trusted CAs: CHAT_ELASTICSEARCH_CA_FILE"
                    } else {
                        "trusted CAs: the public roots; set CHAT_ELASTICSEARCH_CA_FILE for a private CA"
                    }
                ))),
                None => Ok(()),
            },
            Ok(_) => Ok(()),
        }
    }

    pub fn index_name(&self) -> &str {
        &self.index
    }

    /// Creates the index with its mapping when it does not exist. An existing index is used
    /// as is (its mapping is not compared).
    pub async fn ensure_index(&self) -> Result<()> {
        if self.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let exists = self
            .client
            .indices()
            .exists(IndicesExistsParts::Index(&[&self.index]))
            .send()
            .await
            .map_err(unreachable)?;
        match exists.status_code() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => self.create_index().await?,
            status => return Err(failed("checking the index", status, exists).await),
        }
        self.ready.store(true, Ordering::Release);
        Ok(())
    }

    async fn create_index(&self) -> Result<()> {
        let response = self
            .client
            .indices()
            .create(IndicesCreateParts::Index(&self.index))
            .body(mapping::index_definition())
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status_code();
        if status.is_success() {
            tracing::info!(index = %self.index, "created the search index");
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        // Another process created it in between: just as good.
        if status == StatusCode::BAD_REQUEST && text.contains("resource_already_exists_exception") {
            return Ok(());
        }
        Err(classify(
            status,
            &format!("creating the index {}: {text}", self.index),
        ))
    }

    /// Sends one `_bulk` request, again after a pause while the whole request gets 429 or
    /// 5xx; returns each document's outcome, in order.
    async fn bulk_once(&self, documents: &[&SearchDocument]) -> Result<Vec<bulk::Outcome>> {
        let mut attempt = 0;
        loop {
            let response = self
                .client
                .bulk(BulkParts::Index(&self.index))
                .header(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-ndjson"),
                )
                .body(bulk::lines(documents))
                .send()
                .await
                .map_err(unreachable)?;
            let status = response.status_code();
            if status.is_success() {
                let parsed: bulk::Response = response.json().await.map_err(unreachable)?;
                if parsed.items.len() != documents.len() {
                    return Err(Error::SearchUnavailable(format!(
                        "elasticsearch answered {} bulk items for {} documents",
                        parsed.items.len(),
                        documents.len()
                    )));
                }
                return Ok(parsed
                    .items
                    .iter()
                    .map(|item| item.index.outcome())
                    .collect());
            }
            if status == StatusCode::NOT_FOUND {
                // Deleted under us: re-create it before the next attempt.
                self.ready.store(false, Ordering::Release);
            }
            if !is_retryable(status) || attempt >= self.retry.attempts {
                return Err(failed("bulk indexing", status, response).await);
            }
            tracing::warn!(%status, attempt, "elasticsearch refused a bulk request; backing off");
            tokio::time::sleep(self.retry.delay(attempt)).await;
            attempt += 1;
        }
    }
}

#[async_trait]
impl SearchIndex for ElasticsearchIndex {
    async fn upsert(&self, documents: Vec<SearchDocument>) -> Result<UpsertReport> {
        let mut report = UpsertReport::default();
        let mut pending: Vec<&SearchDocument> = documents.iter().collect();
        let mut attempt = 0;
        while !pending.is_empty() {
            self.ensure_index().await?;
            let outcomes = self.bulk_once(&pending).await?;
            let mut retry = Vec::new();
            let mut last_reason = String::new();
            for (doc, outcome) in pending.into_iter().zip(outcomes) {
                match outcome {
                    bulk::Outcome::Written => {}
                    bulk::Outcome::Rejected(reason) => report.rejected.push((doc.key(), reason)),
                    bulk::Outcome::Retry(reason) => {
                        last_reason = reason;
                        retry.push(doc);
                    }
                }
            }
            if !retry.is_empty() {
                if attempt >= self.retry.attempts {
                    return Err(Error::SearchUnavailable(format!(
                        "elasticsearch kept refusing {} documents: {last_reason}",
                        retry.len()
                    )));
                }
                tracing::warn!(documents = retry.len(), attempt, reason = %last_reason, "retrying refused bulk items");
                tokio::time::sleep(self.retry.delay(attempt)).await;
                attempt += 1;
            }
            pending = retry;
        }
        Ok(report)
    }

    async fn search(&self, request: &SearchRequest) -> Result<SearchPage> {
        let words: Vec<String> = request.words.iter().flat_map(|w| query_words(w)).collect();
        if words.is_empty() {
            return Ok(SearchPage {
                hits: Vec::new(),
                next: None,
            });
        }
        self.ensure_index().await?;
        let limit = request.limit.clamp(1, MAX_SEARCH_LIMIT) as usize;
        let response = self
            .client
            .search(SearchParts::Index(&[&self.index]))
            .body(query::body(request, &words, limit))
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status_code();
        if !status.is_success() {
            if status == StatusCode::NOT_FOUND {
                self.ready.store(false, Ordering::Release);
            }
            return Err(failed("searching", status, response).await);
        }
        let parsed: query::Response = response.json().await.map_err(unreachable)?;
        Ok(parsed.page(limit))
    }

    async fn delete_chats(&self, chat_ids: &[i64]) -> Result<()> {
        if chat_ids.is_empty() {
            return Ok(());
        }
        self.ensure_index().await?;
        let mut attempt = 0;
        loop {
            let response = self
                .client
                .delete_by_query(DeleteByQueryParts::Index(&[&self.index]))
                // A document written meanwhile (a late redelivery) makes a version conflict:
                // go on with the rest; the purge runs again while the chat row exists.
                .conflicts(Conflicts::Proceed)
                .body(json!({ "query": { "terms": { "chat_id": chat_ids } } }))
                .send()
                .await
                .map_err(unreachable)?;
            let status = response.status_code();
            if status.is_success() {
                let done: serde_json::Value = response.json().await.map_err(unreachable)?;
                let failures = done["failures"].as_array().map_or(0, Vec::len);
                if failures == 0 {
                    return Ok(());
                }
                if attempt >= self.retry.attempts {
                    return Err(Error::SearchUnavailable(format!(
                        "elasticsearch failed to delete documents of {} chats: {}",
                        chat_ids.len(),
                        done["failures"]
                    )));
                }
            } else {
                if status == StatusCode::NOT_FOUND {
                    self.ready.store(false, Ordering::Release);
                }
                if !is_retryable(status) || attempt >= self.retry.attempts {
                    return Err(failed("deleting chats' documents", status, response).await);
                }
            }
            tracing::warn!(%status, attempt, "elasticsearch did not delete every document; backing off");
            tokio::time::sleep(self.retry.delay(attempt)).await;
            attempt += 1;
        }
    }

    async fn ping(&self) -> Result<()> {
        let response = self.client.ping().send().await.map_err(unreachable)?;
        let status = response.status_code();
        if status.is_success() {
            Ok(())
        } else {
            Err(failed("ping", status, response).await)
        }
    }

    async fn size_bytes(&self) -> Result<u64> {
        let response = self
            .client
            .indices()
            .stats(IndicesStatsParts::IndexMetric(&[&self.index], &["store"]))
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status_code();
        if !status.is_success() {
            return Err(failed("index stats", status, response).await);
        }
        let stats: serde_json::Value = response.json().await.map_err(unreachable)?;
        Ok(stats["_all"]["primaries"]["store"]["size_in_bytes"]
            .as_u64()
            .unwrap_or(0))
    }

    fn backend(&self) -> &'static str {
        "elasticsearch"
    }
}

fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// Every failure is `SearchUnavailable`: the port's callers can only retry later, and a
/// request the cluster refuses as malformed would be a bug here, not the caller's.
/// 413 and other client errors (but not 404, 408 and 429, which pass) say the request itself
/// is wrong: retrying it unchanged would never end. Everything else is an outage.
fn classify(status: StatusCode, what: &str) -> Error {
    let message = format!("elasticsearch answered {status} {what}");
    let permanent = status.is_client_error() && !matches!(status.as_u16(), 404 | 408 | 409 | 429);
    if permanent {
        Error::SearchRejected(message)
    } else {
        Error::SearchUnavailable(message)
    }
}

async fn failed(what: &str, status: StatusCode, response: Response) -> Error {
    let mut text = response.text().await.unwrap_or_default();
    text.truncate(500);
    classify(status, &format!("{what}: {text}"))
}

fn unreachable(err: elasticsearch::Error) -> Error {
    if let Some(problem) = certificate_problem(&err) {
        return Error::SearchUnavailable(format!(
            "elasticsearch: the server's TLS certificate did not verify: {problem} (check \
             ELASTICSEARCH_URL's host and CHAT_ELASTICSEARCH_CA_FILE)"
        ));
    }
    Error::SearchUnavailable(format!("elasticsearch: {err}"))
}

/// A URL's user or password as typed (`%40` back to `@`); invalid escapes are kept as they are.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|b| (*b as char).to_digit(16));
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_owned())
}
