//! HTTP scenarios against a running system: the fixture (applications and chats created over
//! HTTP), the create/read scenarios, the open-loop sweep, index and count lag at a sustained
//! rate, and RSS with many idle keep-alive connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::baselines::MESSAGE_BODY;
use crate::http::{self, Client, Conn};
use crate::load::{self, HttpWorker, LoadResult, Mode, Plan, Requests};
use crate::procs;
use crate::report::{Connections, Lag, Row};
use crate::system::{Ctx, Meter, System};

pub const APPS: usize = 200;
pub const SPREAD_CHATS: i64 = 1000;

pub struct Fixture {
    /// `apps[0]` holds every chat below.
    pub apps: Vec<String>,
    pub spread: Vec<i64>,
    pub hot: i64,
    pub probe: i64,
    pub count_chats: Vec<i64>,
    pub next_count_chat: usize,
    /// Messages known to exist in the hot chat, numbered 1..=hot_messages.
    pub hot_messages: u64,
}

impl Fixture {
    pub fn token(&self) -> &str {
        &self.apps[0]
    }

    fn chat_path(&self, chat: i64) -> String {
        format!("/chat_applications/{}/chats/{chat}", self.token())
    }
}

/// Sends `requests` over `concurrency` connections, each answer must be `want`; results in
/// order.
pub async fn parallel(
    addrs: &[SocketAddr],
    requests: Vec<(String, String, Option<String>)>,
    want: u16,
    concurrency: usize,
) -> anyhow::Result<Vec<Value>> {
    let requests = Arc::new(requests);
    let mut tasks = Vec::new();
    for k in 0..concurrency {
        let requests = requests.clone();
        let addr = addrs[k % addrs.len()];
        tasks.push(tokio::spawn(async move {
            let mut client = Client::new(addr);
            let mut out = Vec::new();
            for i in (k..requests.len()).step_by(concurrency) {
                let (method, path, body) = &requests[i];
                out.push((i, client.expect(method, path, body.as_deref(), want).await?));
            }
            anyhow::Ok(out)
        }));
    }
    let mut all = Vec::with_capacity(requests.len());
    for task in tasks {
        all.extend(task.await??);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, v)| v).collect())
}

fn message_json(body: &str) -> String {
    serde_json::json!({ "body": body }).to_string()
}

