//! The chat-system REST API. Route table → handler → one `ChatService` function; every error
//! becomes problem JSON in `error.rs`.

pub mod error;
pub mod extract;
pub mod guards;
pub mod idempotency;
pub mod limit;
pub mod links;
pub mod metrics;
pub mod routes;
pub mod serve;
pub mod state;
pub mod stream;
pub mod views;

use std::sync::OnceLock;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, header};
use axum::response::IntoResponse;
use axum::routing::get;
use chat_core::config::MAX_REQUEST_BYTES;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use error::{ApiError, Problem};
pub use state::{AppState, Lifecycle};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "chat-system",
        description = "Chat applications, numbered chats and numbered messages. Errors are RFC 9457 problem JSON.",
        license(name = "Apache-2.0")
    ),
    tags(
        (name = "applications"), (name = "chats"), (name = "messages"), (name = "streams"), (name = "health")
    )
)]
struct ApiDoc;

fn documented() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::applications::router())
        .merge(routes::chats::router())
        .merge(routes::messages::router())
        .merge(routes::search::router())
        .merge(routes::stream::router())
        .merge(routes::health::router())
        .routes(utoipa_axum::routes!(openapi_json))
}

/// This document (OpenAPI 3.1).
#[utoipa::path(get, path = "/openapi.json", tag = "health", responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
async fn openapi_json() -> impl IntoResponse {
    static DOC: OnceLock<String> = OnceLock::new();
    let doc = DOC.get_or_init(|| {
        serde_json::to_string_pretty(&openapi_document()).expect("OpenAPI document serialises")
    });
    ([(header::CONTENT_TYPE, "application/json")], doc.as_str())
}

/// The OpenAPI 3.1 document of every public endpoint, built from the same route table the
/// server runs, so a route cannot be served undocumented.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = documented().split_for_parts().1;
    limit::openapi::document(&mut doc);
    doc
}

/// The document as served: [`openapi`] plus the links from each create to what it created.
pub fn openapi_document() -> serde_json::Value {
    let mut doc = serde_json::to_value(openapi()).expect("OpenAPI document serialises");
    views::optional_bodies_are_not_null(&mut doc);
    links::add(&mut doc);
    doc
}

/// The public API (port `CHAT_LISTEN`).
pub fn public_router(state: AppState) -> Router {
    let (router, _) = documented().split_for_parts();
    let request_id = HeaderName::from_static("x-request-id");
    router
        .fallback(|| async { ApiError::RouteNotFound.into_response() })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed.into_response() })
        // Route layers see the route template; the limit runs first, so replays count too.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::layer,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit::layer,
        ))
        // Past the limit the body extractor answers 413 without buffering the rest.
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// The admin port (`CHAT_ADMIN_LISTEN`): liveness, readiness and Prometheus metrics.
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .route("/up", get(routes::health::up))
        .route("/readyz", get(routes::health::readyz))
        .route("/metrics", get(metrics_text))
        .fallback(|| async { ApiError::RouteNotFound.into_response() })
        .with_state(state)
}

async fn metrics_text(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> impl IntoResponse {
    let (open, idle) = state.service.pool_usage();
    let pool = &chat_core::metrics::DB_POOL;
    pool.with_label_values(&["idle"]).set(i64::from(idle));
    pool.with_label_values(&["in_use"])
        .set(i64::from(open.saturating_sub(idle)));
    match tokio::time::timeout(
        std::time::Duration::from_secs(1),
        state.service.search_index_bytes(),
    )
    .await
    {
        Ok(Ok(bytes)) => chat_core::metrics::SEARCH_INDEX_BYTES.set(bytes as i64),
        Ok(Err(err)) => tracing::debug!(error = %err, "search index size unavailable"),
        Err(_) => tracing::debug!("search index size timed out"),
    }
    if let Some(queue) = &state.queue {
        // A scrape must not hang on a Redis outage; stale gauges are better than none.
        match tokio::time::timeout(std::time::Duration::from_secs(1), queue.stats()).await {
            Ok(Ok(stats)) => state.metrics.observe_queue(&stats),
            Ok(Err(err)) => tracing::debug!(error = %err, "queue stats unavailable"),
            Err(_) => tracing::debug!("queue stats timed out"),
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// One span per request, carrying its request id, so every log line of the request has it.
/// The route template stands in for the path: a raw path would put the token in the logs.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |p| p.as_str());
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!("request", method = %request.method(), route, request_id = id)
}
