//! The Elasticsearch adapter against a local HTTP mock (loopback only): the exact requests it
//! sends (mapping, bulk NDJSON, query DSL) and how it reads recorded responses, including
//! partial bulk failures, 429s and outages. The live suite is `tests/conformance.rs`.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use chat_core::Error;
use chat_core::search::{SearchCursor, SearchIndex};
use chat_search::elasticsearch::{ElasticsearchIndex, Retry, index_definition};
use common::{doc, request, versioned};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const INDEX: &str = "chat_messages_test";

fn fast_retry() -> Retry {
    Retry {
        attempts: 2,
        base_delay: Duration::from_millis(1),
    }
}

async fn adapter(server: &MockServer) -> ElasticsearchIndex {
    ElasticsearchIndex::with_retry(&server.uri(), INDEX, fast_retry()).unwrap()
}

/// A server whose index already exists.
async fn server_with_index() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("HEAD"))
        .and(path(format!("/{INDEX}")))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

/// Answers each request with the next template, repeating the last.
struct Sequence(Mutex<Vec<ResponseTemplate>>);

impl Sequence {
    fn new(mut templates: Vec<ResponseTemplate>) -> Self {
        templates.reverse();
        Sequence(Mutex::new(templates))
    }
}

impl Respond for Sequence {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut left = self.0.lock().unwrap();
        if left.len() > 1 {
            left.pop().unwrap()
        } else {
            left[0].clone()
        }
    }
}

fn bulk_response(items: Vec<Value>) -> ResponseTemplate {
    let errors = items
        .iter()
        .any(|i| i["index"]["status"].as_u64().unwrap() >= 300);
    ResponseTemplate::new(200).set_body_json(json!({ "took": 3, "errors": errors, "items": items }))
}

fn item(id: &str, status: u16) -> Value {
    let mut result = json!({ "_index": INDEX, "_id": id, "status": status });
    match status {
        200 | 201 => {
            result["result"] = json!("created");
            result["_version"] = json!(1);
        }
        400 => {
            result["error"] = json!({
                "type": "mapper_parsing_exception",
                "reason": "failed to parse field [created_at] of type [date]"
            })
        }
        409 => {
            result["error"] = json!({
                "type": "version_conflict_engine_exception",
                "reason": format!("[{id}]: version conflict, current version [3] is higher or equal to the one provided [2]")
            })
        }
        429 => {
            result["error"] = json!({
                "type": "es_rejected_execution_exception",
                "reason": "rejected execution of coordinating operation"
            })
        }
        _ => {}
    }
    json!({ "index": result })
}

fn ndjson(request: &Request) -> Vec<Value> {
    std::str::from_utf8(&request.body)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

async fn bulk_requests(server: &MockServer) -> Vec<Request> {
    let all = server.received_requests().await.unwrap();
    all.into_iter()
        .filter(|r| r.url.path() == format!("/{INDEX}/_bulk"))
        .collect()
}

#[tokio::test]
async fn creates_the_index_with_its_mapping_when_missing() {
    let server = MockServer::start().await;
    Mock::given(method("HEAD"))
        .and(path(format!("/{INDEX}")))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    let expected = json!({
        "settings": {
            "analysis": {
                "tokenizer": { "words": { "type": "pattern", "pattern": "[^\\p{L}\\p{N}]+" } },
                "analyzer": { "words": { "type": "custom", "tokenizer": "words", "filter": ["lowercase"] } }
            }
        },
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "chat_id": { "type": "long" },
                "number": { "type": "long" },
                "body": { "type": "text", "analyzer": "words", "index_prefixes": { "min_chars": 1, "max_chars": 10 } },
                "created_at": { "type": "date" },
                "version": { "type": "long", "index": false }
            }
        }
    });
    assert_eq!(index_definition(), expected);
    Mock::given(method("PUT"))
        .and(path(format!("/{INDEX}")))
        .and(body_json(&expected))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"acknowledged": true, "shards_acknowledged": true, "index": INDEX}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let es = adapter(&server).await;
    es.ensure_index().await.unwrap();
    // Known to exist from now on: no further checks.
    es.ensure_index().await.unwrap();
}

