//! The whole configuration surface: one typed struct, flags with env fallbacks
//! (docs/contract.md lists them; a test keeps the two equal). Parsed by the `chat-system` binary, printed redacted at start-up.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::error::{Error, Result};

/// Largest accepted request body; a message body limit above it could never be reached.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

#[derive(Clone, Args)]
pub struct Settings {
    /// Database: `mysql://user:pass@host:3306/db` or `sqlite://path/to/file.db`
    /// [default: sqlite://<CHAT_DATA_DIR>/chat.db, i.e. sqlite://./data/chat.db]
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,

    /// PEM bundle of the CAs that sign the MySQL server's certificate; becomes DATABASE_URL's
    /// `ssl-ca` (replacing one given there) and, unless DATABASE_URL sets `ssl-mode`, implies
    /// `ssl-mode=VERIFY_IDENTITY`.
    #[arg(long, env = "CHAT_DATABASE_CA_FILE", global = true)]
    pub database_ca_file: Option<PathBuf>,

    /// Redis for numbering shared by replicas (`rediss://` for TLS); unset = in-process (one
    /// process only).
    #[arg(long, env = "REDIS_URL", hide_env_values = true, global = true)]
    pub redis_url: Option<String>,

    /// PEM bundle of the CAs trusted for a `rediss://` REDIS_URL, instead of the public roots.
    #[arg(long, env = "CHAT_REDIS_CA_FILE", global = true)]
    pub redis_ca_file: Option<PathBuf>,

    /// Prefix of every Redis key this deployment writes, so several deployments (or tests)
    /// can share one Redis.
    #[arg(long, env = "CHAT_REDIS_PREFIX", default_value = "", global = true)]
    pub redis_prefix: String,

    /// Timeout of one Redis call: past it the request answers 503 instead of hanging.
    #[arg(long, env = "CHAT_REDIS_TIMEOUT_MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=60_000), global = true)]
    pub redis_timeout_ms: u64,

    /// Elasticsearch for search; unset = embedded index under CHAT_DATA_DIR.
    #[arg(long, env = "ELASTICSEARCH_URL", hide_env_values = true, global = true)]
    pub elasticsearch_url: Option<String>,

    /// PEM bundle of CAs trusted for an `https://` ELASTICSEARCH_URL, besides the public roots.
    #[arg(long, env = "CHAT_ELASTICSEARCH_CA_FILE", global = true)]
    pub elasticsearch_ca_file: Option<PathBuf>,

