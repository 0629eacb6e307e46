//! Process-wide Prometheus metrics of the core: numbering, outbox relay, queue, indexer and
//! counter. The admin port renders them next to the HTTP metrics (`chat_api::metrics`).
//! Names follow Prometheus conventions (`_total`, `_seconds`); no label ever carries a token.

use std::sync::LazyLock;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

pub static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

fn counter(name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    REGISTRY
        .register(Box::new(c.clone()))
        .expect("registered once");
    c
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    REGISTRY
        .register(Box::new(c.clone()))
        .expect("registered once");
    c
}

fn gauge(name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    REGISTRY
        .register(Box::new(g.clone()))
        .expect("registered once");
    g
}

fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .expect("valid metric");
    REGISTRY
        .register(Box::new(h.clone()))
        .expect("registered once");
    h
}

fn seconds() -> Vec<f64> {
    vec![
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ]
}

fn sizes() -> Vec<f64> {
    vec![1.0, 5.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0]
}

pub static NUMBER_FALLBACKS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "chat_numbering_fallbacks_total",
        "Numbers taken from the database because Redis was unavailable",
    )
});

pub static NUMBER_RESEEDS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "chat_numbering_reseeds_total",
        "Counters seeded from the database (unknown or lost in Redis)",
    )
});
pub static NUMBER_RETRIES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "chat_numbering_retries_total",
        "Creates retried after a number was already taken",
    )
});
pub static OUTBOX_PUBLISHED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "chat_outbox_published_total",
        "Outbox rows published to the queue",
    )
});
pub static OUTBOX_PUBLISH_FAILURES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "chat_outbox_publish_failures_total",
        "Relay rounds that failed (queue or database down)",
    )
});
pub static OUTBOX_REPUBLISHED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "chat_outbox_republished_total",
        "Retained outbox rows re-published after the queue lost its contents",
    )
});
pub static OUTBOX_PUBLISH_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "chat_outbox_publish_duration_seconds",
        "Time to publish one batch of outbox rows",
        seconds(),
    )
});
pub static OUTBOX_WAITING: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "chat_outbox_waiting",
        "Outbox rows not yet published (sampled by the relay)",
    )
});
pub static DEAD_LETTERED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "chat_queue_dead_lettered_total",
        "Events moved to the dead-letter stream",
        &["group"],
    )
});
pub static INDEXER_BATCH_SIZE: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "chat_indexer_batch_size",
        "Documents per bulk write",
        sizes(),
    )
});
pub static INDEXER_BULK_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "chat_indexer_bulk_duration_seconds",
        "Time of one bulk write",
        seconds(),
    )
});
pub static INDEXER_DOCUMENTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "chat_indexer_documents_total",
        "Documents written or rejected",
        &["outcome"],
    )
});
pub static INDEX_LAG_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "chat_index_lag_seconds",
        "From a message's create or edit to its document being written",
        seconds(),
    )
});
pub static COUNTER_FLUSH_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "chat_counter_flush_duration_seconds",
        "Time of one count flush",
        seconds(),
    )
});
pub static COUNTER_DIRTY_KEYS: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "chat_counter_dirty_keys",
        "Applications and chats recounted per flush",
        sizes(),
    )
});
pub static COUNT_LAG_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "chat_count_lag_seconds",
        "From a chat's or message's create to its count being flushed",
        seconds(),
    )
});
pub static PURGED_ROWS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter_vec(
        "chat_purged_rows_total",
        "Rows of deleted chats and applications removed by the purge, by kind",
        &["kind"],
    )
});
pub static PURGE_HIDDEN_CHATS: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "chat_purge_hidden_chats",
        "Deleted chats found waiting for the purge in its last round (at most one batch)",
    )
});
pub static DB_ACQUIRE_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "chat_db_acquire_duration_seconds",
        "Wait for a pooled database connection (for a transaction: until it has begun)",
        seconds(),
    )
});
pub static SEARCH_INDEX_BYTES: LazyLock<IntGauge> = LazyLock::new(|| {
    gauge(
        "chat_search_index_bytes",
        "Size of the search index (sampled at scrape)",
    )
});
pub static REDIS_ERRORS: LazyLock<IntCounter> =
    LazyLock::new(|| counter("chat_redis_errors_total", "Redis calls that failed"));