#[tokio::test]
async fn a_concurrently_created_index_is_fine() {
    let server = MockServer::start().await;
    Mock::given(method("HEAD"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": { "type": "resource_already_exists_exception", "reason": format!("index [{INDEX}] already exists") },
            "status": 400
        })))
        .expect(1)
        .mount(&server)
        .await;
    adapter(&server).await.ensure_index().await.unwrap();
}

#[tokio::test]
async fn leaves_an_existing_index_alone() {
    let server = server_with_index().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    adapter(&server).await.ensure_index().await.unwrap();
}

#[tokio::test]
async fn open_uses_elasticsearch_when_its_url_is_set() {
    let server = MockServer::start().await;
    Mock::given(method("HEAD"))
        .and(path("/from_settings"))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/from_settings"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = common::settings(dir.path());
    settings.elasticsearch_url = Some(server.uri());
    settings.search_index = "from_settings".into();
    let index = chat_search::open(&settings, chat_search::Access::Writer)
        .await
        .unwrap();
    assert_eq!(index.backend(), "elasticsearch");
    assert!(
        !dir.path().join("search").exists(),
        "no embedded index when Elasticsearch is used"
    );
}

#[tokio::test]
async fn bulk_sends_ndjson_with_deterministic_ids_and_external_versions() {
    let server = server_with_index().await;
    Mock::given(method("POST"))
        .and(path(format!("/{INDEX}/_bulk")))
        .respond_with(bulk_response(vec![item("3:1", 201), item("3:2", 201)]))
        .expect(1)
        .mount(&server)
        .await;
    let report = adapter(&server)
        .await
        .upsert(vec![
            doc(3, 1, "first <body>"),
            versioned(3, 2, 4, "second"),
        ])
        .await
        .unwrap();
    assert!(report.rejected.is_empty());
    let requests = bulk_requests(&server).await;
    assert_eq!(
        ndjson(&requests[0]),
        vec![
            json!({ "index": { "_id": "3:1", "version": 1, "version_type": "external" } }),
            json!({ "chat_id": 3, "number": 1, "body": "first <body>", "created_at": "2026-05-28T20:26:41.000123Z", "version": 1 }),
            json!({ "index": { "_id": "3:2", "version": 4, "version_type": "external" } }),
            json!({ "chat_id": 3, "number": 2, "body": "second", "created_at": "2026-05-28T20:26:42.000246Z", "version": 4 }),
        ]
    );
    assert!(
        std::str::from_utf8(&requests[0].body)
            .unwrap()
            .ends_with('\n')
    );
    assert_eq!(requests[0].headers["content-type"], "application/x-ndjson");
}

#[tokio::test]
async fn a_partly_failed_bulk_rejects_the_permanent_and_retries_the_transient() {
    let server = server_with_index().await;
    Mock::given(method("POST"))
        .and(path(format!("/{INDEX}/_bulk")))
        .respond_with(Sequence::new(vec![
            bulk_response(vec![item("1:1", 201), item("1:2", 400), item("1:3", 429)]),
            bulk_response(vec![item("1:3", 201)]),
        ]))
        .expect(2)
        .mount(&server)
        .await;
    let report = adapter(&server)
        .await
        .upsert(vec![doc(1, 1, "fine"), doc(1, 2, "bad"), doc(1, 3, "busy")])
        .await
        .unwrap();
    assert_eq!(
        report.rejected,
        vec![(
            "1:2".to_string(),
            "400 mapper_parsing_exception: failed to parse field [created_at] of type [date]"
                .to_string()
        )]
    );
    let requests = bulk_requests(&server).await;
    let retried = ndjson(&requests[1]);
    assert_eq!(retried.len(), 2, "only the refused document is sent again");
    assert_eq!(retried[0]["index"]["_id"], "1:3");
}

