//! The pipeline as deployed: separate `api`, `indexer` and `counter` processes on MySQL + Redis
//! (the embedded index shared through CHAT_DATA_DIR), killed and restarted as a cluster would.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chat_core::testkit::{self, TestDatabase};
use chat_tests::faults::PrivateRedis;
use serde_json::{Value, json};

struct Cluster {
    db: TestDatabase,
    redis_url: String,
    prefix: String,
    dir: std::path::PathBuf,
    children: Vec<(String, Child)>,
    /// Admin port of each running role.
    admins: Vec<(String, u16)>,
    api: u16,
    http: reqwest::Client,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What a concurrent task needs to talk to the cluster's api.
struct Handle {
    api: u16,
    http: reqwest::Client,
}

impl Handle {
    async fn burst(&self, token: &str, word: &str, n: usize) -> Vec<i64> {
        burst(&self.http, self.api, token, word, n).await
    }
}

/// Creates `n` messages `word i` one after another; answers the acknowledged (201) numbers.
async fn burst(http: &reqwest::Client, api: u16, token: &str, word: &str, n: usize) -> Vec<i64> {
    let mut numbers = Vec::new();
    for i in 0..n {
        let Ok(r) = http
            .post(format!(
                "http://127.0.0.1:{api}/chat_applications/{token}/chats/1/messages"
            ))
            .json(&json!({"body": format!("{word} {i}")}))
            .send()
            .await
        else {
            continue;
        };
        if r.status() == 201 {
            let m: Value = r.json().await.unwrap();
            numbers.push(m["number"].as_i64().unwrap());
        }
    }
    numbers
}

impl Cluster {
    fn handle(&self) -> Handle {
        Handle {
            api: self.api,
            http: self.http.clone(),
        }
    }

    async fn new(redis_url: String) -> Cluster {
        let db = TestDatabase::create().await;
        let dir = std::env::temp_dir().join(testkit::unique_name("chat_cluster"));
        std::fs::create_dir_all(&dir).unwrap();
        let cluster = Cluster {
            db,
            redis_url,
            prefix: testkit::redis_prefix(),
            dir,
            children: Vec::new(),
            admins: Vec::new(),
            api: free_port(),
            http: reqwest::Client::new(),
        };
        let migrate = cluster.command("migrate").output().unwrap();
        assert!(
            migrate.status.success(),
            "{}",
            String::from_utf8_lossy(&migrate.stderr)
        );
        cluster
    }

    fn command(&self, role: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chat-system"));
        cmd.arg(role)
            .env_remove("ELASTICSEARCH_URL")
            .env("DATABASE_URL", &self.db.url)
            .env("REDIS_URL", &self.redis_url)
            .env("CHAT_REDIS_PREFIX", &self.prefix)
            .env("CHAT_DATA_DIR", &self.dir)
            .env("CHAT_COUNTER_FLUSH_MS", "200")
            .env("CHAT_INDEXER_FLUSH_MS", "50")
            .env("CHAT_QUEUE_CLAIM_IDLE_MS", "500")
            .env("CHAT_QUEUE_MAX_ATTEMPTS", "3")
            .env("CHAT_REDIS_TIMEOUT_MS", "500")
            .env("RUST_LOG", "warn");
        cmd
    }

