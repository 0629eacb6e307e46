//! Rate limits: the GCRA bucket stores (in-process and Redis) against one conformance suite,
//! then the HTTP behaviour in both modes: headers on every limited response, 429 with
//! `Retry-After`, writes and reads apart, the per-address limit on creating applications
//! (with and without a trusted proxy header), replicas sharing one bucket, and Redis outages
//! (each process limits on its own until Redis is back).

use std::time::{Duration, Instant};

use chat_api::limit::gcra::{Decision, Quota};
use chat_api::limit::{Buckets, local::LocalBuckets, redis::RedisBuckets};
use chat_core::testkit;
use chat_tests::faults::PrivateRedis;
use chat_tests::{Mode, Reply, TestApp};
use reqwest::Method;
use serde_json::json;

// ---- one conformance suite for both bucket stores ----

async fn take(buckets: &Buckets, key: &str, quota: Quota) -> Decision {
    Decision::new(buckets.take(key, quota).await.expect("bucket store"), quota)
}

async fn conformance(buckets: Buckets, prefix: &str) {
    let k = |name: &str| format!("{prefix}{name}");
    // Three a minute, all at once: remaining counts down, reset grows a minute per request.
    let slow = Quota::per_minute(1, 3).unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let d = take(&buckets, &k("a"), slow).await;
        assert!(d.allowed, "{d:?}");
        seen.push((d.limit, d.remaining, d.reset_s));
    }
    assert_eq!(seen, [(3, 2, 60), (3, 1, 120), (3, 0, 180)]);
    let denied = take(&buckets, &k("a"), slow).await;
    assert!(!denied.allowed);
    assert_eq!(denied.remaining, 0);
    assert_eq!(denied.retry_after_s, Some(60), "{denied:?}");
    assert_eq!(denied.reset_s, 180, "a denied request changes nothing");
    // Another key is another bucket.
    let other = take(&buckets, &k("b"), slow).await;
    assert_eq!((other.allowed, other.remaining), (true, 2));

    // Ten a second, burst one: the next request is allowed a tenth of a second later.
    let fast = Quota::per_second(10, 1).unwrap();
    assert!(take(&buckets, &k("c"), fast).await.allowed);
    assert!(!take(&buckets, &k("c"), fast).await.allowed);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(take(&buckets, &k("c"), fast).await.allowed);

    // Concurrent checks are atomic: exactly the burst gets through.
    let burst = Quota::per_minute(1, 10).unwrap();
    let buckets = std::sync::Arc::new(buckets);
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let buckets = buckets.clone();
            let key = k("d");
            tokio::spawn(async move { take(&buckets, &key, burst).await.allowed })
        })
        .collect();
    let mut allowed = 0;
    for task in tasks {
        allowed += usize::from(task.await.unwrap());
    }
    assert_eq!(allowed, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_in_process() {
    conformance(Buckets::Local(LocalBuckets::default()), "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_redis() {
    let prefix = testkit::redis_prefix();
    let conn = chat_api::guards::connect(&testkit::redis_url(), Duration::from_secs(2)).unwrap();
    conformance(Buckets::Redis(RedisBuckets::new(conn)), &prefix).await;
    // Buckets expire with their TAT: nothing is left behind for long.
    let client = redis::Client::open(testkit::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{prefix}a"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((1..=181_000).contains(&ttl), "PTTL {ttl}");
    testkit::wipe_redis_prefix(&testkit::redis_url(), &prefix)
        .await
        .unwrap();
}

// ---- HTTP ----

async fn send(request: reqwest::RequestBuilder) -> Reply {
    Reply::from(request.send().await.expect("request sent")).await
}

fn header(reply: &Reply, name: &str) -> Option<u64> {
    reply.headers.get(name)?.to_str().ok()?.parse().ok()
}

fn assert_limited(reply: &Reply) {
    reply.assert_problem(429);
    assert_eq!(
        reply.json["type"],
        "https://chatsystem.dev/problems/rate-limited"
    );
    let retry = header(reply, "retry-after").expect("Retry-After");
    assert!(retry >= 1, "{reply:?}");
}

async fn start(mode: Mode, adjust: impl FnOnce(&mut chat_core::config::Settings)) -> TestApp {
    TestApp::start_with(mode, adjust).await
}

async fn writes_are_limited_per_token(mode: Mode) {
    let app = start(mode, |s| {
        s.rate_write_per_s = 1;
        s.rate_write_burst = 3;
    })
    .await;
    let token = app.new_application("limited").await;
    let other = app.new_application("other").await;
    let chats = format!("/chat_applications/{token}/chats");
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let reply = app.call(Method::POST, &chats, None).await;
        assert_eq!(reply.status, 201, "{reply:?}");
        assert_eq!(header(&reply, "ratelimit-limit"), Some(3));
        remaining.push(header(&reply, "ratelimit-remaining").unwrap());
        assert!(header(&reply, "ratelimit-reset").unwrap() <= 3);
    }
    assert_eq!(remaining, [2, 1, 0]);
    let denied = app.call(Method::POST, &chats, None).await;
    assert_limited(&denied);
    assert_eq!(header(&denied, "retry-after"), Some(1));
    assert_eq!(header(&denied, "ratelimit-remaining"), Some(0));
    // Reads have their own bucket, other tokens their own.
    assert_eq!(app.get(&chats).await.status, 200);
    assert_eq!(app.new_chat(&other).await, 1);
    // Nothing was created by the denied request, and a second later one more is allowed.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let reply = app.call(Method::POST, &chats, None).await;
    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(reply.json["number"], 4);
}

async fn reads_are_limited_apart_and_every_limited_response_has_headers(mode: Mode) {
    let app = start(mode, |s| {
        s.rate_read_per_s = 1;
        s.rate_read_burst = 2;
    })
    .await;
    let token = app.new_application("reads").await;
    let path = format!("/chat_applications/{token}");
    assert_eq!(app.get(&path).await.status, 200);
    // An error of a limited route (404 here) carries the headers too.
    let missing = app.get(&format!("{path}/chats/99")).await;
    missing.assert_problem(404);
    assert_eq!(header(&missing, "ratelimit-remaining"), Some(0));
    assert_limited(&app.get(&path).await);
    // Writes still pass.
    assert_eq!(app.new_chat(&token).await, 1);
    // Unlimited routes carry no headers.
    let up = app.get("/up").await;
    assert!(up.headers.get("ratelimit-limit").is_none(), "{up:?}");
}

async fn creating_applications_is_limited_per_address(mode: Mode) {
    let app = start(mode, |s| {
        s.rate_create_app_per_min = 1;
        s.rate_create_app_burst = 2;
    })
    .await;
    app.new_application("one").await;
    app.new_application("two").await;
    let denied = app
        .post("/chat_applications", json!({ "name": "three" }))
        .await;
    assert_limited(&denied);
    let retry = header(&denied, "retry-after").unwrap();
    assert!((59..=60).contains(&retry), "{denied:?}");
    // Without a trusted proxy header, a forged X-Forwarded-For changes nothing.
    let forged = send(
        app.client
            .post(app.url("/chat_applications"))
            .header("x-forwarded-for", "203.0.113.7")
            .json(&json!({ "name": "forged" })),
    )
    .await;
    assert_limited(&forged);
}

async fn a_trusted_proxy_header_names_the_client(mode: Mode) {
    let app = start(mode, |s| {
        s.rate_create_app_per_min = 1;
        s.rate_create_app_burst = 1;
        s.trusted_proxy_header = Some("X-Forwarded-For".into());
    })
    .await;
    let create = |forwarded: &'static str| {
        app.client
            .post(app.url("/chat_applications"))
            .header("x-forwarded-for", forwarded)
            .json(&json!({ "name": "via proxy" }))
    };
    assert_eq!(send(create("198.51.100.1")).await.status, 201);
    assert_limited(&send(create("198.51.100.1")).await);
    // The right-most entry is the client our proxy saw; what the client put left of it is
    // ignored, so forging it does not buy a new bucket.
    assert_limited(&send(create("1.2.3.4, 198.51.100.1")).await);
    assert_eq!(send(create("198.51.100.1, 198.51.100.2")).await.status, 201);
}

chat_tests::each_mode!(
    writes_are_limited_per_token,
    reads_are_limited_apart_and_every_limited_response_has_headers,
    creating_applications_is_limited_per_address,
    a_trusted_proxy_header_names_the_client,
);

/// The bucket lives in Redis: two replicas draw from one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_share_one_bucket() {
    let a = start(Mode::MySql, |s| {
        s.rate_write_per_s = 1;
        s.rate_write_burst = 4;
    })
    .await;
    let b = a.replica().await;
    let token = a.new_application("shared").await;
    let chats = format!("/chat_applications/{token}/chats");
    for app in [&a, &b, &a, &b] {
        assert_eq!(app.call(Method::POST, &chats, None).await.status, 201);
    }
    assert_limited(&a.call(Method::POST, &chats, None).await);
    assert_limited(&b.call(Method::POST, &chats, None).await);
}