#[tokio::test]
async fn items_refused_on_every_attempt_make_the_call_unavailable() {
    let server = server_with_index().await;
    Mock::given(method("POST"))
        .and(path(format!("/{INDEX}/_bulk")))
        .respond_with(bulk_response(vec![item("1:1", 429)]))
        .expect(3)
        .mount(&server)
        .await;
    let err = adapter(&server)
        .await
        .upsert(vec![doc(1, 1, "busy")])
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::SearchUnavailable(ref m) if m.contains("es_rejected_execution_exception")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_version_conflict_means_a_newer_version_is_stored_already() {
    let server = server_with_index().await;
    Mock::given(method("POST"))
        .and(path(format!("/{INDEX}/_bulk")))
        .respond_with(bulk_response(vec![item("1:1", 409)]))
        .expect(1)
        .mount(&server)
        .await;
    let report = adapter(&server)
        .await
        .upsert(vec![versioned(1, 1, 2, "late redelivery")])
        .await
        .unwrap();
    assert!(report.rejected.is_empty());
}

#[tokio::test]
async fn a_whole_request_429_is_retried_after_a_pause() {
    let server = server_with_index().await;
    Mock::given(method("POST"))
        .and(path(format!("/{INDEX}/_bulk")))
        .respond_with(Sequence::new(vec![
            ResponseTemplate::new(429).set_body_json(json!({
                "error": { "type": "es_rejected_execution_exception", "reason": "rejected execution" },
                "status": 429
            })),
            bulk_response(vec![item("1:1", 201)]),
        ]))
        .expect(2)
        .mount(&server)
        .await;
    adapter(&server)
        .await
        .upsert(vec![doc(1, 1, "after a pause")])
        .await
        .unwrap();
}

#[tokio::test]
async fn a_503_that_lasts_is_search_unavailable() {
    let server = server_with_index().await;
    Mock::given(method("POST"))
        .and(path(format!("/{INDEX}/_bulk")))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({
            "error": { "type": "cluster_block_exception", "reason": "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered]" },
            "status": 503
        })))
        .expect(3)
        .mount(&server)
        .await;
    let err = adapter(&server)
        .await
        .upsert(vec![doc(1, 1, "down")])
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::SearchUnavailable(ref m) if m.contains("503")),
        "{err:?}"
    );
}

