//! Black-box harness: starts chat-system API instances on real listeners (port 0) in the
//! embedded mode (a fresh SQLite file) or the MySQL + Redis mode (a fresh database and Redis
//! key prefix per test), and talks HTTP to them like a client would.

pub mod faults;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use chat_core::config::Settings;
use chat_core::search::SearchIndex;
use chat_core::testkit::{self, TestDatabase};
use chat_core::wiring;
use chat_system::{App, Roles};
use clap::Parser;
use reqwest::{Method, StatusCode};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Embedded,
    MySql,
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
}

/// The backing data one or more API instances share; removed when the last one is dropped.
struct Data {
    _mysql: Option<TestDatabase>,
    redis_prefix: Option<String>,
    dir: PathBuf,
}

impl Drop for Data {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(prefix) = self.redis_prefix.take() {
            testkit::forget_redis_prefix(prefix);
        }
    }
}

pub struct TestApp {
    pub mode: Mode,
    pub base: String,
    pub addr: SocketAddr,
    /// The admin port (`/up`, `/readyz`, `/metrics`).
    pub admin: SocketAddr,
    pub client: reqwest::Client,
    pub settings: Settings,
    /// This instance's live subscriptions.
    pub streams: Arc<chat_core::feed::Hub>,
    /// Dropping it stops this instance's workers.
    _stop: tokio::sync::watch::Sender<bool>,
    _data: Arc<Data>,
}

/// Settings as an operator would pass them, then pinned so the developer's own environment
/// (a `REDIS_URL` in the shell, say) cannot leak into a test.
pub fn base_settings(dir: &std::path::Path) -> Settings {
    let mut settings = Cli::try_parse_from(["chat-system"])
        .expect("defaults parse")
        .settings;
    settings.data_dir = dir.to_path_buf();
    settings.database_url = None;
    settings.redis_url = None;
    settings.redis_prefix = String::new();
    settings.elasticsearch_url = None;
    settings.db_pool = 16;
    settings.max_body_bytes = 65536;
    settings.redis_timeout_ms = 2000;
    // Fast enough for tests to see counts and redeliveries without long waits.
    settings.counter_flush_ms = 100;
    settings.indexer_flush_ms = 20;
    settings.queue_claim_idle_ms = 1000;
    settings.purge_grace_s = 0;
    // A dropped instance stops at once (no readiness notice) and drains within 2 s.
    settings.shutdown_grace_s = 2;
    // Every test creates applications from 127.0.0.1; the per-address limit has its own
    // suite (rate_limits.rs), which sets it explicitly.
    settings.rate_create_app_per_min = 0;
    settings
}

impl TestApp {
    pub async fn start(mode: Mode) -> TestApp {
        Self::start_with(mode, |_| {}).await
    }

    /// Starts an instance after `adjust` has changed its settings.
    pub async fn start_with(mode: Mode, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        Self::start_with_search(mode, adjust, |search| search).await
    }