fn fallback_count() -> u64 {
    chat_tests::metric("chat_rate_limiter_unavailable_total{fail=\"fallback\"}")
}

/// Redis down: writes keep succeeding, limited by this process's own buckets (headers and 429s
/// as usual), reads too, and every such check is counted; when Redis is back the shared
/// buckets limit again without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_down_limits_in_process_and_shared_limits_resume() {
    let mut redis = PrivateRedis::start().await;
    let url = redis.url();
    let app = start(Mode::MySql, |s| {
        s.redis_url = Some(url);
        s.redis_timeout_ms = 300;
        // A burst of 5 writes, then one a minute: the 6th write in a row is over the limit.
        s.rate_write_per_s = 1;
        s.rate_write_burst = 5;
    })
    .await;
    let token = app.new_application("outage").await;
    let path = format!("/chat_applications/{token}");
    let before = fallback_count();
    redis.stop();
    println!(
        "injected: private redis-server on port {} stopped",
        redis.port
    );

    let read = app.get(&path).await;
    assert_eq!(read.status, 200, "reads work: {read:?}");
    // Sent at once, so only the time they take refills the bucket (one write a second).
    let started = Instant::now();
    let writes = futures::future::join_all((0..12).map(|i| {
        app.call(
            Method::PATCH,
            &path,
            Some(json!({ "name": format!("renamed {i}") })),
        )
    }))
    .await;
    let took = started.elapsed();
    let mut statuses = Vec::new();
    for write in &writes {
        if write.status == 429 {
            assert_limited(write);
        } else {
            assert_eq!(write.status, 200, "writes need no Redis: {write:?}");
            assert!(header(write, "ratelimit-limit").is_some(), "{write:?}");
        }
        statuses.push(write.status.as_u16());
    }
    assert!(
        took < Duration::from_secs(5),
        "bounded by the Redis timeout: {took:?}"
    );
    let allowed = statuses.iter().filter(|s| **s == 200).count() as u64;
    assert!(
        (5..=6 + took.as_secs()).contains(&allowed),
        "the in-process burst of 5, plus what refilled in {took:?}: {statuses:?}"
    );
    assert!(statuses.contains(&429), "limited in-process: {statuses:?}");
    assert!(fallback_count() >= before + 12, "every check counted");
    println!("checked: with Redis down, 12 writes at once answered {statuses:?} in {took:?}");

    redis.restart().await;
    println!("restored: redis-server restarted empty");
    // The shared bucket starts full again (Redis lost it): writes succeed through Redis, and
    // no check falls back any more.
    let recovered = chat_tests::faults::eventually(Duration::from_secs(10), || async {
        let counted = fallback_count();
        let ok = app
            .call(Method::PATCH, &path, Some(json!({ "name": "back" })))
            .await
            .status
            == 200;
        ok && fallback_count() == counted
    })
    .await;
    assert!(recovered, "shared limiting resumes when Redis is back");
}

