//! One trace spans api → indexer / counter: the W3C trace context travels inside each queue
//! event. Its own test binary, because it installs the process-wide subscriber.

use std::time::Duration;

use chat_tests::{Mode, TestApp};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_create_and_its_indexing_and_counting_share_one_trace() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
        .init();

    let app = TestApp::start(Mode::Embedded).await;
    let token = app.new_application("traced").await;
    let chat = app.new_chat(&token).await;
    assert_eq!(app.new_message(&token, chat, "follow me").await.status, 201);
    app.wait_until(
        &format!("/chat_applications/{token}/chats/{chat}/messages/search?q=follow"),
        Duration::from_secs(5),
        |r| r.json["data"].as_array().is_some_and(|d| d.len() == 1),
    )
    .await;
    app.wait_until(
        &format!("/chat_applications/{token}/chats/{chat}"),
        Duration::from_secs(5),
        |r| r.json["messages_count"] == 1,
    )
    .await;

    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let spans = exporter.get_finished_spans().unwrap();
        let create = spans.iter().find(|s| {
            s.name == "request"
                && s.attributes.iter().any(|kv| {
                    kv.key.as_str() == "route"
                        && kv.value.as_str()
                            == "/chat_applications/{token}/chats/{chat_number}/messages"
                })
                && s.attributes
                    .iter()
                    .any(|kv| kv.key.as_str() == "method" && kv.value.as_str() == "POST")
        });
        let trace_has = |name: &str, trace| {
            spans
                .iter()
                .any(|s| s.name == name && s.span_context.trace_id() == trace)
        };
        if let Some(create) = create {
            let trace = create.span_context.trace_id();
            if trace_has("index_document", trace) && trace_has("count_event", trace) {
                let indexed = spans
                    .iter()
                    .find(|s| s.name == "index_document" && s.span_context.trace_id() == trace)
                    .unwrap();
                assert_ne!(
                    indexed.parent_span_id,
                    opentelemetry::trace::SpanId::INVALID,
                    "a child, not a root"
                );
                return;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no index_document/count_event span in the create's trace: {:?}",
            spans
                .iter()
                .map(|s| (s.name.as_ref(), s.span_context.trace_id()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
