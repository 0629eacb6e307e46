//! Faults injected in the middle of a burst of concurrent creates: Redis stopped (and back
//! empty), every MySQL connection of the test's database killed again and again, the search
//! backend down. Each test breaks only what it owns, prints what it injected and the counts
//! it checked, and holds that every acknowledged (201) write is stored, listed, indexed and
//! counted, with no number given twice. (`outages.rs` covers single requests during outages.)

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use chat_search::Access;
use chat_tests::faults::{
    Burst, Outcome, PrivateRedis, Proxy, SwitchableSearch, acknowledged_numbers, database_name,
    kill_connections_of, listed_numbers, searched_numbers,
};
use chat_tests::{Mode, TestApp};
use reqwest::StatusCode;

const CHATS: usize = 3;

async fn chats(app: &TestApp, token: &str) -> Vec<i64> {
    let mut chats = Vec::new();
    for _ in 0..CHATS {
        chats.push(app.new_chat(token).await);
    }
    chats
}

/// Every answer is a 201 or a 503 problem document: never a 500, a hang or a dropped request.
fn assert_created_or_503(outcomes: &[Outcome]) {
    for o in outcomes {
        match o.status {
            StatusCode::CREATED => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(o.content_type, "application/problem+json", "{o:?}");
                assert!(o.problem.is_some(), "{o:?}");
            }
            other => panic!("answered {other}: {o:?}"),
        }
    }
}

fn tally(outcomes: &[Outcome]) -> BTreeMap<String, usize> {
    let mut by = BTreeMap::new();
    for o in outcomes {
        let key = match &o.problem {
            Some(kind) => format!("{} {}", o.status.as_u16(), kind.rsplit('/').next().unwrap()),
            None => o.status.as_u16().to_string(),
        };
        *by.entry(key).or_insert(0) += 1;
    }
    by
}