/// The served document says what the guards add, so generated clients and schema checks
/// expect the 429 (and, on the idempotent POSTs, the header and its 409).
#[tokio::test]
async fn the_openapi_document_lists_the_limits_and_the_idempotency_key() {
    let doc = chat_api::openapi();
    let json = serde_json::to_value(&doc).unwrap();
    let op = |path: &str, method: &str| json["paths"][path][method].clone();
    let messages = op(
        "/chat_applications/{token}/chats/{chat_number}/messages",
        "post",
    );
    for status in ["429", "409", "422", "400"] {
        assert!(messages["responses"][status].is_object(), "{status}");
    }
    let problem = &messages["responses"]["429"]["content"]["application/problem+json"];
    assert!(problem.is_object(), "{messages}");
    let params = messages["parameters"].as_array().unwrap();
    assert!(
        params
            .iter()
            .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"),
        "{params:?}"
    );
    assert!(op("/chat_applications/{token}/rotate_token", "post")["responses"]["409"].is_object());
    let list = op("/chat_applications/{token}/chats", "get");
    assert!(list["responses"]["429"].is_object());
    assert!(list["responses"]["409"].is_null(), "reads take no key");
    assert!(
        op("/up", "get")["responses"]["429"].is_null(),
        "health is not limited"
    );
}
