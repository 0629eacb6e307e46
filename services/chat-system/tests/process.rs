//! The binary as operators run it: subcommands, exit codes, settings errors, signals.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chat_core::testkit::{self, TestDatabase};

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chat-system"));
    // Only what each test sets: the developer's shell must not leak in.
    for var in [
        "DATABASE_URL",
        "REDIS_URL",
        "ELASTICSEARCH_URL",
        "CHAT_DATA_DIR",
        "CHAT_LISTEN",
        "CHAT_ADMIN_LISTEN",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_bad_setting_is_one_line_naming_it_and_exit_code_2() {
    for (var, value, expected) in [
        ("CHAT_DB_POOL", "lots", "CHAT_DB_POOL"),
        ("CHAT_DB_POOL", "0", "CHAT_DB_POOL"),
        ("CHAT_LISTEN", "not-an-address", "CHAT_LISTEN"),
        ("CHAT_MAX_BODY_BYTES", "99999999999", "CHAT_MAX_BODY_BYTES"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT"),
        ("DATABASE_URL", "postgres://x/y", "DATABASE_URL"),
        ("REDIS_URL", "http://x", "REDIS_URL"),
    ] {
        let out = bin().arg("serve").env(var, value).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{var}={value}: {stderr}");
        assert!(stderr.contains(expected), "{var}={value}: {stderr}");
    }
}

#[tokio::test]
async fn migrate_then_api_and_api_refuses_an_unmigrated_database() {
    let db = TestDatabase::create().await;
    let dir = std::env::temp_dir().join(testkit::unique_name("chat_api_unmigrated"));
    let refused = bin()
        .arg("api")
        .env("DATABASE_URL", &db.url)
        .env("CHAT_DATA_DIR", &dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("chat-system migrate"),
        "tells what to do: {stderr}"
    );

    let migrated = bin()
        .arg("migrate")
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    // Idempotent.
    assert!(
        bin()
            .arg("migrate")
            .env("DATABASE_URL", &db.url)
            .status()
            .unwrap()
            .success()
    );

    let (port, admin) = (free_port(), free_port());
    let mut api = bin()
        .arg("api")
        .env("DATABASE_URL", &db.url)
        .env("REDIS_URL", testkit::redis_url())
        .env("CHAT_REDIS_PREFIX", testkit::redis_prefix())
        .env("CHAT_LISTEN", format!("127.0.0.1:{port}"))
        .env("CHAT_ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_ready(admin).await;
    let created = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/chat_applications"))
        .json(&serde_json_name("from the binary"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    stop(&mut api, Duration::from_secs(10));
    let out = api.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("numbering=\"redis\""), "{log}");
    assert!(out.status.success(), "exit 0 on SIGTERM: {:?}", out.status);
}

#[tokio::test]
async fn serve_runs_embedded_and_stops_cleanly_on_sigterm() {
    let dir = std::env::temp_dir().join(testkit::unique_name("chat_serve"));
    let (port, admin) = (free_port(), free_port());
    let mut serve = serve_command(&dir, port, admin)
        .env("LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_ready(admin).await;
    let client = reqwest::Client::new();
    let up = client
        .get(format!("http://127.0.0.1:{port}/up"))
        .send()
        .await
        .unwrap();
    assert_eq!(up.status(), 200);
    let metrics = client
        .get(format!("http://127.0.0.1:{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("http_requests_total{method=\"GET\",route=\"/up\",status=\"200\"} 1"),
        "{metrics}"
    );
    assert!(
        dir.join("chat.db").exists(),
        "the SQLite file lives in CHAT_DATA_DIR"
    );
    assert!(
        metrics.contains("chat_queue_length"),
        "queue gauges: {metrics}"
    );

    // Every role runs in the one process: counts and search follow a create, then an edit.
    let base = format!("http://127.0.0.1:{port}");
    let app: serde_json::Value = client
        .post(format!("{base}/chat_applications"))
        .json(&serde_json_name("embedded"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = app["token"].as_str().unwrap();
    client
        .post(format!("{base}/chat_applications/{token}/chats"))
        .send()
        .await
        .unwrap();
    let created = client
        .post(format!("{base}/chat_applications/{token}/chats/1/messages"))
        .json(&serde_json::json!({"body": "hello embedded world"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let get = |path: String| {
        let client = client.clone();
        async move {
            client
                .get(path)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let chat = get(format!("{base}/chat_applications/{token}/chats/1")).await;
        let found = get(format!(
            "{base}/chat_applications/{token}/chats/1/messages/search?q=embed"
        ))
        .await;
        if chat["messages_count"] == 1 && found["data"].as_array().is_some_and(|d| d.len() == 1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "counts/search did not follow: {chat} {found}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client
        .patch(format!(
            "{base}/chat_applications/{token}/chats/1/messages/1"
        ))
        .json(&serde_json::json!({"body": "goodbye"}))
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found = get(format!(
            "{base}/chat_applications/{token}/chats/1/messages/search?q=goodbye"
        ))
        .await;
        if found["data"].as_array().is_some_and(|d| d.len() == 1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "search did not follow the edit: {found}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // After traffic: valid Prometheus text, every series the roles promise, no token anywhere.
    let metrics = client
        .get(format!("http://127.0.0.1:{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_prometheus_text(&metrics);
    for series in [
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "http_requests_in_flight",
        "chat_numbering_reseeds_total",
        "chat_numbering_retries_total",
        "chat_outbox_published_total",
        "chat_outbox_publish_duration_seconds_bucket",
        "chat_outbox_publish_failures_total",
        "chat_outbox_republished_total",
        "chat_outbox_waiting",
        "chat_queue_length",
        "chat_queue_pending{group=\"indexer\"}",
        "chat_queue_dead_letters",
        "chat_queue_lag{group=\"counter\"}",
        "chat_queue_dead_lettered_total",
        "chat_indexer_batch_size_bucket",
        "chat_indexer_bulk_duration_seconds_bucket",
        "chat_indexer_documents_total{outcome=\"indexed\"}",
        "chat_index_lag_seconds_bucket",
        "chat_counter_flush_duration_seconds_bucket",
        "chat_counter_dirty_keys_bucket",
        "chat_count_lag_seconds_bucket",
        "chat_db_pool_connections{state=\"idle\"}",
        "chat_redis_errors_total",
        "chat_search_index_bytes",
        "chat_db_acquire_duration_seconds_bucket",
    ] {
        assert!(metrics.contains(series), "missing {series}:\n{metrics}");
    }
    assert!(!metrics.contains(token), "a token leaked into the metrics");
    assert!(
        metrics.contains("route=\"/chat_applications/{token}/chats/{chat_number}/messages\""),
        "routes are labelled by template"
    );
    let traced = client
        .get(format!("{base}/chat_applications/{token}"))
        .header("x-request-id", "req-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(traced.headers()["x-request-id"], "req-abc-123");
    let token = token.to_owned();

    let started = Instant::now();
    stop(&mut serve, Duration::from_secs(10));
    let out = serve.wait_with_output().unwrap();
    assert!(out.status.success(), "exit 0 on SIGTERM: {:?}", out.status);
    assert!(started.elapsed() < Duration::from_secs(10));
    let log = String::from_utf8_lossy(&out.stderr);
    let first = log.lines().next().unwrap();
    assert!(
        first.starts_with('{') && first.contains("\"config\""),
        "JSON logs with the effective config: {first}"
    );
    let request_line = log
        .lines()
        .find(|l| l.contains("req-abc-123"))
        .unwrap_or_else(|| panic!("the request's log line carries its id:\n{log}"));
    assert!(
        request_line.contains("/chat_applications/{token}"),
        "{request_line}"
    );
    assert!(!log.contains(&token), "a token reached the logs");
    let _ = std::fs::remove_dir_all(dir);
}

/// `chat-system serve` on its own data directory and ports.
fn serve_command(dir: &std::path::Path, port: u16, admin: u16) -> Command {
    let mut cmd = bin();
    cmd.arg("serve")
        .env("CHAT_DATA_DIR", dir)
        .env("CHAT_LISTEN", format!("127.0.0.1:{port}"))
        .env("CHAT_ADMIN_LISTEN", format!("127.0.0.1:{admin}"));
    cmd
}

/// Creates an application with chat 1; answers its token.
async fn app_with_chat(client: &reqwest::Client, base: &str, name: &str) -> String {
    let app: serde_json::Value = client
        .post(format!("{base}/chat_applications"))
        .json(&serde_json_name(name))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = app["token"].as_str().unwrap().to_owned();
    let chat = client
        .post(format!("{base}/chat_applications/{token}/chats"))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 201);
    token
}

fn serde_json_name(name: &str) -> std::collections::HashMap<&'static str, String> {
    [("name", name.to_owned())].into_iter().collect()
}

async fn wait_ready(admin: u16) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{admin}/readyz"))
            .send()
            .await
            && r.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "not ready on admin port {admin}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGTERM, then wait (bounded) for the exit.
fn stop(child: &mut std::process::Child, within: Duration) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + within;
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "did not exit within {within:?} of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn a_killed_serve_loses_nothing_after_restart() {
    let dir = std::env::temp_dir().join(testkit::unique_name("chat_serve_kill"));
    let (port, admin) = (free_port(), free_port());
    let start = || {
        serve_command(&dir, port, admin)
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap()
    };
    let mut serve = start();
    wait_ready(admin).await;
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let token = app_with_chat(&client, &base, "crash").await;
    for i in 0..20 {
        let r = client
            .post(format!("{base}/chat_applications/{token}/chats/1/messages"))
            .json(&serde_json::json!({"body": format!("zeta {i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    serve.kill().unwrap(); // SIGKILL right after the last 201
    serve.wait().unwrap();
    println!("injected: SIGKILL of serve right after 20 acknowledged creates");

    let mut serve = start();
    wait_ready(admin).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let chat: serde_json::Value = client
            .get(format!("{base}/chat_applications/{token}/chats/1"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let found: serde_json::Value = client
            .get(format!(
                "{base}/chat_applications/{token}/chats/1/messages/search?q=zeta&limit=100"
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let hits = found["data"].as_array().map_or(0, |d| d.len());
        if chat["messages_count"] == 20 && hits == 20 {
            println!("checked: acknowledged = stored = indexed = counted = 20");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after restart: count {} hits {hits}",
            chat["messages_count"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    serve.kill().unwrap();
    serve.wait().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// Each line is a comment or `name{labels} value`, the value a number.
fn assert_prometheus_text(text: &str) {
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        assert!(
            value.parse::<f64>().is_ok() || value == "+Inf",
            "bad value in {line}"
        );
        let name = series.split('{').next().unwrap();
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line}"
        );
        let labels = &series[name.len()..];
        assert!(
            labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
            "bad labels in {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_burst_keeps_every_acknowledged_create() {
    let dir = std::env::temp_dir().join(testkit::unique_name("chat_serve_term"));
    let (port, admin) = (free_port(), free_port());
    let start = || {
        serve_command(&dir, port, admin)
            .env("CHAT_SHUTDOWN_GRACE_S", "5")
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap()
    };
    let mut serve = start();
    wait_ready(admin).await;
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let token = app_with_chat(&client, &base, "term").await;

    // Four clients create until the server stops answering.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (client, base, token) = (client.clone(), base.clone(), token.clone());
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for i in 0.. {
                    let sent = client
                        .post(format!("{base}/chat_applications/{token}/chats/1/messages"))
                        .json(&serde_json::json!({"body": format!("eta {w} {i}")}))
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status() == 201 => {
                            let m: serde_json::Value = r.json().await.unwrap();
                            acknowledged.push(m["number"].as_i64().unwrap());
                        }
                        _ => break,
                    }
                }
                acknowledged
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let started = Instant::now();
    let sent = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    // Readiness turns 503 while the listeners still answer, so load balancers drain first.
    let mut saw_unready = false;
    while started.elapsed() < Duration::from_secs(1) {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{admin}/readyz"))
            .send()
            .await
            && r.status() == 503
        {
            saw_unready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(saw_unready, "/readyz answered 503 during shutdown");
    while serve.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = serve.wait().unwrap();
    assert!(status.success(), "exit 0 on SIGTERM: {status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "within the grace period: {:?}",
        started.elapsed()
    );
    let mut acknowledged = Vec::new();
    for w in writers {
        acknowledged.extend(w.await.unwrap());
    }
    acknowledged.sort();
    println!(
        "injected: SIGTERM after {} acknowledged creates",
        acknowledged.len()
    );
    assert!(!acknowledged.is_empty());

    let mut serve = start();
    wait_ready(admin).await;
    let mut stored = Vec::new();
    let mut after = 0;
    loop {
        let page: serde_json::Value = client
            .get(format!(
                "{base}/chat_applications/{token}/chats/1/messages?limit=200&after={after}"
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stored.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["number"].as_i64().unwrap()),
        );
        match page["next"].as_i64() {
            Some(n) => after = n,
            None => break,
        }
    }
    for n in &acknowledged {
        assert!(stored.contains(n), "acknowledged message {n} is not stored");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let chat: serde_json::Value = client
            .get(format!("{base}/chat_applications/{token}/chats/1"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let found: serde_json::Value = client
            .get(format!(
                "{base}/chat_applications/{token}/chats/1/messages/search?q=eta&limit=100"
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let hits = found["data"].as_array().map_or(0, |d| d.len());
        if chat["messages_count"].as_u64() == Some(stored.len() as u64)
            && hits == stored.len().min(100)
        {
            println!(
                "checked: acknowledged {} <= stored {} = counted = indexed",
                acknowledged.len(),
                stored.len()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after restart: count {} hits {hits} stored {}",
            chat["messages_count"],
            stored.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    serve.kill().unwrap();
    serve.wait().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn indexer_and_counter_without_redis_exit_2_saying_why() {
    let dir = std::env::temp_dir().join(testkit::unique_name("chat_worker_no_redis"));
    for role in ["indexer", "counter"] {
        let out = bin()
            .arg(role)
            .env("CHAT_DATA_DIR", &dir)
            .env("CHAT_ADMIN_LISTEN", format!("127.0.0.1:{}", free_port()))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{role}: {stderr}");
        let last = stderr.trim().lines().last().unwrap_or_default();
        assert!(
            last.starts_with("chat-system: ") && last.contains("REDIS_URL") && last.contains(role),
            "{role}: one line naming REDIS_URL: {stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// `api` on MySQL without Redis runs the indexer and the counter itself: its messages become
/// searchable and counted (before, the events stayed in an in-process queue nobody read).
#[tokio::test]
async fn api_without_redis_indexes_and_counts_its_own_writes() {
    let db = TestDatabase::create().await;
    let dir = std::env::temp_dir().join(testkit::unique_name("chat_api_no_redis"));
    let migrated = bin()
        .arg("migrate")
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(migrated.status.success(), "{migrated:?}");
    let (port, admin) = (free_port(), free_port());
    let mut child = bin()
        .arg("api")
        .env("DATABASE_URL", &db.url)
        .env("CHAT_DATA_DIR", &dir)
        .env("CHAT_LISTEN", format!("127.0.0.1:{port}"))
        .env("CHAT_ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
        .env("CHAT_COUNTER_FLUSH_MS", "100")
        .env("CHAT_INDEXER_FLUSH_MS", "20")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(admin).await;
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let token = app_with_chat(&client, &base, "no redis").await;
    let created = client
        .post(format!("{base}/chat_applications/{token}/chats/1/messages"))
        .json(&serde_json::json!({"body": "findable without redis"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let chat_path = format!("{base}/chat_applications/{token}/chats/1");
        let search = get_json(&client, &format!("{chat_path}/messages/search?q=findable")).await;
        let chat = get_json(&client, &chat_path).await;
        let found = search["data"].as_array().map_or(0, Vec::len);
        if found == 1 && chat["messages_count"] == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not indexed and counted: search {search}, chat {chat}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop(&mut child, Duration::from_secs(25));
    let _ = std::fs::remove_dir_all(dir);
}

async fn get_json(client: &reqwest::Client, url: &str) -> serde_json::Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}