    /// Elasticsearch API key: the `encoded` value Elasticsearch returns, or `id:api_key`.
    #[arg(
        long,
        env = "CHAT_ELASTICSEARCH_API_KEY",
        hide_env_values = true,
        global = true
    )]
    pub elasticsearch_api_key: Option<Secret>,

    /// Elasticsearch basic-auth user (with CHAT_ELASTICSEARCH_PASSWORD); replaces a user in
    /// ELASTICSEARCH_URL.
    #[arg(long, env = "CHAT_ELASTICSEARCH_USERNAME", global = true)]
    pub elasticsearch_username: Option<String>,

    /// Elasticsearch basic-auth password.
    #[arg(
        long,
        env = "CHAT_ELASTICSEARCH_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub elasticsearch_password: Option<Secret>,

    /// Elasticsearch index (or alias) holding message documents.
    #[arg(
        long,
        env = "CHAT_SEARCH_INDEX",
        default_value = "chat_messages",
        global = true
    )]
    pub search_index: String,

    /// Embedded data (SQLite file, embedded search index).
    #[arg(long, env = "CHAT_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,

    /// Public API address (api and serve).
    #[arg(
        long,
        env = "CHAT_LISTEN",
        default_value = "0.0.0.0:3000",
        global = true
    )]
    pub listen: SocketAddr,

    /// Admin address of every role: /up, /readyz, /metrics.
    #[arg(
        long,
        env = "CHAT_ADMIN_LISTEN",
        default_value = "0.0.0.0:9000",
        global = true
    )]
    pub admin_listen: SocketAddr,

    /// Database connections per process.
    #[arg(long, env = "CHAT_DB_POOL", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub db_pool: u32,

    /// Largest message body, in UTF-8 bytes (at most 1 MiB, the request limit).
    #[arg(long, env = "CHAT_MAX_BODY_BYTES", default_value_t = 65536, value_parser = clap::value_parser!(u64).range(1..=MAX_REQUEST_BYTES as u64), global = true)]
    pub max_body_bytes: u64,

    /// Indexer: most documents per bulk request.
    #[arg(long, env = "CHAT_INDEXER_BATCH", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000), global = true)]
    pub indexer_batch: u32,

    /// Indexer: longest wait before a partial batch is written, in milliseconds.
    #[arg(long, env = "CHAT_INDEXER_FLUSH_MS", default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=60_000), global = true)]
    pub indexer_flush_ms: u64,

    /// Counter: flush interval, in milliseconds.
    #[arg(long, env = "CHAT_COUNTER_FLUSH_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=3_600_000), global = true)]
    pub counter_flush_ms: u64,

    /// Purge (counter role): how long a deleted chat or application stays hidden before its
    /// rows and documents are removed, in seconds. Long enough for creates that looked the chat
    /// up just before the delete to commit and be indexed, so the purge removes them too.
    #[arg(long, env = "CHAT_PURGE_GRACE_S", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=86_400), global = true)]
    pub purge_grace_s: u64,

    /// Queue: idle time after which a dead consumer's entries are taken over, in milliseconds.
    #[arg(long, env = "CHAT_QUEUE_CLAIM_IDLE_MS", default_value_t = 30000, value_parser = clap::value_parser!(u64).range(100..=86_400_000), global = true)]
    pub queue_claim_idle_ms: u64,

    /// Queue: attempts before an entry goes to the dead-letter stream.
    #[arg(long, env = "CHAT_QUEUE_MAX_ATTEMPTS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub queue_max_attempts: u32,

    /// How long published outbox rows are kept, to be re-published if the queue loses its
    /// contents (Redis restarted empty), in seconds.
    #[arg(long, env = "CHAT_OUTBOX_RETENTION_S", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..=604_800), global = true)]
    pub outbox_retention_s: u64,

    /// How long a token replaced by `rotate_token` keeps working, in seconds (0: it stops at
    /// once). Lets clients roll the new token out without a window of failures.
    #[arg(long, env = "CHAT_TOKEN_GRACE_S", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=2_592_000), global = true)]
    pub token_grace_s: u64,

    /// Drain time on SIGTERM/SIGINT, in seconds.
    #[arg(long, env = "CHAT_SHUTDOWN_GRACE_S", default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=3600), global = true)]
    pub shutdown_grace_s: u64,

    /// Per-token write requests (POST/PUT/PATCH/DELETE) per second, shared by every replica;
    /// 0 = unlimited.
    #[arg(long, env = "CHAT_RATE_WRITE_PER_S", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(0..=1_000_000), global = true)]
    pub rate_write_per_s: u32,

    /// Per-token write burst: requests allowed at once on a full bucket.
    #[arg(long, env = "CHAT_RATE_WRITE_BURST", default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=10_000_000), global = true)]
    pub rate_write_burst: u32,

    /// Per-token read requests (GET) per second; 0 = unlimited.
    #[arg(long, env = "CHAT_RATE_READ_PER_S", default_value_t = 5000, value_parser = clap::value_parser!(u32).range(0..=1_000_000), global = true)]
    pub rate_read_per_s: u32,

    /// Per-token read burst.
    #[arg(long, env = "CHAT_RATE_READ_BURST", default_value_t = 10000, value_parser = clap::value_parser!(u32).range(1..=10_000_000), global = true)]
    pub rate_read_burst: u32,

    /// `POST /chat_applications` per client address per minute; 0 = unlimited.
    #[arg(long, env = "CHAT_RATE_CREATE_APP_PER_MIN", default_value_t = 30, value_parser = clap::value_parser!(u32).range(0..=60_000_000), global = true)]
    pub rate_create_app_per_min: u32,

    /// `POST /chat_applications` burst per client address.
    #[arg(long, env = "CHAT_RATE_CREATE_APP_BURST", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=10_000_000), global = true)]
    pub rate_create_app_burst: u32,

    /// Header naming the client address set by a trusted reverse proxy (e.g.
    /// `X-Forwarded-For`; its right-most entry is used); unset = the TCP peer address only.
    #[arg(long, env = "CHAT_TRUSTED_PROXY_HEADER", global = true)]
    pub trusted_proxy_header: Option<String>,

    /// How long an `Idempotency-Key` and its response are kept, in seconds.
    #[arg(long, env = "CHAT_IDEMPOTENCY_TTL_S", default_value_t = 86400, value_parser = clap::value_parser!(u64).range(1..=604_800), global = true)]
    pub idempotency_ttl_s: u64,

    /// Longest time a client may take to send a request's headers (from the connection's
    /// first byte, or from its first byte after a response), in milliseconds.
    #[arg(long, env = "CHAT_HEADER_READ_TIMEOUT_MS", default_value_t = 10000, value_parser = clap::value_parser!(u64).range(1..=600_000), global = true)]
    pub header_read_timeout_ms: u64,

    /// A keep-alive connection with no request in progress is closed after this, in seconds.
    #[arg(long, env = "CHAT_IDLE_TIMEOUT_S", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400), global = true)]
    pub idle_timeout_s: u64,

    /// Most open client connections on the public port; past it new ones are closed at once.
    #[arg(long, env = "CHAT_MAX_CONNECTIONS", default_value_t = 10000, value_parser = clap::value_parser!(u32).range(1..=1_000_000), global = true)]
    pub max_connections: u32,
    /// Live streams: entries kept per chat's log (older ones are trimmed; a client resuming
    /// from before them gets a `reset`).
    #[arg(long, env = "CHAT_FEED_MAX_LEN", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000), global = true)]
    pub feed_max_len: u64,

    /// Live streams: longest time an entry is kept in its chat's log, in seconds.
    #[arg(long, env = "CHAT_FEED_MAX_AGE_S", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=604_800), global = true)]
    pub feed_max_age_s: u64,

    /// Live streams: events one subscriber may have waiting; past it the client is
    /// disconnected as slow.
    #[arg(long, env = "CHAT_STREAM_BUFFER", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=100_000), global = true)]
    pub stream_buffer: u64,

    /// Live streams: open streams per application token and api process; past it 429.
    #[arg(long, env = "CHAT_STREAMS_PER_TOKEN", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1_000_000), global = true)]
    pub streams_per_token: u64,

    /// Live streams: heartbeat interval (SSE comment, WebSocket ping), in seconds.
    #[arg(long, env = "CHAT_STREAM_HEARTBEAT_S", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub stream_heartbeat_s: u64,

    /// Log format: `text` (human-readable) or `json`.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// What `redacted` shows: no URL password, key or password reaches a `{:?}` either.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.redacted()).finish()
    }
}

