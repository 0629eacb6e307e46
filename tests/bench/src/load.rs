//! The load engine: closed loop (fixed concurrency) and open loop (fixed arrival rate), HDR
//! latency histograms per worker merged at the end, warm-up excluded.
//!
//! Open loop: request `i` is due at `start + i / rate`. A free connection takes the next due
//! slot, sleeps until it is due and sends; latency is measured from the slot's *intended* time,
//! so a stalled server cannot hide latency by slowing the client down (no coordinated
//! omission). Every connection busy means slots wait, and that wait counts as latency.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::http::Conn;

/// xorshift64*: cheap, deterministic per worker.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() >> 32) * n) >> 32
    }
}

pub enum Outcome {
    Ok,
    Status(u16, String),
    Error(String),
}

/// One virtual client: performs one operation per call.
pub trait Worker: Send + 'static {
    fn call(&mut self) -> impl Future<Output = Outcome> + Send;
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Mode {
    Closed { concurrency: usize },
    Open { rate: f64, connections: usize },
}

impl Mode {
    pub fn label(&self) -> String {
        match self {
            Mode::Closed { concurrency } => format!("closed c={concurrency}"),
            Mode::Open { rate, .. } => format!("open {rate:.0}/s"),
        }
    }

    pub fn workers(&self) -> usize {
        match *self {
            Mode::Closed { concurrency } => concurrency,
            Mode::Open { connections, .. } => connections,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub warmup: Duration,
    pub duration: Duration,
    pub timeout: Duration,
}

struct Stats {
    hist: Histogram<u64>,
    ok: u64,
    non2xx: u64,
    errors: u64,
    timeouts: u64,
    statuses: BTreeMap<u16, u64>,
    first_error: Option<String>,
    /// 2xx answers that arrived inside the measured window (the open loop's throughput).
    ok_in_window: u64,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            // 1 µs .. 100 s, 3 significant digits.
            hist: Histogram::new_with_bounds(1, 100_000_000, 3).expect("histogram bounds"),
            ok: 0,
            non2xx: 0,
            errors: 0,
            timeouts: 0,
            statuses: BTreeMap::new(),
            first_error: None,
            ok_in_window: 0,
        }
    }

    fn record(&mut self, latency: Duration, outcome: Option<Outcome>, in_window: bool) {
        let micros = (latency.as_micros() as u64).clamp(1, 100_000_000);
        match outcome {
            Some(Outcome::Ok) => {
                self.ok += 1;
                self.ok_in_window += u64::from(in_window);
                self.hist.saturating_record(micros);
            }
            Some(Outcome::Status(code, body)) => {
                self.non2xx += 1;
                *self.statuses.entry(code).or_default() += 1;
                self.hist.saturating_record(micros);
                self.first_error
                    .get_or_insert_with(|| format!("status {code}: {body}"));
            }
            Some(Outcome::Error(err)) => {
                self.errors += 1;
                self.first_error.get_or_insert(err);
            }
            None => {
                self.timeouts += 1;
                self.first_error
                    .get_or_insert_with(|| format!("timeout after {latency:?}"));
            }
        }
    }

    fn merge(&mut self, other: Stats) {
        self.hist.add(&other.hist).expect("same histogram bounds");
        self.ok += other.ok;
        self.non2xx += other.non2xx;
        self.errors += other.errors;
        self.timeouts += other.timeouts;
        for (code, n) in other.statuses {
            *self.statuses.entry(code).or_default() += n;
        }
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.ok_in_window += other.ok_in_window;
    }
}

