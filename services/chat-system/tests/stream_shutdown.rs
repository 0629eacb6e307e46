//! Live streams and the process lifecycle: SIGTERM ends open streams with a reason, so the
//! graceful shutdown does not wait out its grace period on them.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chat_core::testkit;
use futures::StreamExt;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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

/// Reads the stream until `needle` has arrived; answers everything read.
async fn read_until(
    body: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    text: &mut String,
    needle: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !text.contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, body.next())
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} in time; got {text:?}"))
            .unwrap_or_else(|| panic!("stream ended before {needle:?}; got {text:?}"))
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_open_streams_with_a_reason_and_the_process_exits_before_its_grace() {
    let dir = std::env::temp_dir().join(testkit::unique_name("chat_stream_stop"));
    let (port, admin) = (free_port(), free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chat-system"));
    for var in ["DATABASE_URL", "REDIS_URL", "ELASTICSEARCH_URL"] {
        cmd.env_remove(var);
    }
    let mut serve = cmd
        .arg("serve")
        .env("CHAT_DATA_DIR", &dir)
        .env("CHAT_LISTEN", format!("127.0.0.1:{port}"))
        .env("CHAT_ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
        .env("CHAT_SHUTDOWN_GRACE_S", "20")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(admin).await;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let app: serde_json::Value = client
        .post(format!("{base}/chat_applications"))
        .json(&serde_json::json!({"name": "stop"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = app["token"].as_str().unwrap();
    let chat = client
        .post(format!("{base}/chat_applications/{token}/chats"))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 201);
    let stream = client
        .get(format!(
            "{base}/chat_applications/{token}/chats/1/messages/stream"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut body = stream.bytes_stream();
    let created = client
        .post(format!("{base}/chat_applications/{token}/chats/1/messages"))
        .json(&serde_json::json!({"body": "live"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let mut text = String::new();
    read_until(&mut body, &mut text, "\"body\":\"live\"").await;
    let metrics = client
        .get(format!("http://127.0.0.1:{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("chat_stream_subscribers 1"), "{metrics}");

    let stopped_at = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    read_until(&mut body, &mut text, "\"reason\":\"shutdown\"").await;
    assert!(text.contains("event: error"), "{text}");
    // The response is over.
    let end = tokio::time::timeout(Duration::from_secs(5), body.next())
        .await
        .expect("the response ends after the reason");
    assert!(end.is_none() || end.is_some_and(|r| r.is_err()));
    // Exits after the readiness notice (3 s), far from the 20 s grace.
    while serve.try_wait().unwrap().is_none() {
        assert!(
            stopped_at.elapsed() < Duration::from_secs(12),
            "still running: the open stream held the shutdown"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = std::fs::remove_dir_all(dir);
}