pub static BATCH_SIZE: LazyLock<prometheus::HistogramVec> = LazyLock::new(|| {
    let h = prometheus::HistogramVec::new(
        HistogramOpts::new(
            "chat_coalesced_batch_size",
            "Concurrent requests served by one database round trip, by kind",
        )
        .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
        &["kind"],
    )
    .expect("valid metric");
    REGISTRY
        .register(Box::new(h.clone()))
        .expect("registered once");
    h
});
pub static CREATE_STAGE_SECONDS: LazyLock<prometheus::HistogramVec> = LazyLock::new(|| {
    let h = prometheus::HistogramVec::new(
        HistogramOpts::new(
            "chat_create_stage_duration_seconds",
            "Time a create spends in each stage: resolving its parent, numbering, the write",
        )
        .buckets(vec![
            0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256,
            0.5, 1.0, 5.0,
        ]),
        &["stage"],
    )
    .expect("valid metric");
    REGISTRY
        .register(Box::new(h.clone()))
        .expect("registered once");
    h
});
pub static DB_POOL: LazyLock<prometheus::IntGaugeVec> = LazyLock::new(|| {
    let g = prometheus::IntGaugeVec::new(
        Opts::new(
            "chat_db_pool_connections",
            "Database connections of this process, by state",
        ),
        &["state"],
    )
    .expect("valid metric");
    REGISTRY
        .register(Box::new(g.clone()))
        .expect("registered once");
    g
});

/// Seconds since `at`, never negative (clocks of other hosts may be ahead).
pub fn seconds_since(at: chrono::DateTime<chrono::Utc>) -> f64 {
    (chrono::Utc::now() - at)
        .num_microseconds()
        .unwrap_or(0)
        .max(0) as f64
        / 1e6
}

/// Touches every metric so each series is exported from the start (a dashboard shows 0 rather
/// than "no data").
pub fn register_all() {
    LazyLock::force(&NUMBER_RESEEDS);
    LazyLock::force(&NUMBER_RETRIES);
    LazyLock::force(&NUMBER_FALLBACKS);
    LazyLock::force(&OUTBOX_PUBLISHED);
    LazyLock::force(&OUTBOX_PUBLISH_FAILURES);
    LazyLock::force(&OUTBOX_REPUBLISHED);
    LazyLock::force(&OUTBOX_PUBLISH_SECONDS);
    LazyLock::force(&OUTBOX_WAITING);
    LazyLock::force(&INDEXER_BATCH_SIZE);
    LazyLock::force(&INDEXER_BULK_SECONDS);
    LazyLock::force(&INDEX_LAG_SECONDS);
    LazyLock::force(&COUNTER_FLUSH_SECONDS);
    LazyLock::force(&COUNTER_DIRTY_KEYS);
    LazyLock::force(&COUNT_LAG_SECONDS);
    LazyLock::force(&REDIS_ERRORS);
    LazyLock::force(&SEARCH_INDEX_BYTES);
    LazyLock::force(&DB_ACQUIRE_SECONDS);
    for group in ["indexer", "counter"] {
        DEAD_LETTERED.with_label_values(&[group]);
    }
    for outcome in ["indexed", "rejected"] {
        INDEXER_DOCUMENTS.with_label_values(&[outcome]);
    }
    for stage in ["lookup", "number", "write"] {
        CREATE_STAGE_SECONDS.with_label_values(&[stage]);
    }
    for kind in ["insert_message", "insert_chat", "chat_lookup"] {
        BATCH_SIZE.with_label_values(&[kind]);
    }
    for state in ["idle", "in_use"] {
        DB_POOL.with_label_values(&[state]);
    }
    for kind in ["message", "chat", "application"] {
        PURGED_ROWS.with_label_values(&[kind]);
    }
    LazyLock::force(&PURGE_HIDDEN_CHATS);
}