    /// Like [`TestApp::start_with`], with the search index `wrap` makes of the one the settings
    /// open (a fault-injection test's switch, for instance).
    pub async fn start_with_search(
        mode: Mode,
        adjust: impl FnOnce(&mut Settings),
        wrap: impl FnOnce(Arc<dyn SearchIndex>) -> Arc<dyn SearchIndex>,
    ) -> TestApp {
        let dir = std::env::temp_dir().join(testkit::unique_name("chat_http"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut settings = base_settings(&dir);
        let mysql = match mode {
            Mode::Embedded => None,
            Mode::MySql => {
                let db = TestDatabase::create().await;
                settings.database_url = Some(db.url.clone());
                settings.redis_url = Some(testkit::redis_url());
                settings.redis_prefix = testkit::redis_prefix();
                wiring::migrate(&settings, false)
                    .await
                    .expect("migrate test database");
                Some(db)
            }
        };
        adjust(&mut settings);
        let redis_prefix =
            (!settings.redis_prefix.is_empty()).then(|| settings.redis_prefix.clone());
        let data = Arc::new(Data {
            _mysql: mysql,
            redis_prefix,
            dir,
        });
        Self::spawn(mode, settings, data, wrap).await
    }

    /// Another API instance on the same database and Redis prefix: a second replica.
    pub async fn replica(&self) -> TestApp {
        Self::spawn(
            self.mode,
            self.settings.clone(),
            self._data.clone(),
            |search| search,
        )
        .await
    }

    /// The first instance runs every role in-process (`serve`'s preset: relay, indexer,
    /// counter, writing the embedded index); replicas run `api`'s (the public port and a
    /// relay, reading the index). Both start through the binary's composition root, admin
    /// port included, exactly as production does.
    async fn spawn(
        mode: Mode,
        mut settings: Settings,
        data: Arc<Data>,
        wrap: impl FnOnce(Arc<dyn SearchIndex>) -> Arc<dyn SearchIndex>,
    ) -> TestApp {
        let first = Arc::strong_count(&data) == 1;
        // MySQL test databases are migrated by `start_with` as `chat-system migrate` would,
        // so every instance checks the schema as the distributed roles do (and, like `api`,
        // starts and answers 503 when the database is down at start-up).
        let roles = if first {
            Roles {
                schema: chat_core::wiring::Schema::Check,
                ..Roles::SERVE
            }
        } else {
            Roles::API
        };
        settings.listen = "127.0.0.1:0".parse().unwrap();
        settings.admin_listen = "127.0.0.1:0".parse().unwrap();
        let app = App::build_with_search(settings.clone(), roles, wrap)
            .await
            .expect("start chat-system");
        let addr = app.public_addr().expect("public port bound");
        let admin = app.admin_addr();
        let streams = app.streams();
        let (stop_tx, mut stop) = tokio::sync::watch::channel(false);
        // Dropping the TestApp (its sender) is this instance's shutdown signal.
        tokio::spawn(app.run_until_stopped(async move {
            let _ = stop.wait_for(|s| *s).await;
        }));
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .unwrap();
        TestApp {
            mode,
            base: format!("http://{addr}"),
            addr,
            admin,
            client,
            settings,
            streams,
            _stop: stop_tx,
            _data: data,
        }
    }

    /// Polls `path` until `check` accepts its reply, or panics after `timeout`.
    pub async fn wait_until(
        &self,
        path: &str,
        timeout: std::time::Duration,
        check: impl Fn(&Reply) -> bool,
    ) -> Reply {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let reply = self.get(path).await;
            if check(&reply) {
                return reply;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "gave up waiting on {path}: {reply:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request with an optional JSON body; answers status and parsed JSON (Null when
    /// the body is empty).
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self.client.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        Reply::from(request.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Creates an application and returns its token.
    pub async fn new_application(&self, name: &str) -> String {
        let reply = self
            .post("/chat_applications", serde_json::json!({ "name": name }))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
        reply.json["token"].as_str().unwrap().to_owned()
    }

    /// Creates a chat and returns its number.
    pub async fn new_chat(&self, token: &str) -> i64 {
        let reply = self
            .call(
                Method::POST,
                &format!("/chat_applications/{token}/chats"),
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
        reply.json["number"].as_i64().unwrap()
    }

    pub async fn new_message(&self, token: &str, chat: i64, body: &str) -> Reply {
        self.post(
            &format!("/chat_applications/{token}/chats/{chat}/messages"),
            serde_json::json!({ "body": body }),
        )
        .await
    }
}

/// The value of one process-wide metric sample, e.g. `chat_x_total{phase="idle"}` (0 when it
/// has not been recorded yet). Tests of one binary share the process: compare before/after.
pub fn metric(sample: &str) -> u64 {
    let families = chat_core::metrics::REGISTRY.gather();
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&families)
        .expect("metrics encode");
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub json: Value,
    pub text: String,
}

impl Reply {
    pub async fn from(response: reqwest::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let content_type = headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.expect("body read");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        };
        Reply {
            status,
            content_type,
            headers,
            json,
            text,
        }
    }

    /// Asserts an RFC 9457 problem document with this status.
    pub fn assert_problem(&self, status: u16) -> &Self {
        assert_eq!(self.status.as_u16(), status, "{self:?}");
        assert_eq!(self.content_type, "application/problem+json", "{self:?}");
        for key in ["type", "title", "detail"] {
            assert!(self.json[key].is_string(), "problem lacks {key}: {self:?}");
        }
        assert_eq!(
            self.json["status"].as_u64(),
            Some(status as u64),
            "{self:?}"
        );
        self
    }

    /// Asserts the 422 names the field.
    pub fn assert_invalid_field(&self, field: &str) -> &Self {
        self.assert_problem(422);
        assert_eq!(self.json["field"].as_str(), Some(field), "{self:?}");
        assert!(
            self.json["detail"].as_str().unwrap().contains(field),
            "{self:?}"
        );
        self
    }
}

/// Runs each listed test body once per mode: `name::embedded` and `name::mysql`.
#[macro_export]
macro_rules! both_modes {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn embedded() {
                    super::$name($crate::TestApp::start($crate::Mode::Embedded).await).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn mysql() {
                    super::$name($crate::TestApp::start($crate::Mode::MySql).await).await
                }
            }
        )*
    };
}

/// Like `both_modes!`, for tests that start their own instances: each body takes the `Mode`.
#[macro_export]
macro_rules! each_mode {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn embedded() {
                    super::$name($crate::Mode::Embedded).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn mysql() {
                    super::$name($crate::Mode::MySql).await
                }
            }
        )*
    };
}