/// What the api stores, lists, indexes and counts for this application, compared with what
/// the burst was told: every acknowledged number is there once, and the pipelines catch up.
async fn assert_nothing_acknowledged_is_lost(
    app: &TestApp,
    token: &str,
    chats: &[i64],
    acked: &BTreeMap<i64, BTreeSet<i64>>,
    exact: bool,
) {
    let empty = BTreeSet::new();
    let mut stored_chats = listed_numbers(app, &format!("/chat_applications/{token}/chats")).await;
    let acked_chats = acked.get(&0).unwrap_or(&empty);
    for chat in chats {
        assert!(stored_chats.contains(chat));
    }
    assert!(
        acked_chats.is_subset(&stored_chats),
        "acknowledged chats missing: {:?}",
        acked_chats.difference(&stored_chats).collect::<Vec<_>>()
    );
    if exact {
        stored_chats.retain(|n| !chats.contains(n));
        assert_eq!(&stored_chats, acked_chats, "stored chats = acknowledged");
    }
    let all_chats = listed_numbers(app, &format!("/chat_applications/{token}/chats")).await;
    let counted = app
        .wait_until(
            &format!("/chat_applications/{token}"),
            Duration::from_secs(30),
            |r| r.json["chats_count"].as_u64() == Some(all_chats.len() as u64),
        )
        .await;
    println!(
        "checked chats: acknowledged {} = stored {} (+{} set up) = counted {}",
        acked_chats.len(),
        all_chats.len() - chats.len(),
        chats.len(),
        counted.json["chats_count"]
    );
    for &chat in chats {
        let acked = acked.get(&chat).unwrap_or(&empty);
        let path = format!("/chat_applications/{token}/chats/{chat}/messages");
        let stored = listed_numbers(app, &path).await;
        assert!(
            acked.is_subset(&stored),
            "chat {chat}: acknowledged but not stored: {:?}",
            acked.difference(&stored).collect::<Vec<_>>()
        );
        if exact {
            assert_eq!(&stored, acked, "chat {chat}: stored = acknowledged");
        }
        // Through the page by number too, not only the listing.
        for number in [acked.first(), acked.last()].into_iter().flatten() {
            assert_eq!(
                app.get(&format!("{path}/{number}")).await.status,
                StatusCode::OK
            );
        }
        let deadline = Instant::now() + Duration::from_secs(45);
        let (caught_up, indexed) = loop {
            let indexed = searched_numbers(app, token, chat, "burst")
                .await
                .unwrap_or_default();
            if indexed == stored || Instant::now() > deadline {
                break (indexed == stored, indexed);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert!(
            caught_up,
            "chat {chat}: indexed {} of {} stored; missing {:?}",
            indexed.len(),
            stored.len(),
            stored.difference(&indexed).take(20).collect::<Vec<_>>()
        );
        let counted = app
            .wait_until(
                &format!("/chat_applications/{token}/chats/{chat}"),
                Duration::from_secs(30),
                |r| r.json["messages_count"].as_u64() == Some(stored.len() as u64),
            )
            .await;
        println!(
            "checked chat {chat}: acknowledged {} = stored {} = indexed {} = counted {}",
            acked.len(),
            stored.len(),
            indexed.len(),
            counted.json["messages_count"]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_stopped_for_ten_seconds_during_a_create_burst() {
    const TIMEOUT_MS: u64 = 500;
    // One create may make a few Redis round trips (allocate, then seed from the database and
    // allocate again), each bounded by the timeout; beyond that the machine is shared.
    const MARGIN: Duration = Duration::from_millis(1500);
    let mut redis = PrivateRedis::start().await;
    let url = redis.url();
    let app = TestApp::start_with(Mode::MySql, |s| {
        s.redis_url = Some(url);
        s.redis_timeout_ms = TIMEOUT_MS;
    })
    .await;
    let token = app.new_application("redis burst").await;
    let chats = chats(&app, &token).await;

    let burst = Burst::start(&app, &token, &chats, 9, 2);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // First hung (every call waits for its timeout), then gone (connections refused).
    redis.freeze();
    let stopped = burst.started.elapsed();
    println!(
        "injected: froze (SIGSTOP) the test's own redis-server (port {}) at {stopped:?}",
        redis.port
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    redis.stop();
    println!(
        "injected: killed it at {:?}; down for 10 s in all",
        burst.started.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    redis.restart().await;
    let restarted = burst.started.elapsed();
    println!("injected: restarted it EMPTY (no persistence) at {restarted:?}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let outcomes = burst.finish().await;
    println!("answers: {:?}", tally(&outcomes));

    assert_created_or_503(&outcomes);
    // Sent once the outage had begun and answered before Redis came back.
    let during: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.sent > stopped + Duration::from_millis(200) && o.sent + o.took < restarted)
        .collect();
    assert!(during.len() > 50, "only {} during the outage", during.len());
    let slowest = during.iter().map(|o| o.took).max().unwrap();
    println!(
        "during the outage: {} answers, slowest {slowest:?} (timeout {TIMEOUT_MS} ms)",
        during.len()
    );
    // Writes need no Redis: every create during the outage succeeds (numbered from the
    // database), each waiting at most the Redis timeout twice (rate limit, numbering).
    for o in &during {
        assert_eq!(o.status, StatusCode::CREATED, "{o:?}");
        assert!(
            o.took < Duration::from_millis(2 * TIMEOUT_MS) + MARGIN,
            "hung past the timeout: {o:?}"
        );
    }
    let before = outcomes
        .iter()
        .filter(|o| o.acknowledged() && o.sent < stopped)
        .count();
    let after = outcomes
        .iter()
        .filter(|o| o.acknowledged() && o.sent > restarted)
        .count();
    assert!(before > 0, "creates worked before the outage");
    assert!(
        after > 0,
        "creates work again without a restart once Redis is back"
    );
    let acked = acknowledged_numbers(&outcomes);
    println!("acknowledged: {before} before the outage, {after} after it");
    // Redis lost every counter; numbering re-seeded from the database, so numbers acknowledged
    // after the restart never repeat one from before (acknowledged_numbers asserts that).
    assert_nothing_acknowledged_is_lost(&app, &token, &chats, &acked, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_mysql_connection_killed_repeatedly_during_a_create_burst() {
    let app = TestApp::start(Mode::MySql).await;
    let database = database_name(app.settings.database_url.as_deref().unwrap());
    let token = app.new_application("kill burst").await;
    let chats = chats(&app, &token).await;

    let burst = Burst::start(&app, &token, &chats, 9, 2);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut rounds = 0;
    let mut killed = 0;
    let killing = Instant::now();
    while killing.elapsed() < Duration::from_secs(6) {
        killed += kill_connections_of(&database).await;
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    println!(
        "injected: {rounds} rounds of KILL CONNECTION on every processlist row of database \
         {database}: {killed} connections killed"
    );
    assert!(killed >= rounds, "each round found connections to kill");
    let calm = burst.started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let outcomes = burst.finish().await;
    println!("answers: {:?}", tally(&outcomes));

    assert_created_or_503(&outcomes);
    let after: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.sent > calm + Duration::from_millis(500))
        .collect();
    println!(
        "after the last KILL: {} answers, {} acknowledged",
        after.len(),
        after.iter().filter(|o| o.acknowledged()).count()
    );
    // On a loaded machine the burst may end before the pool has reconnected: then a create
    // after it must still succeed within a few seconds, without a restart.
    let mut later = None;
    if !after.iter().any(|o| o.acknowledged()) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while later.is_none() {
            let reply = app.new_message(&token, chats[0], "after the kills").await;
            if reply.status == StatusCode::CREATED {
                later = reply.json["number"].as_i64();
            } else {
                assert!(
                    Instant::now() < deadline,
                    "the pool reconnected: creates succeed again ({reply:?})"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let mut acked = acknowledged_numbers(&outcomes);
    if let Some(number) = later {
        acked.entry(chats[0]).or_default().insert(number);
    }
    assert!(acked.values().map(BTreeSet::len).sum::<usize>() > 50);
    // A connection killed between COMMIT and its reply leaves a stored row the client was
    // told failed (503): stored may exceed acknowledged, never the reverse.
    assert_nothing_acknowledged_is_lost(&app, &token, &chats, &acked, false).await;
}

/// The search backend is the embedded tantivy index behind an off switch
/// ([`SwitchableSearch`]): while down, every call of the port answers `SearchUnavailable`,
/// as the Elasticsearch adapter does when its cluster is unreachable (no Elasticsearch
/// server is available here, and a fake one would index nothing, so catch-up could not be
/// checked honestly). The real api, queue and indexer run around it; the indexer must keep
/// the refused batches and write them once the index is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn search_backend_down_during_a_create_burst() {
    let mut switch = None;
    let app = TestApp::start_with_search(
        Mode::MySql,
        |_| {},
        |index| {
            let s = SwitchableSearch::new(index);
            switch = Some(s.clone());
            s
        },
    )
    .await;
    let switch = switch.unwrap();
    let token = app.new_application("search burst").await;
    let chats = chats(&app, &token).await;

    switch.set_down(true);
    println!("injected: search index down");
    let burst = Burst::start(&app, &token, &chats, 6, 1);
    let search = format!(
        "/chat_applications/{token}/chats/{}/messages/search?q=burst",
        chats[0]
    );
    for _ in 0..5 {
        let started = Instant::now();
        let reply = app.get(&search).await;
        reply.assert_problem(503);
        assert_eq!(
            reply.json["type"],
            "https://chatsystem.dev/problems/search-unavailable"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let ready = app.get("/readyz").await;
    assert_eq!(
        ready.status,
        StatusCode::OK,
        "a search outage is reported, not fatal: {ready:?}"
    );
    let outcomes = burst.finish().await;
    println!("answers while down: {:?}", tally(&outcomes));
    for o in &outcomes {
        assert_eq!(
            o.status,
            StatusCode::CREATED,
            "creates need no search: {o:?}"
        );
    }
    let refused = switch.refused_upserts();
    println!(
        "refused while down: {refused} indexer batches, {} searches",
        switch.refused_searches()
    );
    assert!(refused > 0, "the indexer tried during the outage");

    switch.set_down(false);
    println!("restored: search index up");
    let acked = acknowledged_numbers(&outcomes);
    assert_nothing_acknowledged_is_lost(&app, &token, &chats, &acked, true).await;
}

/// The Elasticsearch adapter itself against an unreachable cluster: its `ELASTICSEARCH_URL`
/// is this test's own proxy, cut, so every connection is refused at the socket level: search
/// answers 503 problem JSON (not a 500) and creates still succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_elasticsearch_answers_503_and_creates_still_succeed() {
    // A port nobody listens on as the proxy's target; the proxy is cut as well.
    let nowhere = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = Proxy::start(nowhere).await;
    proxy.cut();
    let url = format!("http://{}", proxy.addr);
    let app = TestApp::start_with(Mode::MySql, |s| s.elasticsearch_url = Some(url)).await;
    // The settings really select the Elasticsearch adapter.
    let index = chat_search::open(&app.settings, Access::Reader)
        .await
        .unwrap();
    assert_eq!(index.backend(), "elasticsearch");
    println!(
        "injected: ELASTICSEARCH_URL = the test's own cut proxy {}",
        proxy.addr
    );
    let token = app.new_application("es down").await;
    let chat = app.new_chat(&token).await;
    for i in 0..5 {
        assert_eq!(
            app.new_message(&token, chat, &format!("kept {i}"))
                .await
                .status,
            StatusCode::CREATED
        );
    }
    let started = Instant::now();
    let reply = app
        .get(&format!(
            "/chat_applications/{token}/chats/{chat}/messages/search?q=kept"
        ))
        .await;
    reply.assert_problem(503);
    assert_eq!(
        reply.json["type"],
        "https://chatsystem.dev/problems/search-unavailable"
    );
    println!(
        "checked: 5 creates acknowledged; search answered 503 in {:?}",
        started.elapsed()
    );
    let stored = listed_numbers(
        &app,
        &format!("/chat_applications/{token}/chats/{chat}/messages"),
    )
    .await;
    assert_eq!(stored, (1..=5).collect());
}