/// A password or key: its `Debug` never shows it, so no log line or panic message can.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(REDACTED)")
    }
}

/// How the Elasticsearch adapter authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchAuth {
    None,
    /// `Authorization: ApiKey …`: the encoded key, or `id:api_key` (encoded by the client).
    ApiKey(Secret),
    Basic {
        username: String,
        password: Secret,
    },
}

/// Where the data lives, decided from `DATABASE_URL`'s scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    MySql(String),
    Sqlite(String),
}

impl Settings {
    pub fn database(&self) -> Result<Database> {
        let Some(url) = self.database_url.as_deref().map(str::trim) else {
            let file = self.data_dir.join("chat.db");
            return Ok(Database::Sqlite(format!("sqlite://{}", file.display())));
        };
        if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            let url = url.replacen("mariadb://", "mysql://", 1);
            Ok(Database::MySql(self.with_database_tls(url)?))
        } else if url.starts_with("sqlite:") {
            Ok(Database::Sqlite(url.to_owned()))
        } else {
            Err(Error::Config(format!(
                "DATABASE_URL: expected mysql://… or sqlite://…, got {}",
                redact_url(url)
            )))
        }
    }

    /// A MySQL URL with `CHAT_DATABASE_CA_FILE` as its `ssl-ca`. A CA (from either place)
    /// without an `ssl-mode` means `VERIFY_IDENTITY`: sqlx's default (`PREFERRED`) would
    /// encrypt without checking the certificate, which is not what naming a CA asks for.
    fn with_database_tls(&self, url: String) -> Result<String> {
        let has = |parsed: &url::Url, keys: &[&str]| {
            parsed
                .query_pairs()
                .any(|(k, _)| keys.contains(&k.as_ref()))
        };
        let mut parsed = url::Url::parse(&url)
            .map_err(|err| Error::Config(format!("DATABASE_URL: {err}: {}", redact_url(&url))))?;
        let url_ca = has(&parsed, &SSL_CA_KEYS);
        if self.database_ca_file.is_none() && !url_ca {
            return Ok(url);
        }
        let ssl_mode = has(&parsed, &["ssl-mode", "sslmode"]);
        if let Some(file) = &self.database_ca_file {
            replace_ssl_ca(&mut parsed, file);
        }
        if !ssl_mode {
            parsed
                .query_pairs_mut()
                .append_pair("ssl-mode", "VERIFY_IDENTITY");
        }
        Ok(parsed.to_string())
    }

    /// `REDIS_URL` as the adapters connect to it: with `CHAT_REDIS_CA_FILE` as its `ssl-ca`
    /// parameter, which `redis_conn` takes out again and reads (so the adapters and their
    /// tests only ever pass one string).
    pub fn redis(&self) -> Option<String> {
        let url = self.redis_url.clone()?;
        let Some(file) = &self.redis_ca_file else {
            return Some(url);
        };
        match url::Url::parse(&url) {
            Ok(mut parsed) => {
                replace_ssl_ca(&mut parsed, file);
                Some(parsed.to_string())
            }
            // `validate` refuses it first; connecting reports it again.
            Err(_) => Some(url),
        }
    }

    /// How to authenticate to Elasticsearch by the settings: the API key, else the username
    /// and password. `None` leaves the `user:password` of `ELASTICSEARCH_URL`, if any.
    pub fn search_auth(&self) -> SearchAuth {
        if let Some(key) = &self.elasticsearch_api_key {
            return SearchAuth::ApiKey(key.clone());
        }
        match (&self.elasticsearch_username, &self.elasticsearch_password) {
            (Some(username), Some(password)) => SearchAuth::Basic {
                username: username.clone(),
                password: password.clone(),
            },
            _ => SearchAuth::None,
        }
    }

    /// Checks what clap cannot: URL shapes, CA files. Called before anything connects.
    pub fn validate(&self) -> Result<()> {
        match self.database()? {
            Database::MySql(url) => {
                // The file sqlx will read: the setting's, or the URL's own `ssl-ca`.
                let parsed = url::Url::parse(&url)
                    .map_err(|err| Error::Config(format!("DATABASE_URL: {err}")))?;
                let ca = parsed
                    .query_pairs()
                    .find(|(k, _)| SSL_CA_KEYS.contains(&k.as_ref()))
                    .map(|(_, v)| PathBuf::from(v.as_ref()));
                if let Some(ca) = ca {
                    let setting = if self.database_ca_file.is_some() {
                        "CHAT_DATABASE_CA_FILE"
                    } else {
                        "DATABASE_URL (ssl-ca)"
                    };
                    crate::tls::read_ca_bundle(setting, &ca)?;
                }
            }
            Database::Sqlite(_) if self.database_ca_file.is_some() => {
                return Err(Error::Config(
                    "CHAT_DATABASE_CA_FILE: set, but DATABASE_URL is not mysql://…".into(),
                ));
            }
            Database::Sqlite(_) => {}
        }
        if let Some(url) = &self.redis_url {
            let parsed =
                url::Url::parse(url).map_err(|err| Error::Config(format!("REDIS_URL: {err}")))?;
            if !matches!(parsed.scheme(), "redis" | "rediss" | "redis+unix" | "unix") {
                return Err(Error::Config(format!(
                    "REDIS_URL: expected redis://…, got scheme {:?}",
                    parsed.scheme()
                )));
            }
            if let Some(file) = &self.redis_ca_file {
                if parsed.scheme() != "rediss" {
                    return Err(Error::Config(
                        "CHAT_REDIS_CA_FILE: set, but REDIS_URL is not rediss://… (TLS)".into(),
                    ));
                }
                crate::tls::read_ca_bundle("CHAT_REDIS_CA_FILE", file)?;
            }
            // A URL's own `ssl-ca` is checked when connecting (`redis_conn`), naming REDIS_URL.
        } else if self.redis_ca_file.is_some() {
            return Err(Error::Config(
                "CHAT_REDIS_CA_FILE: set, but REDIS_URL is not".into(),
            ));
        }
        if let Some(name) = &self.trusted_proxy_header
            && invalid_header_name(name)
        {
            return Err(Error::Config(format!(
                "CHAT_TRUSTED_PROXY_HEADER: not a header name: {name:?}"
            )));
        }
        self.validate_search()
    }

    fn validate_search(&self) -> Result<()> {
        let Some(url) = &self.elasticsearch_url else {
            let set = [
                (
                    "CHAT_ELASTICSEARCH_CA_FILE",
                    self.elasticsearch_ca_file.is_some(),
                ),
                (
                    "CHAT_ELASTICSEARCH_API_KEY",
                    self.elasticsearch_api_key.is_some(),
                ),
                (
                    "CHAT_ELASTICSEARCH_USERNAME",
                    self.elasticsearch_username.is_some(),
                ),
                (
                    "CHAT_ELASTICSEARCH_PASSWORD",
                    self.elasticsearch_password.is_some(),
                ),
            ];
            if let Some((name, _)) = set.iter().find(|(_, set)| *set) {
                return Err(Error::Config(format!(
                    "{name}: set, but ELASTICSEARCH_URL is not"
                )));
            }
            return Ok(());
        };
        let parsed = url::Url::parse(url).map_err(|err| {
            Error::Config(format!("ELASTICSEARCH_URL: {err}: {}", redact_url(url)))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::Config(format!(
                "ELASTICSEARCH_URL: expected http(s)://…, got scheme {:?}",
                parsed.scheme()
            )));
        }
        if let Some(file) = &self.elasticsearch_ca_file {
            if parsed.scheme() != "https" {
                return Err(Error::Config(
                    "CHAT_ELASTICSEARCH_CA_FILE: set, but ELASTICSEARCH_URL is not https://…"
                        .into(),
                ));
            }
            crate::tls::read_ca_bundle("CHAT_ELASTICSEARCH_CA_FILE", file)?;
        }
        if self
            .elasticsearch_api_key
            .as_ref()
            .is_some_and(|key| key.expose().trim().is_empty())
        {
            return Err(Error::Config(
                "CHAT_ELASTICSEARCH_API_KEY: must not be empty".into(),
            ));
        }
        let basic = self.elasticsearch_username.is_some() || self.elasticsearch_password.is_some();
        if self.elasticsearch_api_key.is_some() && (basic || !parsed.username().is_empty()) {
            return Err(Error::Config(
                "CHAT_ELASTICSEARCH_API_KEY: set together with a username and password; use one"
                    .into(),
            ));
        }
        match (&self.elasticsearch_username, &self.elasticsearch_password) {
            (Some(_), None) => Err(Error::Config(
                "CHAT_ELASTICSEARCH_PASSWORD: needed with CHAT_ELASTICSEARCH_USERNAME".into(),
            )),
            (None, Some(_)) => Err(Error::Config(
                "CHAT_ELASTICSEARCH_USERNAME: needed with CHAT_ELASTICSEARCH_PASSWORD".into(),
            )),
            _ => Ok(()),
        }
    }

    /// The effective configuration, one `name=value` per setting, passwords redacted.
    pub fn redacted(&self) -> Vec<(&'static str, String)> {
        let opt = |v: &Option<String>| {
            v.as_deref()
                .map(redact_url)
                .unwrap_or_else(|| "(unset)".into())
        };
        let path = |v: &Option<PathBuf>| {
            v.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "(unset)".into())
        };
        let secret = |v: &Option<Secret>| match v {
            Some(_) => "(set, redacted)".to_owned(),
            None => "(unset)".to_owned(),
        };
        vec![
            (
                "DATABASE_URL",
                match self.database() {
                    Ok(Database::MySql(url) | Database::Sqlite(url)) => redact_url(&url),
                    Err(_) => opt(&self.database_url),
                },
            ),
            ("CHAT_DATABASE_CA_FILE", path(&self.database_ca_file)),
            ("REDIS_URL", opt(&self.redis_url)),
            ("CHAT_REDIS_CA_FILE", path(&self.redis_ca_file)),
            ("CHAT_REDIS_PREFIX", self.redis_prefix.clone()),
            ("CHAT_REDIS_TIMEOUT_MS", self.redis_timeout_ms.to_string()),
            ("ELASTICSEARCH_URL", opt(&self.elasticsearch_url)),
            (
                "CHAT_ELASTICSEARCH_CA_FILE",
                path(&self.elasticsearch_ca_file),
            ),
            (
                "CHAT_ELASTICSEARCH_API_KEY",
                secret(&self.elasticsearch_api_key),
            ),
            (
                "CHAT_ELASTICSEARCH_USERNAME",
                self.elasticsearch_username
                    .clone()
                    .unwrap_or_else(|| "(unset)".into()),
            ),
            (
                "CHAT_ELASTICSEARCH_PASSWORD",
                secret(&self.elasticsearch_password),
            ),
            ("CHAT_SEARCH_INDEX", self.search_index.clone()),
            ("CHAT_DATA_DIR", self.data_dir.display().to_string()),
            ("CHAT_LISTEN", self.listen.to_string()),
            ("CHAT_ADMIN_LISTEN", self.admin_listen.to_string()),
            ("CHAT_DB_POOL", self.db_pool.to_string()),
            ("CHAT_MAX_BODY_BYTES", self.max_body_bytes.to_string()),
            ("CHAT_INDEXER_BATCH", self.indexer_batch.to_string()),
            ("CHAT_INDEXER_FLUSH_MS", self.indexer_flush_ms.to_string()),
            ("CHAT_COUNTER_FLUSH_MS", self.counter_flush_ms.to_string()),
            ("CHAT_PURGE_GRACE_S", self.purge_grace_s.to_string()),
            (
                "CHAT_QUEUE_CLAIM_IDLE_MS",
                self.queue_claim_idle_ms.to_string(),
            ),
            (
                "CHAT_QUEUE_MAX_ATTEMPTS",
                self.queue_max_attempts.to_string(),
            ),
            (
                "CHAT_OUTBOX_RETENTION_S",
                self.outbox_retention_s.to_string(),
            ),
            ("CHAT_SHUTDOWN_GRACE_S", self.shutdown_grace_s.to_string()),
            ("CHAT_RATE_WRITE_PER_S", self.rate_write_per_s.to_string()),
            ("CHAT_RATE_WRITE_BURST", self.rate_write_burst.to_string()),
            ("CHAT_RATE_READ_PER_S", self.rate_read_per_s.to_string()),
            ("CHAT_RATE_READ_BURST", self.rate_read_burst.to_string()),
            (
                "CHAT_RATE_CREATE_APP_PER_MIN",
                self.rate_create_app_per_min.to_string(),
            ),
            (
                "CHAT_RATE_CREATE_APP_BURST",
                self.rate_create_app_burst.to_string(),
            ),
            ("CHAT_TRUSTED_PROXY_HEADER", opt(&self.trusted_proxy_header)),
            ("CHAT_IDEMPOTENCY_TTL_S", self.idempotency_ttl_s.to_string()),
            (
                "CHAT_HEADER_READ_TIMEOUT_MS",
                self.header_read_timeout_ms.to_string(),
            ),
            ("CHAT_IDLE_TIMEOUT_S", self.idle_timeout_s.to_string()),
            ("CHAT_MAX_CONNECTIONS", self.max_connections.to_string()),
            ("CHAT_FEED_MAX_LEN", self.feed_max_len.to_string()),
            ("CHAT_FEED_MAX_AGE_S", self.feed_max_age_s.to_string()),
            ("CHAT_STREAM_BUFFER", self.stream_buffer.to_string()),
            ("CHAT_STREAMS_PER_TOKEN", self.streams_per_token.to_string()),
            (
                "CHAT_STREAM_HEARTBEAT_S",
                self.stream_heartbeat_s.to_string(),
            ),
            (
                "LOG_FORMAT",
                format!("{:?}", self.log_format).to_lowercase(),
            ),
        ]
    }
}

