//! Prometheus metrics of the HTTP layer. Routes are labelled by their template
//! (`/chat_applications/{token}`), never the raw path, so no token reaches a label.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::state::AppState;

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGauge,
    queue_length: IntGauge,
    queue_pending: IntGaugeVec,
    queue_lag: IntGaugeVec,
    dead_letters: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        chat_core::metrics::register_all();
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests answered, by route template, method and status",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency").buckets(
                vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ],
            ),
            &["route", "method"],
        )
        .expect("valid metric");
        let in_flight = IntGauge::new("http_requests_in_flight", "HTTP requests being served")
            .expect("valid metric");
        let queue_length = IntGauge::new("chat_queue_length", "Entries in the event stream")
            .expect("valid metric");
        let queue_pending = IntGaugeVec::new(
            Opts::new(
                "chat_queue_pending",
                "Entries delivered to a consumer group and not yet acknowledged",
            ),
            &["group"],
        )
        .expect("valid metric");
        let queue_lag = IntGaugeVec::new(
            Opts::new(
                "chat_queue_lag",
                "Entries not yet delivered to a consumer group",
            ),
            &["group"],
        )
        .expect("valid metric");
        let dead_letters = IntGauge::new(
            "chat_queue_dead_letters",
            "Entries in the dead-letter stream",
        )
        .expect("valid metric");
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(in_flight.clone()),
            Box::new(queue_length.clone()),
            Box::new(queue_pending.clone()),
            Box::new(queue_lag.clone()),
            Box::new(dead_letters.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric registered once");
        }
        Metrics {
            registry,
            requests,
            duration,
            in_flight,
            queue_length,
            queue_pending,
            queue_lag,
            dead_letters,
        }
    }

    /// Refreshes the queue gauges (at scrape time: they are cheap reads of the queue).
    pub fn observe_queue(&self, stats: &chat_core::queue::QueueStats) {
        self.queue_length.set(stats.length as i64);
        self.dead_letters.set(stats.dead_letters as i64);
        for (group, pending) in &stats.pending {
            self.queue_pending
                .with_label_values(&[group.name()])
                .set(*pending as i64);
        }
        for (group, lag) in &stats.lag {
            if let Some(lag) = lag {
                self.queue_lag
                    .with_label_values(&[group.name()])
                    .set(*lag as i64);
            }
        }
    }

    /// The Prometheus text exposition of every metric: this router's HTTP metrics and the
    /// process-wide ones of the core (numbering, outbox, queue, indexer, counter).
    pub fn render(&self) -> String {
        let mut families = self.registry.gather();
        families.extend(chat_core::metrics::REGISTRY.gather());
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&families, &mut out)
            .expect("text encoding cannot fail on valid metrics");
        String::from_utf8(out).expect("Prometheus text is UTF-8")
    }
}

pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let metrics = &state.metrics;
    metrics.in_flight.inc();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.in_flight.dec();
    metrics
        .duration
        .with_label_values(&[&route, &method])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .with_label_values(&[&route, &method, response.status().as_str()])
        .inc();
    response
}