/// 200 applications; in the first, 1,000 chats for the spread scenarios, a hot chat seeded
/// with 1,000 messages, a chat for index-lag probes and `count_chats` chats for count-lag
/// samples.
pub async fn fixture(addrs: &[SocketAddr], count_chats: usize) -> anyhow::Result<Fixture> {
    let started = Instant::now();
    let apps = parallel(
        addrs,
        (0..APPS)
            .map(|i| {
                (
                    "POST".into(),
                    "/chat_applications".into(),
                    Some(format!(r#"{{"name":"bench app {i}"}}"#)),
                )
            })
            .collect(),
        201,
        16,
    )
    .await
    .context("create applications")?;
    let apps: Vec<String> = apps
        .iter()
        .map(|a| {
            a["token"]
                .as_str()
                .map(str::to_owned)
                .context("token in answer")
        })
        .collect::<anyhow::Result<_>>()?;
    let chats = SPREAD_CHATS as usize + 2 + count_chats;
    let path = format!("/chat_applications/{}/chats", apps[0]);
    parallel(
        addrs,
        (0..chats)
            .map(|_| ("POST".into(), path.clone(), None))
            .collect(),
        201,
        16,
    )
    .await
    .context("create chats")?;
    let hot = SPREAD_CHATS + 1;
    let fixture = Fixture {
        apps,
        spread: (1..=SPREAD_CHATS).collect(),
        hot,
        probe: hot + 1,
        count_chats: (hot + 2..hot + 2 + count_chats as i64).collect(),
        next_count_chat: 0,
        hot_messages: 1000,
    };
    let path = format!("{}/messages", fixture.chat_path(hot));
    parallel(
        addrs,
        (0..fixture.hot_messages)
            .map(|_| {
                (
                    "POST".into(),
                    path.clone(),
                    Some(message_json(MESSAGE_BODY)),
                )
            })
            .collect(),
        201,
        16,
    )
    .await
    .context("seed the hot chat")?;
    eprintln!(
        "bench:   fixture: {APPS} applications, {chats} chats, 1000 messages in {:.1?}",
        started.elapsed()
    );
    Ok(fixture)
}

pub fn create_app_requests() -> Requests {
    Requests::Fixed(http::request(
        "POST",
        "/chat_applications",
        Some(r#"{"name":"bench"}"#),
    ))
}

pub fn create_chat_requests(f: &Fixture) -> Requests {
    Requests::Choice(
        f.apps
            .iter()
            .map(|t| http::request("POST", &format!("/chat_applications/{t}/chats"), None))
            .collect(),
    )
}

pub fn create_message_requests(f: &Fixture, chats: &[i64]) -> Requests {
    let body = message_json(MESSAGE_BODY);
    let all: Vec<Vec<u8>> = chats
        .iter()
        .map(|c| {
            http::request(
                "POST",
                &format!("{}/messages", f.chat_path(*c)),
                Some(&body),
            )
        })
        .collect();
    if all.len() == 1 {
        Requests::Fixed(all.into_iter().next().unwrap())
    } else {
        Requests::Choice(all)
    }
}

pub fn get_message_requests(f: &Fixture) -> Requests {
    let prefix = format!("GET {}/messages/", f.chat_path(f.hot));
    let n = f.hot_messages.max(1);
    Requests::Build(Box::new(move |rng, buf| {
        buf.extend_from_slice(prefix.as_bytes());
        buf.extend_from_slice((1 + rng.below(n)).to_string().as_bytes());
        buf.extend_from_slice(b" HTTP/1.1\r\nHost: bench\r\n\r\n");
    }))
}

pub fn list_messages_requests(f: &Fixture) -> Requests {
    let prefix = format!("GET {}/messages?limit=50&after=", f.chat_path(f.hot));
    let n = f.hot_messages.saturating_sub(50).max(1);
    Requests::Build(Box::new(move |rng, buf| {
        buf.extend_from_slice(prefix.as_bytes());
        buf.extend_from_slice(rng.below(n).to_string().as_bytes());
        buf.extend_from_slice(b" HTTP/1.1\r\nHost: bench\r\n\r\n");
    }))
}

/// One measured HTTP load run against `system`, with its resource usage.
#[allow(clippy::too_many_arguments)]
pub async fn http_row(
    ctx: &Ctx,
    system: &mut System,
    key: &str,
    scenario: &str,
    requests: Requests,
    mode: Mode,
    plan: Plan,
    settle: Duration,
) -> anyhow::Result<Row> {
    let waited = system.settle(ctx, settle).await;
    if waited >= settle {
        eprintln!("bench:   (system still busy after {settle:?}; measuring {scenario} anyway)");
    }
    let workers = HttpWorker::many(&system.api, mode.workers(), Arc::new(requests));
    let status = match &system.mysql {
        Some(url) => Some(crate::system::db_status(url).await),
        None => None,
    };
    let meter = Meter::for_system(ctx, system);
    let load = load::run(workers, mode, plan).await;
    let mut usage = meter.finish(ctx);
    if let (Some(before), Some(url)) = (status, &system.mysql) {
        usage.db_status =
            crate::system::status_delta(&before, &crate::system::db_status(url).await);
    }
    system.check_alive()?;
    let row = Row {
        key: key.into(),
        scenario: scenario.into(),
        system: system.label.clone(),
        per_op: 1,
        load,
        usage,
        ratio: None,
        note: None,
    };
    eprintln!("{}", crate::report::progress_line(&row));
    Ok(row)
}

/// Index lag (201 → searchable) and count lag (last 201 → `messages_count` equal) sampled
/// while the create-message load runs open loop at `rate` over the spread chats.
pub struct LagPlan {
    pub rate: f64,
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub index_period: Duration,
    pub index_poll: Duration,
    pub count_period: Duration,
    pub count_poll: Duration,
    pub count_messages: usize,
}

pub async fn lag_phase(
    ctx: &Ctx,
    system: &mut System,
    fixture: &mut Fixture,
    plan: &LagPlan,
) -> anyhow::Result<(Row, Lag, Lag)> {
    system.settle(ctx, Duration::from_secs(10)).await;
    let requests = Arc::new(create_message_requests(fixture, &fixture.spread));
    let mode = Mode::Open {
        rate: plan.rate,
        connections: plan.connections,
    };
    let workers = HttpWorker::many(&system.api, mode.workers(), requests);
    let load_plan = Plan {
        warmup: plan.warmup,
        duration: plan.duration,
        timeout: Duration::from_secs(10),
    };
    let meter = Meter::for_system(ctx, system);
    let load = tokio::spawn(load::run(workers, mode, load_plan));
    tokio::time::sleep(plan.warmup).await;
    let addr = system.api[0];
    let search_addr = *system.api.last().unwrap();
    let chats = fixture.count_chats[fixture.next_count_chat..].to_vec();
    let index_limit = Duration::from_secs(10);
    let count_limit = Duration::from_secs(20);
    let index = tokio::spawn(index_sampler(
        addr,
        search_addr,
        fixture.token().to_owned(),
        fixture.probe,
        plan.index_period,
        plan.index_poll,
        plan.duration,
        index_limit,
    ));
    let count = tokio::spawn(count_sampler(
        addr,
        fixture.token().to_owned(),
        chats,
        plan.count_messages,
        plan.count_period,
        plan.count_poll,
        plan.duration,
        count_limit,
    ));
    let load: LoadResult = load.await?;
    let index = index.await??;
    let count = count.await??;
    fixture.next_count_chat += count.samples as usize + count.missed as usize;
    let usage = meter.finish(ctx);
    system.check_alive()?;
    let row = Row {
        key: "lag-load".into(),
        scenario: "create message under lag sampling".into(),
        system: system.label.clone(),
        per_op: 1,
        load,
        usage,
        ratio: None,
        note: Some("sustained load while index and count lag were sampled".into()),
    };
    eprintln!("{}", crate::report::progress_line(&row));
    let lag = |kind: &str, s: Samples, limit: Duration| Lag {
        system: system.label.clone(),
        kind: kind.into(),
        rate: plan.rate,
        samples: s.samples,
        missed: s.missed,
        limit_s: limit.as_secs_f64(),
        p50_ms: s.quantile(0.5),
        p99_ms: s.quantile(0.99),
        max_ms: s.quantile(1.0),
        sampler_requests: s.requests,
    };
    let index = lag("index", index, index_limit);
    let count = lag("count", count, count_limit);
    for l in [&index, &count] {
        eprintln!(
            "bench:   {} lag at {:.0}/s: {} samples, p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms{}",
            l.kind,
            l.rate,
            l.samples,
            l.p50_ms,
            l.p99_ms,
            l.max_ms,
            if l.missed > 0 {
                format!(", !! {} missed", l.missed)
            } else {
                String::new()
            }
        );
    }
    Ok((row, index, count))
}

#[derive(Default)]
pub struct Samples {
    lags: Vec<Duration>,
    samples: u64,
    missed: u64,
    requests: u64,
}

impl Samples {
    fn quantile(&self, q: f64) -> f64 {
        if self.lags.is_empty() {
            return 0.0;
        }
        let mut sorted = self.lags.clone();
        sorted.sort();
        let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[i].as_secs_f64() * 1000.0
    }

    fn add(&mut self, outcome: Option<Duration>) {
        match outcome {
            Some(lag) => {
                self.samples += 1;
                self.lags.push(lag);
            }
            None => self.missed += 1,
        }
    }
}

/// Every `period`, a message with a word of its own; then its search every `poll` until hit.
#[allow(clippy::too_many_arguments)]
async fn index_sampler(
    addr: SocketAddr,
    search_addr: SocketAddr,
    token: String,
    chat: i64,
    period: Duration,
    poll: Duration,
    run_for: Duration,
    limit: Duration,
) -> anyhow::Result<Samples> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let requests = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tick = tokio::time::interval(period);
    let mut tasks = Vec::new();
    while started.elapsed() < run_for {
        tick.tick().await;
        let i = NEXT.fetch_add(1, Ordering::Relaxed);
        let token = token.clone();
        let requests = requests.clone();
        tasks.push(tokio::spawn(async move {
            // Five digits after a fixed stem: no probe word is a prefix of another.
            let word = format!("lag{i:05}");
            let base = format!("/chat_applications/{token}/chats/{chat}/messages");
            let mut client = Client::new(addr);
            client
                .expect(
                    "POST",
                    &base,
                    Some(&message_json(&format!("index probe {word}"))),
                    201,
                )
                .await?;
            let created = Instant::now();
            let search = http::request("GET", &format!("{base}/search?q={word}"), None);
            let mut searcher = Client::new(search_addr);
            let mut sent = 1;
            let outcome = loop {
                tokio::time::sleep(poll).await;
                sent += 1;
                let response = searcher.send(&search).await?;
                if response.status == 200 {
                    let hits = response.json()?["data"].as_array().map_or(0, Vec::len);
                    if hits > 0 {
                        break Some(created.elapsed());
                    }
                } else if response.status != 503 {
                    bail!("search answered {}: {}", response.status, response.text());
                }
                if created.elapsed() > limit {
                    break None;
                }
            };
            requests.fetch_add(sent, Ordering::Relaxed);
            anyhow::Ok(outcome)
        }));
    }
    let mut samples = Samples::default();
    for task in tasks {
        samples.add(task.await??);
    }
    samples.requests = requests.load(Ordering::Relaxed);
    Ok(samples)
}

/// Every `period`, `messages` creates into a fresh chat; then GET chat every `poll` until its
/// `messages_count` says so, timed from the last 201.
#[allow(clippy::too_many_arguments)]
async fn count_sampler(
    addr: SocketAddr,
    token: String,
    chats: Vec<i64>,
    messages: usize,
    period: Duration,
    poll: Duration,
    run_for: Duration,
    limit: Duration,
) -> anyhow::Result<Samples> {
    let requests = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tick = tokio::time::interval(period);
    let mut tasks = Vec::new();
    for chat in chats {
        if started.elapsed() >= run_for {
            break;
        }
        tick.tick().await;
        let token = token.clone();
        let requests = requests.clone();
        tasks.push(tokio::spawn(async move {
            let path = format!("/chat_applications/{token}/chats/{chat}");
            let create = http::request(
                "POST",
                &format!("{path}/messages"),
                Some(&message_json("count probe")),
            );
            let mut client = Client::new(addr);
            for _ in 0..messages {
                let response = client.send(&create).await?;
                if response.status != 201 {
                    bail!(
                        "count probe create answered {}: {}",
                        response.status,
                        response.text()
                    );
                }
            }
            let last = Instant::now();
            let get = http::request("GET", &path, None);
            let mut sent = messages as u64;
            let outcome = loop {
                tokio::time::sleep(poll).await;
                sent += 1;
                let response = client.send(&get).await?;
                if response.status == 200
                    && response.json()?["messages_count"].as_u64() == Some(messages as u64)
                {
                    break Some(last.elapsed());
                }
                if last.elapsed() > limit {
                    break None;
                }
            };
            requests.fetch_add(sent, Ordering::Relaxed);
            anyhow::Ok(outcome)
        }));
    }
    let mut samples = Samples::default();
    for task in tasks {
        samples.add(task.await??);
    }
    samples.requests = requests.load(Ordering::Relaxed);
    Ok(samples)
}

/// Opens `n` keep-alive connections to the first api, one request each, then idles them and
/// reads the api's RSS.
pub async fn connections(
    system: &System,
    fixture: &Fixture,
    n: usize,
) -> anyhow::Result<Connections> {
    let addr = system.api[0];
    let server = system
        .servers
        .iter()
        .find(|s| s.ready_addr == addr)
        .context("api process")?;
    let pid = server.pid;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = procs::rss_mib(pid).unwrap_or(0.0);
    procs::reset_peak(pid);
    let request = Arc::new(http::request(
        "GET",
        &format!("/chat_applications/{}", fixture.token()),
        None,
    ));
    let mut tasks = Vec::new();
    let per_task = n.div_ceil(50);
    for k in 0..50 {
        let request = request.clone();
        let count = per_task.min(n.saturating_sub(k * per_task));
        tasks.push(tokio::spawn(async move {
            let mut open = Vec::new();
            let mut failed = 0;
            for _ in 0..count {
                match Conn::connect(addr).await {
                    Ok(mut conn) => match conn.send(&request).await {
                        Ok(r) if r.status == 200 && !r.close => open.push(conn),
                        _ => failed += 1,
                    },
                    Err(_) => failed += 1,
                }
            }
            (open, failed)
        }));
    }
    let mut open = Vec::new();
    let mut failed = 0;
    for task in tasks {
        let (conns, f) = task.await?;
        open.extend(conns);
        failed += f;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss = procs::rss_mib(pid).unwrap_or(0.0);
    let peak = procs::peak_rss_mib(pid).unwrap_or(0.0);
    let result = Connections {
        system: system.label.clone(),
        process: server.name.clone(),
        wanted: n,
        open: open.len(),
        failed,
        rss_before_mib: before,
        rss_mib: rss,
        peak_mib: peak,
    };
    drop(open);
    eprintln!(
        "bench:   {} keep-alive connections open ({} failed): {} RSS {:.1} MiB (before {:.1}, peak {:.1})",
        result.open,
        result.failed,
        result.process,
        result.rss_mib,
        result.rss_before_mib,
        result.peak_mib
    );
    Ok(result)
}