/// The query keys sqlx reads a CA file from (the redis helper reads the first).
const SSL_CA_KEYS: [&str; 2] = ["ssl-ca", "sslca"];

/// Sets the URL's `ssl-ca` to `file`, dropping any it had, and keeps the other parameters.
fn replace_ssl_ca(url: &mut url::Url, file: &std::path::Path) {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !SSL_CA_KEYS.contains(&k.as_ref()))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair("ssl-ca", &file.display().to_string());
}

/// RFC 9110 token characters only, so the name parses as an HTTP header name.
fn invalid_header_name(name: &str) -> bool {
    name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Hides the password (and a token-like username) of a URL; leaves unparsable text untouched
/// only when it has no `@`, so a malformed URL cannot leak a secret either.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("REDACTED"));
            }
            parsed.to_string()
        }
        Err(_) if url.contains('@') => "(unparsable URL, redacted)".into(),
        Err(_) => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: Settings,
    }

    /// The environment names of every setting, as the binary parses them.
    fn setting_names() -> std::collections::BTreeSet<String> {
        use clap::CommandFactory;
        Cli::command()
            .get_arguments()
            .filter_map(|arg| arg.get_env())
            .map(|env| env.to_string_lossy().into_owned())
            .collect()
    }

    /// Every backticked name in the first column of the contract's settings table, e.g.
    /// `| `CHAT_INDEXER_BATCH`, `CHAT_INDEXER_FLUSH_MS` | …`.
    fn contract_names() -> std::collections::BTreeSet<String> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/contract.md");
        let text = std::fs::read_to_string(path).expect("docs/contract.md is readable");
        let section = text
            .split("\n## Settings\n")
            .nth(1)
            .expect("docs/contract.md has a Settings section");
        let section = section.split("\n## ").next().unwrap_or(section);
        section
            .lines()
            .filter(|line| line.starts_with("| `"))
            .flat_map(|line| {
                let first = line.split('|').nth(1).unwrap_or_default().to_owned();
                first
                    .split('`')
                    .skip(1)
                    .step_by(2)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn contract_lists_every_setting() {
        // Read from the environment directly (tracing and the OTLP exporter), not by clap.
        let outside_clap = ["RUST_LOG", "OTEL_EXPORTER_OTLP_ENDPOINT"];
        let mut expected = setting_names();
        expected.extend(outside_clap.map(str::to_owned));
        let documented = contract_names();
        let missing: Vec<_> = expected.difference(&documented).collect();
        let unknown: Vec<_> = documented.difference(&expected).collect();
        assert!(
            missing.is_empty() && unknown.is_empty(),
            "docs/contract.md settings table and the binary disagree: not documented {missing:?}, documented but not a setting {unknown:?}"
        );
    }

    #[test]
    fn defaults_follow_the_contract() {
        let s = Cli::try_parse_from(["x"]).unwrap().settings;
        assert_eq!(
            s.database().unwrap(),
            Database::Sqlite("sqlite://./data/chat.db".into())
        );
        assert_eq!(s.listen.to_string(), "0.0.0.0:3000");
        assert_eq!(s.admin_listen.to_string(), "0.0.0.0:9000");
        assert_eq!(s.db_pool, 16);
        assert_eq!(s.max_body_bytes, 65536);
        assert_eq!((s.indexer_batch, s.indexer_flush_ms), (500, 200));
        assert_eq!(s.counter_flush_ms, 1000);
        assert_eq!(s.purge_grace_s, 30);
        assert_eq!((s.queue_claim_idle_ms, s.queue_max_attempts), (30000, 10));
        assert_eq!(s.shutdown_grace_s, 20);
        assert_eq!((s.feed_max_len, s.feed_max_age_s), (1000, 3600));
        assert_eq!((s.stream_buffer, s.streams_per_token), (256, 100));
        assert!(s.redis_url.is_none() && s.elasticsearch_url.is_none());
    }

    #[test]
    fn abuse_limits_have_production_defaults() {
        let s = Cli::try_parse_from(["x"]).unwrap().settings;
        assert_eq!((s.rate_write_per_s, s.rate_write_burst), (1000, 2000));
        assert_eq!((s.rate_read_per_s, s.rate_read_burst), (5000, 10000));
        assert_eq!(
            (s.rate_create_app_per_min, s.rate_create_app_burst),
            (30, 30)
        );
        assert!(s.trusted_proxy_header.is_none());
        assert_eq!(s.idempotency_ttl_s, 86400);
        assert_eq!((s.header_read_timeout_ms, s.idle_timeout_s), (10000, 60));
        assert_eq!(s.max_connections, 10000);
        assert!(Cli::try_parse_from(["x", "--rate-write-burst", "0"]).is_err());
        assert!(Cli::try_parse_from(["x", "--max-connections", "0"]).is_err());
    }

    #[test]
    fn the_trusted_proxy_header_must_be_a_header_name() {
        let mut s = Cli::try_parse_from(["x"]).unwrap().settings;
        s.trusted_proxy_header = Some("X-Forwarded-For".into());
        assert!(s.validate().is_ok());
        s.trusted_proxy_header = Some("not a header".into());
        let err = s.validate().unwrap_err().to_string();
        assert!(err.starts_with("CHAT_TRUSTED_PROXY_HEADER"), "{err}");
    }

    #[test]
    fn passwords_never_reach_the_log() {
        let shown = redact_url("mysql://root:hunter2@db:3306/chat");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("db:3306/chat"));
    }

    #[test]
    fn a_database_ca_file_becomes_ssl_ca_and_implies_verify_identity() {
        let mut s = Cli::try_parse_from(["x"]).unwrap().settings;
        s.database_url = Some("mysql://u:p@db:3306/chat".into());
        assert_eq!(
            s.database().unwrap(),
            Database::MySql("mysql://u:p@db:3306/chat".into()),
            "no CA: the URL as given"
        );
        s.database_ca_file = Some("/etc/ca/rds.pem".into());
        let Database::MySql(url) = s.database().unwrap() else {
            panic!()
        };
        assert_eq!(
            url,
            "mysql://u:p@db:3306/chat?ssl-ca=%2Fetc%2Fca%2Frds.pem&ssl-mode=VERIFY_IDENTITY"
        );
        // The setting replaces the URL's ssl-ca; an explicit ssl-mode is kept.
        s.database_url = Some("mysql://u:p@db/chat?ssl-mode=VERIFY_CA&sslca=/old.pem".into());
        let Database::MySql(url) = s.database().unwrap() else {
            panic!()
        };
        assert_eq!(
            url,
            "mysql://u:p@db/chat?ssl-mode=VERIFY_CA&ssl-ca=%2Fetc%2Fca%2Frds.pem"
        );
        // A CA in the URL alone implies VERIFY_IDENTITY too.
        s.database_ca_file = None;
        s.database_url = Some("mysql://u:p@db/chat?ssl-ca=/x.pem".into());
        let Database::MySql(url) = s.database().unwrap() else {
            panic!()
        };
        assert!(
            url.ends_with("ssl-ca=/x.pem&ssl-mode=VERIFY_IDENTITY"),
            "{url}"
        );
    }

    #[test]
    fn ca_files_need_their_service_configured_for_tls() {
        let mut s = Cli::try_parse_from(["x"]).unwrap().settings;
        s.database_ca_file = Some("/etc/ca.pem".into());
        let err = s.validate().unwrap_err().to_string();
        assert!(err.starts_with("CHAT_DATABASE_CA_FILE: set, but"), "{err}");

        let mut s = Cli::try_parse_from(["x"]).unwrap().settings;
        s.redis_url = Some("redis://cache:6379".into());
        s.redis_ca_file = Some("/etc/ca.pem".into());
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("not rediss://"), "{err}");
        s.redis_url = Some("rediss://cache:6380/0".into());
        assert_eq!(
            s.redis().unwrap(),
            "rediss://cache:6380/0?ssl-ca=%2Fetc%2Fca.pem"
        );
        let err = s.validate().unwrap_err().to_string();
        assert!(
            err.starts_with("CHAT_REDIS_CA_FILE: cannot read /etc/ca.pem"),
            "{err}"
        );
    }

    #[test]
    fn search_credentials_are_checked_and_never_shown() {
        let mut s = Cli::try_parse_from(["x"]).unwrap().settings;
        s.elasticsearch_password = Some("hunter2".into());
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("ELASTICSEARCH_URL is not"), "{err}");
        s.elasticsearch_url = Some("https://es:9200".into());
        let err = s.validate().unwrap_err().to_string();
        assert!(
            err.starts_with("CHAT_ELASTICSEARCH_USERNAME: needed"),
            "{err}"
        );
        s.elasticsearch_username = Some("reader".into());
        s.validate().unwrap();
        assert_eq!(
            s.search_auth(),
            SearchAuth::Basic {
                username: "reader".into(),
                password: "hunter2".into()
            }
        );
        s.elasticsearch_api_key = Some("a2V5".into());
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("use one"), "{err}");
        s.elasticsearch_username = None;
        s.elasticsearch_password = None;
        s.validate().unwrap();
        s.elasticsearch_url = Some("https://elastic:urlpass@es:9200".into());
        assert!(
            s.validate().is_err(),
            "API key and URL credentials together"
        );

        s.elasticsearch_password = Some("hunter2".into());
        let shown = format!("{:?} {:?}", s.redacted(), s);
        for secret in ["hunter2", "a2V5", "urlpass"] {
            assert!(!shown.contains(secret), "{secret} shown");
        }
        assert!(shown.contains("(set, redacted)"));
    }

    #[test]
    fn unknown_database_schemes_are_rejected_by_name() {
        let mut s = Cli::try_parse_from(["x"]).unwrap().settings;
        s.database_url = Some("postgres://x".into());
        let err = s.validate().unwrap_err().to_string();
        assert!(err.starts_with("DATABASE_URL"), "{err}");
    }
}
