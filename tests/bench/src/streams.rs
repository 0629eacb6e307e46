//! Live-stream latency: created → delivered while messages are created open loop at a
//! sustained rate and subscribers follow the chat over SSE. Creates go to the first api
//! process, subscribers to the last one (the other replica when there are two), so an event
//! crosses the outbox relay, the Redis stream and the other replica's reader. A sample is one
//! (message, subscriber) pair, timed from the create request's send to the event's arrival.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::http::{self, Client};
use crate::report::Lag;
use crate::scenarios::Fixture;
use crate::system::{Ctx, System};

pub struct StreamPlan {
    pub rate: f64,
    pub subscribers: usize,
    /// Creating connections of the open-loop load.
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

/// How long after the load a missing event still counts as late rather than never seen.
const LIMIT: Duration = Duration::from_secs(5);

pub async fn stream_phase(
    ctx: &Ctx,
    system: &mut System,
    fixture: &Fixture,
    plan: &StreamPlan,
) -> anyhow::Result<Lag> {
    system.settle(ctx, Duration::from_secs(10)).await;
    let writer = system.api[0];
    let reader = *system.api.last().expect("an api process");
    let token = fixture.token().to_owned();
    let chat = http::once(
        writer,
        "POST",
        &format!("/chat_applications/{token}/chats"),
        None,
    )
    .await?
    .json()?["number"]
        .as_i64()
        .context("chat number")?;
    let path = format!("/chat_applications/{token}/chats/{chat}/messages/stream");

    let (arrivals_tx, mut arrivals) = mpsc::unbounded_channel::<(usize, u64, Instant)>();
    let mut subscribers = Vec::new();
    for s in 0..plan.subscribers {
        let ready = subscribe(reader, &path).await?;
        let arrivals = arrivals_tx.clone();
        subscribers.push(tokio::spawn(follow(ready, s, arrivals)));
    }
    drop(arrivals_tx);

    let sent: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let started = Instant::now();
    let measured_from = started + plan.warmup;
    let until = measured_from + plan.duration;
    let (ticks_tx, ticks) = async_channel(plan.connections * 4);
    let mut creators = Vec::new();
    for _ in 0..plan.connections.max(1) {
        let (ticks, sent, path) = (
            ticks.clone(),
            sent.clone(),
            format!("/chat_applications/{token}/chats/{chat}/messages"),
        );
        creators.push(tokio::spawn(async move {
            let mut client = Client::new(writer);
            let mut failed = 0u64;
            while let Some(seq) = recv(&ticks).await {
                let body = serde_json::json!({ "body": format!("bench-stream {seq}") }).to_string();
                sent.lock().unwrap().insert(seq, Instant::now());
                if client
                    .expect("POST", &path, Some(&body), 201)
                    .await
                    .is_err()
                {
                    failed += 1;
                }
            }
            failed
        }));
    }
    let interval = Duration::from_secs_f64(1.0 / plan.rate.max(1.0));
    let mut next = tokio::time::Instant::now();
    let mut seq = 0u64;
    let mut dropped = 0u64;
    while Instant::now() < until {
        tokio::time::sleep_until(next).await;
        next += interval;
        seq += 1;
        // Open loop: a tick no creator can take now is not sent (and not expected).
        if ticks_tx.try_send(seq).is_err() {
            dropped += 1;
        }
    }
    drop(ticks_tx);
    let mut create_failures = 0;
    for creator in creators {
        create_failures += creator.await?;
    }
    // Late events still arrive within the limit; then the subscribers are closed.
    let deadline = Instant::now() + LIMIT;
    let mut latencies = Vec::new();
    let mut seen: HashMap<(usize, u64), ()> = HashMap::new();
    let sent = sent.lock().unwrap().clone();
    let expected: Vec<u64> = sent
        .iter()
        .filter(|(_, at)| **at >= measured_from && **at < until)
        .map(|(seq, _)| *seq)
        .collect();
    let wanted = expected.len() * plan.subscribers;
    while Instant::now() < deadline {
        let arrival = tokio::time::timeout_at(deadline.into(), arrivals.recv()).await;
        let Ok(Some((sub, seq, at))) = arrival else {
            break;
        };
        let Some(sent_at) = sent.get(&seq) else {
            continue;
        };
        if *sent_at < measured_from || *sent_at >= until {
            continue;
        }
        if seen.insert((sub, seq), ()).is_some() {
            bail!("subscriber {sub} received message {seq} twice");
        }
        latencies.push(at.saturating_duration_since(*sent_at));
        if seen.len() >= wanted {
            break;
        }
    }
    for s in subscribers {
        s.abort();
    }
    system.check_alive()?;
    latencies.sort();
    let q = |q: f64| {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1000.0
    };
    let lag = Lag {
        system: system.label.clone(),
        kind: "stream".into(),
        rate: plan.rate,
        samples: latencies.len() as u64,
        missed: (wanted - seen.len()) as u64,
        limit_s: LIMIT.as_secs_f64(),
        p50_ms: q(0.5),
        p99_ms: q(0.99),
        max_ms: q(1.0),
        sampler_requests: seq - dropped,
    };
    eprintln!(
        "bench:   stream delivery at {:.0}/s, {} subscribers on {}: {} samples, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms{}{}",
        plan.rate,
        plan.subscribers,
        if writer == reader {
            "the same process"
        } else {
            "the other replica"
        },
        lag.samples,
        lag.p50_ms,
        lag.p99_ms,
        lag.max_ms,
        if lag.missed > 0 {
            format!(", !! {} never seen", lag.missed)
        } else {
            String::new()
        },
        if dropped + create_failures > 0 {
            format!(" ({dropped} ticks not sent, {create_failures} creates failed)")
        } else {
            String::new()
        }
    );
    Ok(lag)
}

type Ticks = Arc<tokio::sync::Mutex<mpsc::Receiver<u64>>>;

/// A bounded channel several creators take from.
fn async_channel(capacity: usize) -> (mpsc::Sender<u64>, Ticks) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (tx, Arc::new(tokio::sync::Mutex::new(rx)))
}