#[tokio::test]
async fn search_sends_the_query_dsl_and_reads_hits_and_the_next_cursor() {
    let server = server_with_index().await;
    let expected = json!({
        "size": 3,
        "track_total_hits": false,
        "_source": ["number", "body", "created_at"],
        "query": { "bool": {
            "filter": [ { "term": { "chat_id": 9 } } ],
            "must": [
                { "bool": { "should": [
                    { "match": { "body": { "query": "hel" } } },
                    { "prefix": { "body": { "value": "hel" } } }
                ], "minimum_should_match": 1 } },
                { "bool": { "should": [
                    { "match": { "body": { "query": "world" } } },
                    { "prefix": { "body": { "value": "world" } } }
                ], "minimum_should_match": 1 } }
            ]
        }},
        "sort": [ { "_score": "desc" }, { "number": "desc" } ],
        "search_after": [1.5, 77],
        "highlight": {
            "encoder": "html",
            "pre_tags": ["<em>"],
            "post_tags": ["</em>"],
            "fields": { "body": {
                "fragment_size": 150,
                "number_of_fragments": 1,
                "no_match_size": 150,
                "highlight_query": { "bool": { "should": [
                    { "wildcard": { "body": { "value": "hel*" } } },
                    { "wildcard": { "body": { "value": "world*" } } }
                ] } }
            }}
        }
    });
    let hit = |number: i64, score: f64, body: &str, highlight: &str| {
        json!({
            "_index": INDEX, "_id": format!("9:{number}"), "_score": score,
            "_source": { "number": number, "body": body, "created_at": "2026-05-28T20:26:41.000123Z" },
            "highlight": { "body": [highlight] },
            "sort": [score, number]
        })
    };
    Mock::given(method("POST"))
        .and(path(format!("/{INDEX}/_search")))
        .and(body_json(&expected))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "took": 2, "timed_out": false,
            "_shards": { "total": 1, "successful": 1, "skipped": 0, "failed": 0 },
            "hits": { "max_score": null, "hits": [
                hit(70, 1.2345678, "Hello <world>", "<em>Hello</em> &lt;<em>world</em>&gt;"),
                hit(60, 1.2345678, "help world", "<em>help</em> <em>world</em>"),
                hit(50, 0.5, "helium world", "<em>helium</em> <em>world</em>")
            ]}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let after = Some(SearchCursor {
        score: 1.5,
        number: 77,
    });
    let page = adapter(&server)
        .await
        .search(&request(9, "Hel, WORLD", 2, after))
        .await
        .unwrap();
    assert_eq!(page.hits.len(), 2);
    assert_eq!(page.hits[0].number, 70);
    assert_eq!(page.hits[0].body, "Hello <world>");
    assert_eq!(
        page.hits[0].highlight,
        "<em>Hello</em> &lt;<em>world</em>&gt;"
    );
    assert_eq!(page.hits[0].created_at, common::created_at(1));
    assert_eq!(page.hits[1].score, 1.2345678_f32);
    assert_eq!(
        page.next,
        Some(SearchCursor {
            score: 1.2345678,
            number: 60
        })
    );
}

#[tokio::test]
async fn the_last_page_has_no_cursor() {
    let server = server_with_index().await;
    Mock::given(method("POST"))
        .and(path(format!("/{INDEX}/_search")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "took": 1, "timed_out": false,
            "hits": { "hits": [ {
                "_id": "1:5", "_score": null,
                "_source": { "number": 5, "body": "last one", "created_at": "2026-01-01T00:00:00Z" },
                "sort": [0.2876821, 5]
            } ] }
        })))
        .mount(&server)
        .await;
    let page = adapter(&server)
        .await
        .search(&request(1, "last", 20, None))
        .await
        .unwrap();
    assert_eq!(page.hits.len(), 1);
    assert_eq!(
        page.hits[0].highlight, "last one",
        "no highlight: the escaped body"
    );
    assert_eq!(page.next, None);
    let requests = server.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&requests.last().unwrap().body).unwrap();
    assert!(body.get("search_after").is_none());
    assert_eq!(body["size"], 21);
}

#[tokio::test]
async fn a_blank_query_never_reaches_the_cluster() {
    let server = MockServer::start().await;
    let page = adapter(&server)
        .await
        .search(&request(1, " *** ", 20, None))
        .await
        .unwrap();
    assert!(page.hits.is_empty());
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_overloaded_search_is_search_unavailable() {
    let server = server_with_index().await;
    Mock::given(method("POST"))
        .and(path(format!("/{INDEX}/_search")))
        .respond_with(ResponseTemplate::new(429).set_body_string("{\"status\":429}"))
        .mount(&server)
        .await;
    let err = adapter(&server)
        .await
        .search(&request(1, "busy", 20, None))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SearchUnavailable(_)), "{err:?}");
}

#[tokio::test]
async fn an_unreachable_cluster_is_search_unavailable() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let es =
        ElasticsearchIndex::with_retry(&format!("http://127.0.0.1:{port}"), INDEX, fast_retry())
            .unwrap();
    assert!(matches!(es.ping().await, Err(Error::SearchUnavailable(_))));
    assert!(matches!(
        es.upsert(vec![doc(1, 1, "x")]).await,
        Err(Error::SearchUnavailable(_))
    ));
    assert!(matches!(
        es.search(&request(1, "x", 20, None)).await,
        Err(Error::SearchUnavailable(_))
    ));
}

