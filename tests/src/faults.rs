//! Faults a test can inject into what it owns: its own `redis-server`, a TCP proxy in front of
//! its own connections, `KILL` of its own database's connections, an off switch on its own
//! search index; and a burst of concurrent creators recording every answer. Never the shared
//! services other tests use.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chat_core::search::{SearchDocument, SearchIndex, SearchPage, SearchRequest, UpsertReport};
use chat_core::testkit;
use reqwest::StatusCode;
use sqlx::Connection;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use crate::{Reply, TestApp};

/// A private, non-persistent `redis-server` on a free port.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    pub async fn start() -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut redis = PrivateRedis { port, child: None };
        redis.restart().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it again on the same port, empty, as after a crash without persistence.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (make test installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGSTOP: connections stay open and nothing answers, as with a hung server or a
    /// network partition, so only the client's timeouts end a call.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("running");
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} {}", child.id());
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TCP proxy that can cut every connection through it (and refuse new ones) and later let
/// traffic flow again: a database outage for one test only.
pub struct Proxy {
    pub addr: SocketAddr,
    enabled: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let enabled = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accept = {
            let enabled = enabled.clone();
            let connections = connections.clone();
            tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if !enabled.load(Ordering::SeqCst) {
                        drop(inbound);
                        continue;
                    }
                    let task = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    connections.lock().unwrap().push(task.abort_handle());
                }
            })
            .abort_handle()
        };
        Proxy {
            addr,
            enabled,
            connections,
            accept,
        }
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.enabled.store(false, Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    pub fn restore(&self) {
        self.enabled.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// Polls `check` until it holds or `timeout` passes; answers whether it held.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The embedded search index (or any adapter) with an off switch: while down, every call
/// answers `SearchUnavailable`, exactly what the Elasticsearch adapter answers when its
/// cluster is unreachable, so the api and the indexer see a real outage of their port.
pub struct SwitchableSearch {
    inner: Arc<dyn SearchIndex>,
    down: AtomicBool,
    refused_upserts: AtomicU64,
    refused_searches: AtomicU64,
}

impl SwitchableSearch {
    pub fn new(inner: Arc<dyn SearchIndex>) -> Arc<SwitchableSearch> {
        Arc::new(SwitchableSearch {
            inner,
            down: AtomicBool::new(false),
            refused_upserts: AtomicU64::new(0),
            refused_searches: AtomicU64::new(0),
        })
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Upserts (indexer batches) refused while down.
    pub fn refused_upserts(&self) -> u64 {
        self.refused_upserts.load(Ordering::SeqCst)
    }

    pub fn refused_searches(&self) -> u64 {
        self.refused_searches.load(Ordering::SeqCst)
    }

    fn check(&self, counter: Option<&AtomicU64>) -> chat_core::Result<()> {
        if !self.down.load(Ordering::SeqCst) {
            return Ok(());
        }
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::SeqCst);
        }
        Err(chat_core::Error::SearchUnavailable(
            "injected: search backend down".into(),
        ))
    }
}

#[async_trait]
impl SearchIndex for SwitchableSearch {
    async fn upsert(&self, documents: Vec<SearchDocument>) -> chat_core::Result<UpsertReport> {
        self.check(Some(&self.refused_upserts))?;
        self.inner.upsert(documents).await
    }

    async fn search(&self, request: &SearchRequest) -> chat_core::Result<SearchPage> {
        self.check(Some(&self.refused_searches))?;
        self.inner.search(request).await
    }

    async fn ping(&self) -> chat_core::Result<()> {
        self.check(None)?;
        self.inner.ping().await
    }

    async fn size_bytes(&self) -> chat_core::Result<u64> {
        self.check(None)?;
        self.inner.size_bytes().await
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}

/// What one create of a burst got back.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Which chat it wrote to (0 for chat creates).
    pub chat: i64,
    /// When it was sent, from the burst's start.
    pub sent: Duration,
    pub took: Duration,
    pub status: StatusCode,
    /// `type` of a problem answer.
    pub problem: Option<String>,
    pub content_type: String,
    /// The number a 201 acknowledged.
    pub number: Option<i64>,
}

impl Outcome {
    pub fn acknowledged(&self) -> bool {
        self.status == StatusCode::CREATED
    }
}

/// Many concurrent creators writing messages round-robin into the given chats (and, when
/// `chat_creators` > 0, creating chats), each recording every answer, until stopped.
pub struct Burst {
    pub started: Instant,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    stop: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Burst {
    pub fn start(
        app: &TestApp,
        token: &str,
        chats: &[i64],
        message_creators: usize,
        chat_creators: usize,
    ) -> Burst {
        let started = Instant::now();
        let outcomes: Arc<Mutex<Vec<Outcome>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for worker in 0..message_creators + chat_creators {
            let client = app.client.clone();
            let (url, chat) = if worker < message_creators {
                let chat = chats[worker % chats.len()];
                (
                    app.url(&format!("/chat_applications/{token}/chats/{chat}/messages")),
                    chat,
                )
            } else {
                (app.url(&format!("/chat_applications/{token}/chats")), 0)
            };
            let outcomes = outcomes.clone();
            let stop = stop.clone();
            workers.push(tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    let sent = started.elapsed();
                    let request = client.post(&url);
                    let request = if chat == 0 {
                        request
                    } else {
                        request.json(&serde_json::json!({
                            "body": format!("burst worker{worker} item{i}")
                        }))
                    };
                    let reply = match request.send().await {
                        Ok(response) => Reply::from(response).await,
                        Err(err) => panic!("request failed at the HTTP level: {err}"),
                    };
                    let outcome = Outcome {
                        chat,
                        sent,
                        took: started.elapsed() - sent,
                        status: reply.status,
                        problem: reply.json["type"].as_str().map(str::to_owned),
                        content_type: reply.content_type.clone(),
                        number: reply.json["number"].as_i64(),
                    };
                    let failed = !outcome.acknowledged();
                    outcomes.lock().unwrap().push(outcome);
                    if failed {
                        // A polite client backs off a little after a 503.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }));
        }
        Burst {
            started,
            outcomes,
            stop,
            workers,
        }
    }

    /// Stops every creator after its request in flight and answers every outcome.
    pub async fn finish(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::SeqCst);
        for worker in self.workers {
            worker.await.expect("burst worker");
        }
        let mut outcomes = std::mem::take(&mut *self.outcomes.lock().unwrap());
        outcomes.sort_by_key(|o| o.sent);
        outcomes
    }
}

/// Asserts no number was acknowledged twice per chat (chat creates under chat 0) and answers
/// the acknowledged numbers per chat.
pub fn acknowledged_numbers(outcomes: &[Outcome]) -> BTreeMap<i64, BTreeSet<i64>> {
    let mut acked: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    for o in outcomes.iter().filter(|o| o.acknowledged()) {
        let number = o.number.expect("a 201 carries its number");
        assert!(
            acked.entry(o.chat).or_default().insert(number),
            "number {number} acknowledged twice in chat {}",
            o.chat
        );
    }
    acked
}

/// Every number the listing shows, following `next` to the end; asserts each appears once.
pub async fn listed_numbers(app: &TestApp, path: &str) -> BTreeSet<i64> {
    let mut numbers = BTreeSet::new();
    let mut after = 0i64;
    loop {
        let page = app.get(&format!("{path}?limit=200&after={after}")).await;
        assert_eq!(page.status, StatusCode::OK, "{page:?}");
        for item in page.json["data"].as_array().unwrap() {
            let number = item["number"].as_i64().unwrap();
            assert!(numbers.insert(number), "{path} lists {number} twice");
        }
        match page.json["next"].as_i64() {
            Some(next) => after = next,
            None => return numbers,
        }
    }
}

/// Every number a search for `q` finds in one chat, following `next` to the end; the first
/// non-200 answer instead.
pub async fn searched_numbers(
    app: &TestApp,
    token: &str,
    chat: i64,
    q: &str,
) -> Result<BTreeSet<i64>, Reply> {
    let mut numbers = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path =
            format!("/chat_applications/{token}/chats/{chat}/messages/search?q={q}&limit=100");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = app.get(&path).await;
        if page.status != StatusCode::OK {
            return Err(page);
        }
        for hit in page.json["data"].as_array().unwrap() {
            numbers.insert(hit["number"].as_i64().unwrap());
        }
        match page.json["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(numbers),
        }
    }
}

/// The database name at the end of a `mysql://…/name` URL.
pub fn database_name(url: &str) -> String {
    url.rsplit('/')
        .next()
        .and_then(|tail| tail.split('?').next())
        .expect("database URL names a database")
        .to_owned()
}

/// Kills every MySQL connection whose current database is `database` (this test's own;
/// never anyone else's) and answers how many it killed.
pub async fn kill_connections_of(database: &str) -> usize {
    let mut admin = sqlx::mysql::MySqlConnection::connect(&testkit::mysql_server_url())
        .await
        .expect("admin connection");
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ?")
            .bind(database)
            .fetch_all(&mut admin)
            .await
            .expect("processlist");
    let mut killed = 0;
    for id in ids {
        // A connection may have closed since the listing: that one is simply gone already.
        if sqlx::query(sqlx::AssertSqlSafe(format!("KILL CONNECTION {id}")))
            .execute(&mut admin)
            .await
            .is_ok()
        {
            killed += 1;
        }
    }
    let _ = admin.close().await;
    killed
}