async fn recv(ticks: &Ticks) -> Option<u64> {
    ticks.lock().await.recv().await
}

/// Opens an SSE stream (HTTP/1.0, so the body is plain lines, not chunks) and returns once the
/// server answered 200: from then on every event reaches it.
async fn subscribe(
    addr: SocketAddr,
    path: &str,
) -> anyhow::Result<BufReader<tokio::net::TcpStream>> {
    let mut socket = tokio::net::TcpStream::connect(addr).await?;
    socket.set_nodelay(true)?;
    socket
        .write_all(
            format!("GET {path} HTTP/1.0\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut reader = BufReader::new(socket);
    let mut status = String::new();
    reader.read_line(&mut status).await?;
    if !status.contains(" 200 ") {
        bail!("stream {path}: {}", status.trim());
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            bail!("stream {path}: closed in the headers");
        }
        if line == "\r\n" || line == "\n" {
            return Ok(reader);
        }
    }
}

async fn follow(
    mut reader: BufReader<tokio::net::TcpStream>,
    subscriber: usize,
    arrivals: mpsc::UnboundedSender<(usize, u64, Instant)>,
) {
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let Some(data) = line.strip_prefix("data:") else {
            continue;
        };
        let at = Instant::now();
        let seq = serde_json::from_str::<serde_json::Value>(data.trim())
            .ok()
            .and_then(|v| {
                v["body"]
                    .as_str()
                    .and_then(|b| b.strip_prefix("bench-stream "))
                    .and_then(|n| n.parse::<u64>().ok())
            });
        if let Some(seq) = seq
            && arrivals.send((subscriber, seq, at)).is_err()
        {
            return;
        }
    }
}
