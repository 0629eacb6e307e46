//! Slow and abusive clients on the public port (`chat_api::serve`): a slowloris crowd is cut
//! at the header deadline while normal requests stay fast, idle keep-alive connections close
//! after the idle timeout (and not at the header deadline), a request in progress is never
//! idle, and connections past the cap are closed at once.

use std::time::{Duration, Instant};

use chat_tests::{Mode, TestApp, metric};
use sqlx::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start(header_ms: u64, idle_s: u64, max_connections: u32) -> TestApp {
    TestApp::start_with(Mode::Embedded, |s| {
        s.header_read_timeout_ms = header_ms;
        s.idle_timeout_s = idle_s;
        s.max_connections = max_connections;
    })
    .await
}

const REQUEST: &[u8] = b"GET /up HTTP/1.1\r\nHost: test\r\n\r\n";

/// Reads one response (headers and a `Content-Length` body); `None` if the server closed.
async fn read_response(stream: &mut TcpStream) -> Option<String> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&data).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                return Some(text);
            }
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
}

/// Waits until the server closes the connection; answers how long that took.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout_at(
            tokio::time::Instant::from_std(started + limit),
            stream.read(&mut buf),
        )
        .await
        {
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slowloris_cannot_pin_the_server() {
    let app = start(1500, 30, 10_000).await;
    let timed_out = metric("chat_connections_timed_out_total{phase=\"headers\"}");
    // 50 clients, each dribbling one header byte every 300 ms: none ever finishes.
    let slow: Vec<_> = (0..50)
        .map(|_| {
            let addr = app.addr;
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(addr).await.unwrap();
                let started = Instant::now();
                let header = b"GET /up HTTP/1.1\r\nHost: test\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa";
                let mut buf = [0u8; 64];
                for byte in header.iter().cycle() {
                    if stream.write_all(&[*byte]).await.is_err() {
                        return started.elapsed();
                    }
                    // Any answer (data or EOF) means the server gave up on us.
                    let read = stream.read(&mut buf);
                    if tokio::time::timeout(Duration::from_millis(300), read)
                        .await
                        .is_ok()
                    {
                        return started.elapsed();
                    }
                    assert!(started.elapsed() < Duration::from_secs(10), "never closed");
                }
                unreachable!()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Meanwhile normal clients are served at once.
    for _ in 0..20 {
        let started = Instant::now();
        assert_eq!(app.get("/up").await.status, 200);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for task in slow {
        let lived = task.await.unwrap();
        assert!(
            lived >= Duration::from_millis(1200) && lived < Duration::from_secs(4),
            "a slow connection was closed after {lived:?}, not at the 1.5 s header deadline"
        );
    }
    let closed = metric("chat_connections_timed_out_total{phase=\"headers\"}") - timed_out;
    println!("checked: 50 slowloris connections closed at the header deadline ({closed} counted)");
    assert!(closed >= 50, "{closed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let app = start(1000, 3, 10_000).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(REQUEST).await.unwrap();
    assert!(
        read_response(&mut stream)
            .await
            .unwrap()
            .starts_with("HTTP/1.1 200")
    );
    // Idle past the header deadline but within the idle timeout: still usable.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    stream.write_all(REQUEST).await.unwrap();
    assert!(
        read_response(&mut stream)
            .await
            .unwrap()
            .starts_with("HTTP/1.1 200")
    );
    let closed = closed_within(&mut stream, Duration::from_secs(6))
        .await
        .expect("closed by the idle timeout");
    assert!(
        closed >= Duration::from_millis(2700) && closed < Duration::from_millis(4500),
        "closed after {closed:?}, idle timeout 3 s"
    );
    // A connection that connects and sends nothing owes its headers from the start.
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    let closed = closed_within(&mut silent, Duration::from_secs(3))
        .await
        .expect("closed by the header deadline");
    assert!(closed < Duration::from_millis(2000), "{closed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_in_progress_is_not_idle() {
    let app = start(1000, 1, 10_000).await;
    let token = app.new_application("busy").await;
    let chat = app.new_chat(&token).await;
    // The create waits on the SQLite write lock for longer than the idle timeout.
    let url = format!(
        "sqlite://{}",
        app.settings.data_dir.join("chat.db").display()
    );
    let mut hold = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut hold)
        .await
        .unwrap();
    let request = app.new_message(&token, chat, "patience");
    let release = async {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        sqlx::raw_sql("COMMIT").execute(&mut hold).await.unwrap();
    };
    let (reply, ()) = tokio::join!(request, release);
    assert_eq!(reply.status, 201, "{reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_connection_cap_holds() {
    let app = start(5000, 30, 5).await;
    let refused = metric("chat_connections_refused_total");
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        stream.write_all(REQUEST).await.unwrap();
        assert!(read_response(&mut stream).await.is_some());
        held.push(stream);
    }
    // The sixth is accepted and closed at once, before any request is read.
    let mut extra = TcpStream::connect(app.addr).await.unwrap();
    let _ = extra.write_all(REQUEST).await;
    assert!(
        closed_within(&mut extra, Duration::from_secs(2))
            .await
            .is_some(),
        "a sixth connection was served"
    );
    assert!(metric("chat_connections_refused_total") > refused);
    // One closes: there is room again.
    drop(held.pop());
    let served = chat_tests::faults::eventually(Duration::from_secs(3), || async {
        let Ok(mut stream) = TcpStream::connect(app.addr).await else {
            return false;
        };
        stream.write_all(REQUEST).await.is_ok() && read_response(&mut stream).await.is_some()
    })
    .await;
    assert!(served, "a slot freed up");
    // The held ones are still served.
    for stream in &mut held {
        stream.write_all(REQUEST).await.unwrap();
        assert!(read_response(stream).await.is_some());
    }
}