/// What one load run measured. Latencies in milliseconds; percentiles cover 2xx and non-2xx
/// responses (errors and timeouts are only counted).
#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    pub mode: Mode,
    pub measured_s: f64,
    pub count: u64,
    pub ok: u64,
    pub non2xx: u64,
    pub errors: u64,
    pub timeouts: u64,
    pub statuses: BTreeMap<u16, u64>,
    pub first_error: Option<String>,
    /// Successful operations per second over the measured window.
    pub rps: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl LoadResult {
    pub fn failures(&self) -> u64 {
        self.non2xx + self.errors + self.timeouts
    }

    fn from_stats(mode: Mode, stats: Stats, window: Duration) -> Self {
        // Closed loop: requests started in the window. Open loop: answers that arrived in it
        // (requests due in the window may complete after it when the server falls behind).
        let achieved = match mode {
            Mode::Closed { .. } => stats.ok,
            Mode::Open { .. } => stats.ok_in_window,
        };
        let h = &stats.hist;
        let ms = |v: u64| v as f64 / 1000.0;
        let has = !h.is_empty();
        LoadResult {
            mode,
            measured_s: window.as_secs_f64(),
            count: stats.ok + stats.non2xx + stats.errors + stats.timeouts,
            ok: stats.ok,
            non2xx: stats.non2xx,
            errors: stats.errors,
            timeouts: stats.timeouts,
            statuses: stats.statuses,
            first_error: stats.first_error,
            rps: achieved as f64 / window.as_secs_f64(),
            mean_ms: if has { h.mean() / 1000.0 } else { 0.0 },
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// Runs `workers` (one per virtual client or connection) in `mode` for warm-up + duration.
pub async fn run<W: Worker>(workers: Vec<W>, mode: Mode, plan: Plan) -> LoadResult {
    assert_eq!(workers.len(), mode.workers(), "one worker per client");
    // A short lead so every task is spawned before the clock starts.
    let start = Instant::now() + Duration::from_millis(20);
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.duration;
    let slots = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(workers.len());
    for mut worker in workers {
        let slots = slots.clone();
        tasks.push(tokio::spawn(async move {
            let mut stats = Stats::new();
            tokio::time::sleep_until(start.into()).await;
            match mode {
                Mode::Closed { .. } => loop {
                    let sent = Instant::now();
                    if sent >= end {
                        break;
                    }
                    let outcome = tokio::time::timeout(plan.timeout, worker.call()).await.ok();
                    let done = Instant::now();
                    if sent >= measure_from {
                        stats.record(done - sent, outcome, true);
                    }
                },
                Mode::Open { rate, .. } => {
                    let interval = 1.0 / rate;
                    loop {
                        let slot = slots.fetch_add(1, Ordering::Relaxed);
                        let due = start + Duration::from_secs_f64(slot as f64 * interval);
                        if due >= end {
                            break;
                        }
                        if due > Instant::now() {
                            tokio::time::sleep_until(due.into()).await;
                        }
                        let outcome = tokio::time::timeout(plan.timeout, worker.call()).await.ok();
                        let done = Instant::now();
                        if due >= measure_from {
                            stats.record(done - due, outcome, done < end);
                        }
                    }
                }
            }
            stats
        }));
    }
    let mut total = Stats::new();
    for task in tasks {
        total.merge(task.await.expect("load task panicked"));
    }
    LoadResult::from_stats(mode, total, plan.duration)
}

/// Writes one complete request into the buffer.
pub type BuildRequest = Box<dyn Fn(&mut Rng, &mut Vec<u8>) + Send + Sync>;

/// What an HTTP worker sends.
pub enum Requests {
    Fixed(Vec<u8>),
    /// One of these, uniformly at random.
    Choice(Vec<Vec<u8>>),
    /// Built per request (e.g. a random message number in the path).
    Build(BuildRequest),
}

/// One keep-alive connection to one of `addrs` (round-robin by worker index), reconnecting
/// after an error or a `Connection: close`.
pub struct HttpWorker {
    addr: SocketAddr,
    conn: Option<Conn>,
    requests: Arc<Requests>,
    rng: Rng,
    buf: Vec<u8>,
}

impl HttpWorker {
    pub fn many(addrs: &[SocketAddr], n: usize, requests: Arc<Requests>) -> Vec<HttpWorker> {
        (0..n)
            .map(|i| HttpWorker {
                addr: addrs[i % addrs.len()],
                conn: None,
                requests: requests.clone(),
                rng: Rng::new(i as u64 + 1),
                buf: Vec::with_capacity(256),
            })
            .collect()
    }
}

impl Worker for HttpWorker {
    async fn call(&mut self) -> Outcome {
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => match Conn::connect(self.addr).await {
                Ok(conn) => conn,
                Err(err) => return Outcome::Error(format!("connect {}: {err}", self.addr)),
            },
        };
        let request: &[u8] = match &*self.requests {
            Requests::Fixed(bytes) => bytes,
            Requests::Choice(all) => &all[self.rng.below(all.len() as u64) as usize],
            Requests::Build(build) => {
                self.buf.clear();
                build(&mut self.rng, &mut self.buf);
                &self.buf
            }
        };
        match conn.send(request).await {
            Ok(response) => {
                if !response.close {
                    self.conn = Some(conn);
                }
                if (200..300).contains(&response.status) {
                    Outcome::Ok
                } else {
                    let mut text = response.text();
                    text.truncate(300);
                    Outcome::Status(response.status, text)
                }
            }
            Err(err) => Outcome::Error(format!("request to {}: {err}", self.addr)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers after `delay`, except one call in `stall_every` that takes `stall`.
    struct Slow {
        calls: u64,
        delay: Duration,
        stall: Duration,
        stall_every: u64,
    }

    impl Worker for Slow {
        async fn call(&mut self) -> Outcome {
            self.calls += 1;
            let wait = if self.calls.is_multiple_of(self.stall_every) {
                self.stall
            } else {
                self.delay
            };
            tokio::time::sleep(wait).await;
            Outcome::Ok
        }
    }

    fn plan(ms: u64) -> Plan {
        Plan {
            warmup: Duration::from_millis(100),
            duration: Duration::from_millis(ms),
            timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn open_loop_counts_the_wait_behind_a_stall() {
        // One connection, 200 requests/s, a 300 ms stall every 50 calls: the requests due
        // during the stall must show ~300 ms..0 ms of latency, not the 1 ms service time.
        let worker = Slow {
            calls: 0,
            delay: Duration::from_millis(1),
            stall: Duration::from_millis(300),
            stall_every: 50,
        };
        let mode = Mode::Open {
            rate: 200.0,
            connections: 1,
        };
        let result = run(vec![worker], mode, plan(1000)).await;
        assert!(result.max_ms >= 250.0, "max {}", result.max_ms);
        assert!(
            result.p90_ms >= 50.0,
            "p90 {} hides the stall",
            result.p90_ms
        );
        assert!(result.ok > 50, "{result:?}");
    }

    #[tokio::test]
    async fn closed_loop_measures_service_time() {
        let workers = (0..4)
            .map(|_| Slow {
                calls: 0,
                delay: Duration::from_millis(5),
                stall: Duration::from_millis(5),
                stall_every: 1,
            })
            .collect();
        let result = run(workers, Mode::Closed { concurrency: 4 }, plan(500)).await;
        assert!(result.p50_ms >= 5.0 && result.p50_ms < 20.0, "{result:?}");
        // 4 clients × ~1 request per 5–6 ms.
        assert!(result.rps > 300.0 && result.rps < 900.0, "{result:?}");
        assert_eq!(result.failures(), 0);
    }

    #[test]
    fn rng_below_stays_in_range() {
        let mut rng = Rng::new(7);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            seen[rng.below(10) as usize] += 1;
        }
        assert!(seen.iter().all(|n| *n > 800), "{seen:?}");
    }
}