    /// Starts a role; answers once its admin port is ready.
    async fn start(&mut self, role: &str) {
        let admin = free_port();
        let mut cmd = self.command(role);
        cmd.env("CHAT_ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
            .stderr(Stdio::inherit());
        if role == "api" {
            cmd.env("CHAT_LISTEN", format!("127.0.0.1:{}", self.api));
        }
        let child = cmd.spawn().unwrap();
        self.children.push((role.to_owned(), child));
        self.admins.retain(|(r, _)| r != role);
        self.admins.push((role.to_owned(), admin));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = self
                .http
                .get(format!("http://127.0.0.1:{admin}/readyz"))
                .send()
                .await
                && r.status() == 200
            {
                return;
            }
            assert!(Instant::now() < deadline, "{role} not ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no chance to finish or acknowledge anything.
    fn kill(&mut self, role: &str) {
        let i = self
            .children
            .iter()
            .position(|(r, _)| r == role)
            .expect("running");
        let (_, mut child) = self.children.remove(i);
        child.kill().unwrap();
        child.wait().unwrap();
    }

    async fn metrics(&self, role: &str) -> String {
        let admin = self
            .admins
            .iter()
            .find(|(r, _)| r == role)
            .expect("role started")
            .1;
        self.http
            .get(format!("http://127.0.0.1:{admin}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.api)
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> Value {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null)
    }

    async fn eventually(
        &self,
        path: &str,
        timeout: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.get(path).await;
            if check(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "gave up on {path}: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn app_with_chat(&self) -> String {
        let (status, app) = self
            .post("/chat_applications", json!({"name": "cluster"}))
            .await;
        assert_eq!(status, 201);
        let token = app["token"].as_str().unwrap().to_owned();
        assert_eq!(
            self.post(&format!("/chat_applications/{token}/chats"), json!({}))
                .await
                .0,
            201
        );
        token
    }

    async fn burst(&self, token: &str, word: &str, n: usize) -> Vec<i64> {
        burst(&self.http, self.api, token, word, n).await
    }

    async fn search_all(&self, token: &str, q: &str) -> Vec<i64> {
        let mut seen = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = self
                .get(&format!(
                    "/chat_applications/{token}/chats/1/messages/search?q={q}&limit=100{cursor}"
                ))
                .await;
            seen.extend(
                page["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| h["number"].as_i64().unwrap()),
            );
            match page["next"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => return seen,
            }
        }
    }

    /// Every acknowledged number is searchable exactly once.
    async fn assert_searchable_once(
        &self,
        token: &str,
        q: &str,
        acknowledged: &[i64],
        timeout: Duration,
    ) {
        let mut expected = acknowledged.to_vec();
        expected.sort();
        let deadline = Instant::now() + timeout;
        loop {
            let mut found = self.search_all(token, q).await;
            found.sort();
            if found == expected {
                println!(
                    "checked: acknowledged = indexed = {} messages",
                    expected.len()
                );
                return;
            }
            let mut dedup = found.clone();
            dedup.dedup();
            assert_eq!(dedup.len(), found.len(), "a message is indexed twice");
            assert!(
                Instant::now() < deadline,
                "indexed {} of {}",
                found.len(),
                expected.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_roles_count_and_index_and_survive_sigkill() {
    let mut c = Cluster::new(testkit::redis_url()).await;
    c.start("indexer").await;
    c.start("counter").await;
    c.start("api").await;
    let token = c.app_with_chat().await;

    let first = c.burst(&token, "alpha", 20).await;
    assert_eq!(first.len(), 20);
    c.eventually(
        &format!("/chat_applications/{token}/chats/1"),
        Duration::from_secs(5),
        |v| v["messages_count"] == 20,
    )
    .await;
    c.eventually(
        &format!("/chat_applications/{token}"),
        Duration::from_secs(5),
        |v| v["chats_count"] == 1,
    )
    .await;
    c.assert_searchable_once(&token, "alpha", &first, Duration::from_secs(5))
        .await;

    // Edit → search follows.
    let r = c
        .http
        .patch(c.url(&format!("/chat_applications/{token}/chats/1/messages/3")))
        .json(&json!({"body": "omega edited"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    c.assert_searchable_once(&token, "omega", &[3], Duration::from_secs(5))
        .await;

    // Each role's /metrics has its own series after the traffic, and no token.
    for (role, series) in [
        (
            "api",
            vec![
                "http_requests_total{method=\"POST\"",
                "chat_outbox_published_total",
                "chat_numbering_reseeds_total",
            ],
        ),
        (
            "indexer",
            vec![
                "chat_indexer_documents_total{outcome=\"indexed\"}",
                "chat_index_lag_seconds_count",
                "chat_queue_pending{group=\"indexer\"}",
            ],
        ),
        (
            "counter",
            vec![
                "chat_counter_flush_duration_seconds_count",
                "chat_count_lag_seconds_count",
                "chat_db_pool_connections",
            ],
        ),
    ] {
        let text = c.metrics(role).await;
        for s in series {
            let line = text
                .lines()
                .find(|l| l.starts_with(s))
                .unwrap_or_else(|| panic!("{role} lacks {s}"));
            if s.ends_with("_count") || s.contains("outcome") {
                let value: f64 = line.rsplit_once(' ').unwrap().1.parse().unwrap();
                assert!(value > 0.0, "{role}: {line}");
            }
        }
        assert!(!text.contains(&token), "{role} exposes a token");
    }

    // Kill both workers while a burst is flowing (entries delivered to them stay pending),
    // then start replacements: they take the dead consumers' entries over.
    let burst = {
        let c = Cluster::handle(&c);
        let token = token.clone();
        tokio::spawn(async move { c.burst(&token, "beta", 60).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.kill("indexer");
    c.kill("counter");
    println!("injected: SIGKILL of indexer and counter mid-burst");
    let second = burst.await.unwrap();
    assert_eq!(second.len(), 60);
    c.start("indexer").await;
    c.start("counter").await;
    c.assert_searchable_once(&token, "beta", &second, Duration::from_secs(15))
        .await;
    c.eventually(
        &format!("/chat_applications/{token}/chats/1"),
        Duration::from_secs(10),
        |v| v["messages_count"] == 80,
    )
    .await;
    println!("checked: counts exact (80) after restarting the counter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_loses_nothing_acknowledged() {
    let mut redis = PrivateRedis::start().await;
    let mut c = Cluster::new(redis.url()).await;
    c.start("indexer").await;
    c.start("counter").await;
    c.start("api").await;
    let token = c.app_with_chat().await;
    let mut acknowledged = c.burst(&token, "gamma", 15).await;

    // Events published to Redis but not yet consumed when it dies: only the outbox has them.
    c.kill("indexer");
    c.kill("counter");
    acknowledged.extend(c.burst(&token, "gamma", 10).await);
    redis.stop();
    println!("injected: stopped the test's own redis-server with 10 events unconsumed");
    let during = c.burst(&token, "gamma", 5).await;
    println!("acknowledged while Redis was down: {}", during.len());
    acknowledged.extend(during);
    redis.restart().await;
    println!("restored: redis-server restarted empty");
    c.start("indexer").await;
    c.start("counter").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let after = c.burst(&token, "gamma", 5).await;
        acknowledged.extend(&after);
        if !after.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "creates never recovered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let total = acknowledged.len();
    c.assert_searchable_once(&token, "gamma", &acknowledged, Duration::from_secs(20))
        .await;
    c.eventually(
        &format!("/chat_applications/{token}/chats/1"),
        Duration::from_secs(10),
        |v| v["messages_count"].as_u64() == Some(total as u64),
    )
    .await;
    println!("checked: acknowledged = stored = indexed = counted = {total}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_is_dead_lettered_while_the_rest_flows() {
    let mut c = Cluster::new(testkit::redis_url()).await;
    c.start("indexer").await;
    c.start("counter").await;
    c.start("api").await;
    let token = c.app_with_chat().await;
    // Someone wrote garbage into the stream.
    let client = redis::Client::open(c.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: String = redis::cmd("XADD")
        .arg(format!("{}chat:events", c.prefix))
        .arg("*")
        .arg("e")
        .arg("{\"v\":1,\"type\":\"no.such.event\"}")
        .query_async(&mut conn)
        .await
        .unwrap();
    let fine = c.burst(&token, "delta", 5).await;
    c.assert_searchable_once(&token, "delta", &fine, Duration::from_secs(5))
        .await;

    // 3 attempts, 500 ms apart: both groups dead-letter it.
    let deadline = Instant::now() + Duration::from_secs(15);
    let listing = loop {
        let out = c.command("dlq").arg("list").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if text.contains("2 dead letter(s)") {
            break text;
        }
        assert!(Instant::now() < deadline, "not dead-lettered: {text}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        listing.contains("group=indexer") && listing.contains("group=counter"),
        "{listing}"
    );
    assert!(
        listing.contains("attempts=3") && listing.contains("no.such.event"),
        "{listing}"
    );
    let replay = c.command("dlq").args(["replay"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&replay.stdout).contains("re-queued 2"),
        "{replay:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindex_and_recount_rebuild_from_the_database() {
    let mut c = Cluster::new(testkit::redis_url()).await;
    c.start("api").await; // no indexer, no counter running
    let token = c.app_with_chat().await;
    let acknowledged = c.burst(&token, "epsilon", 12).await;
    // No indexer ever ran: the embedded index does not exist yet, and search says so.
    let before = c
        .http
        .get(c.url(&format!(
            "/chat_applications/{token}/chats/1/messages/search?q=epsilon"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(before.status(), 503);

    let reindex = c.command("reindex").output().unwrap();
    assert!(
        reindex.status.success(),
        "{}",
        String::from_utf8_lossy(&reindex.stderr)
    );
    let summary = String::from_utf8_lossy(&reindex.stdout);
    assert!(summary.contains("12 documents written"), "{summary}");
    c.assert_searchable_once(&token, "epsilon", &acknowledged, Duration::from_secs(5))
        .await;

    let recount = c.command("recount").output().unwrap();
    assert!(
        recount.status.success(),
        "{}",
        String::from_utf8_lossy(&recount.stderr)
    );
    assert!(String::from_utf8_lossy(&recount.stdout).contains("1 applications and 1 chats"));
    assert_eq!(
        c.get(&format!("/chat_applications/{token}/chats/1")).await["messages_count"],
        12
    );
    assert_eq!(
        c.get(&format!("/chat_applications/{token}")).await["chats_count"],
        1
    );
}