#[tokio::test]
async fn ping_asks_the_cluster() {
    let server = MockServer::start().await;
    Mock::given(method("HEAD"))
        .and(path("/"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    adapter(&server).await.ping().await.unwrap();
}

#[tokio::test]
async fn a_cluster_down_at_start_up_does_not_stop_the_process() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = common::settings(dir.path());
    settings.elasticsearch_url = Some(format!("http://127.0.0.1:{port}"));
    let index = chat_search::open(&settings, chat_search::Access::Writer)
        .await
        .unwrap();
    assert!(matches!(
        index.ping().await,
        Err(Error::SearchUnavailable(_))
    ));
}

#[tokio::test]
async fn index_size_comes_from_the_primaries_store_stats() {
    let server = server_with_index().await;
    Mock::given(method("GET"))
        .and(path(format!("/{INDEX}/_stats/store")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "_shards": { "total": 2, "successful": 1, "failed": 0 },
            "_all": {
                "primaries": { "store": { "size_in_bytes": 123_456, "reserved_in_bytes": 0 } },
                "total": { "store": { "size_in_bytes": 246_912, "reserved_in_bytes": 0 } }
            },
            "indices": {}
        })))
        .expect(1)
        .mount(&server)
        .await;
    assert_eq!(adapter(&server).await.size_bytes().await.unwrap(), 123_456);
}

#[tokio::test]
async fn index_size_of_a_down_cluster_is_unavailable() {
    let server = server_with_index().await;
    Mock::given(method("GET"))
        .and(path(format!("/{INDEX}/_stats/store")))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let err = adapter(&server).await.size_bytes().await.unwrap_err();
    assert!(matches!(err, Error::SearchUnavailable(_)), "{err:?}");
}

#[tokio::test]
async fn deleting_chats_is_one_delete_by_query_on_their_ids() {
    let server = server_with_index().await;
    Mock::given(method("POST"))
        .and(path(format!("/{INDEX}/_delete_by_query")))
        .and(query_param("conflicts", "proceed"))
        .and(body_json(
            json!({ "query": { "terms": { "chat_id": [4, 9] } } }),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "took": 12, "timed_out": false, "total": 3, "deleted": 3, "batches": 1,
            "version_conflicts": 0, "noops": 0, "failures": []
        })))
        .expect(1)
        .mount(&server)
        .await;
    let index = adapter(&server).await;
    index.delete_chats(&[4, 9]).await.unwrap();
    // Nothing to delete sends nothing.
    index.delete_chats(&[]).await.unwrap();
}

#[tokio::test]
async fn a_delete_by_query_is_retried_after_429_and_failures_then_unavailable() {
    let server = server_with_index().await;
    let failed = ResponseTemplate::new(200).set_body_json(json!({
        "took": 5, "deleted": 1, "version_conflicts": 0,
        "failures": [{ "index": INDEX, "id": "4:1", "status": 429,
            "cause": { "type": "es_rejected_execution_exception", "reason": "queue full" } }]
    }));
    Mock::given(method("POST"))
        .and(path(format!("/{INDEX}/_delete_by_query")))
        .respond_with(Sequence::new(vec![
            ResponseTemplate::new(429),
            failed.clone(),
            ResponseTemplate::new(200).set_body_json(json!({ "deleted": 2, "failures": [] })),
        ]))
        .expect(3)
        .mount(&server)
        .await;
    adapter(&server).await.delete_chats(&[4]).await.unwrap();

    let stuck = server_with_index().await;
    Mock::given(method("POST"))
        .and(path(format!("/{INDEX}/_delete_by_query")))
        .respond_with(failed)
        .expect(3)
        .mount(&stuck)
        .await;
    let err = adapter(&stuck).await.delete_chats(&[4]).await.unwrap_err();
    assert!(matches!(err, Error::SearchUnavailable(_)), "{err:?}");
}
