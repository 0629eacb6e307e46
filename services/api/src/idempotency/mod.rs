//! `Idempotency-Key` on the creating POSTs: a retry with the same key and the same request
//! replays the first response (status and body, plus `Idempotent-Replayed: true`) and creates
//! nothing. Keys are scoped per application (resolved from the token only when the header is
//! present, so they survive a token rotation) or, for `POST /chat_applications`, per client
//! address.
//!
//! Only successful (2xx) first responses are kept: a 4xx created nothing, so the retry runs
//! again (and a client may fix its request and reuse the key); a 5xx or 429 is worth retrying.

pub mod fingerprint;
pub mod local;
pub mod redis;
pub mod store;

use std::sync::LazyLock;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chat_core::Error as Core;
use chat_core::config::{MAX_REQUEST_BYTES, Settings};
use prometheus::IntCounterVec;

use crate::error::ApiError;
use crate::limit::{ClientAddress, sha256_hex};
use crate::state::AppState;
pub use store::{Begin, Entry, Store, Stored};

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED: &str = "idempotent-replayed";

/// How long a key stays claimed by a request that never finishes (its replica died): until
/// then retries answer 409, afterwards they run again.
const IN_FLIGHT_MS: u64 = 60_000;
/// Largest response kept (a message echoes a body of up to 1 MiB, escaped); larger ones are
/// not stored, and a retry runs again.
pub const MAX_STORED_BYTES: usize = 4 * 1024 * 1024;
const ROTATE: &str = "/chat_applications/{token}/rotate_token";
/// How long a rotation's response (the new token) can be replayed with the old token.
pub const ROTATE_REPLAY_MS: u64 = 10 * 60 * 1000;
/// The embedded store's bounds.
pub const LOCAL_CAPACITY: usize = 10_000;
pub const LOCAL_BUDGET_BYTES: usize = 64 * 1024 * 1024;

pub struct Idempotency {
    store: Store,
    prefix: String,
    ttl_ms: u64,
    timeout: Duration,
    client: ClientAddress,
}

/// The routes that honour the header, and the body wrapper each accepts.
fn wrapper_of(route: &str) -> Option<Option<&'static str>> {
    match route {
        "/chat_applications" => Some(Some("chat_application")),
        "/chat_applications/{token}/chats" => Some(None),
        "/chat_applications/{token}/chats/{chat_number}/messages" => Some(Some("message")),
        ROTATE => Some(None),
        _ => None,
    }
}

/// Whether POSTs to this route template honour the header.
pub fn honours(route: &str) -> bool {
    wrapper_of(route).is_some()
}

/// 1 to 255 visible ASCII characters.
pub fn valid_key(key: &[u8]) -> bool {
    (1..=255).contains(&key.len()) && key.iter().all(|b| (0x21..=0x7e).contains(b))
}

static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let c = IntCounterVec::new(
        prometheus::Opts::new(
            "chat_idempotency_requests_total",
            "Requests with an Idempotency-Key, by outcome (started, replayed, in_flight, mismatch, not_stored, unavailable)",
        ),
        &["outcome"],
    )
    .expect("valid metric");
    chat_core::metrics::REGISTRY
        .register(Box::new(c.clone()))
        .expect("registered once");
    c
});

fn count(outcome: &str) {
    REQUESTS.with_label_values(&[outcome]).inc();
}

impl Idempotency {
    pub fn new(store: Store, settings: &Settings) -> Idempotency {
        LazyLock::force(&REQUESTS);
        Idempotency {
            store,
            prefix: settings.redis_prefix.clone(),
            ttl_ms: settings.idempotency_ttl_s * 1000,
            timeout: Duration::from_millis(settings.redis_timeout_ms),
            client: ClientAddress::new(settings.trusted_proxy_header.as_deref()),
        }
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, store::Unavailable>>,
    ) -> Result<T, ApiError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(store::Unavailable(reason))) => {
                tracing::warn!(%reason, "idempotency store unavailable");
                count("unavailable");
                Err(ApiError::IdempotencyUnavailable)
            }
            Err(_) => {
                tracing::warn!("idempotency store timed out");
                count("unavailable");
                Err(ApiError::IdempotencyUnavailable)
            }
        }
    }
}

/// The middleware (a route layer: it needs the matched route template).
pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match handle(state, request, next).await {
        Ok(response) | Err(response) => response,
    }
}

async fn handle(state: AppState, request: Request, next: Next) -> Result<Response, Response> {
    let reject = |err: ApiError| err.into_response();
    let (Some(idem), Some(key)) = (
        state.idempotency.clone(),
        request.headers().get(HEADER).cloned(),
    ) else {
        return Ok(next.run(request).await);
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let Some(wrapper) = route.as_deref().and_then(wrapper_of) else {
        return Ok(next.run(request).await);
    };
    if request.method() != axum::http::Method::POST {
        return Ok(next.run(request).await);
    }
    if !valid_key(key.as_bytes()) {
        return Err(reject(ApiError::BadRequest(
            "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
        )));
    }
    let token = request
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let mut ttl_ms = idem.ttl_ms;
    let scope = if route.as_deref() == Some("/chat_applications") {
        format!("addr:{}", sha256_hex(&idem.client.of(&request)))
    } else if route.as_deref() == Some(ROTATE) {
        // A retried rotation comes with the old token, which no longer resolves: scope it by
        // that token instead. The replay hands out the new token, so it is kept briefly.
        ttl_ms = ttl_ms.min(ROTATE_REPLAY_MS);
        format!("token:{}", sha256_hex(&token))
    } else {
        match state.service.application(&token).await {
            Ok(app) => format!("app:{}", app.id),
            // The handler answers the same 404 for it; there is nothing to deduplicate.
            Err(Core::NotFound(_)) => return Ok(next.run(request).await),
            Err(err) => return Err(reject(err.into())),
        }
    };
    let storage_key = format!(
        "{}idempotency:{scope}:{}",
        idem.prefix,
        sha256_hex(&String::from_utf8_lossy(key.as_bytes()))
    );

    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_REQUEST_BYTES)
        .await
        .map_err(|_| {
            reject(ApiError::PayloadTooLarge {
                limit: MAX_REQUEST_BYTES,
            })
        })?;
    let fingerprint =
        fingerprint::fingerprint(parts.method.as_str(), parts.uri.path(), wrapper, &bytes);
    let marker = Entry::InFlight {
        owner: uuid::Uuid::new_v4().to_string(),
        fingerprint: fingerprint.clone(),
    };
    let found = idem
        .bounded(idem.store.begin(&storage_key, &marker, IN_FLIGHT_MS))
        .await
        .map_err(reject)?;
    match found {
        Begin::Started => {}
        Begin::Done {
            same_request: true,
            response,
        } => {
            count("replayed");
            return Ok(replay(&response));
        }
        Begin::InFlight { same_request: true } => {
            count("in_flight");
            return Err(reject(ApiError::IdempotencyInFlight));
        }
        Begin::Done { .. } | Begin::InFlight { .. } => {
            count("mismatch");
            return Err(reject(ApiError::IdempotencyMismatch));
        }
    }
    count("started");

    // The request runs in a task of its own (in the request's span): a client that disconnects
    // must not cancel a create half-way (committed but never recorded), or its retry would
    // create it again.
    let request = Request::from_parts(parts, Body::from(bytes));
    let span = tracing::Span::current();
    let task = tokio::spawn(tracing::Instrument::instrument(
        async move {
            let response = next.run(request).await;
            let (parts, body) = response.into_parts();
            // Every response of these routes is a small JSON document.
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let response = Response::from_parts(parts, Body::from(bytes.clone()));
            let kept = keepable(&response, &bytes);
            let recorded = match kept {
                Some(stored) => {
                    let done = Entry::Done {
                        fingerprint,
                        response: stored,
                    };
                    idem.bounded(idem.store.finish(&storage_key, &marker, &done, ttl_ms))
                        .await
                }
                None => {
                    count("not_stored");
                    idem.bounded(idem.store.abandon(&storage_key, &marker))
                        .await
                }
            };
            if recorded.is_err() {
                // The create stands; the marker expires after IN_FLIGHT_MS and a retry after
                // that runs again.
                tracing::warn!("idempotency result not recorded");
            }
            response
        },
        span,
    ));
    task.await.map_err(|err| {
        tracing::error!(error = %err, "idempotent request task failed");
        // Only a panic in the handler gets here: the same 500 it would have been without us.
        reject(ApiError::Core(Core::Database(format!(
            "request task: {err}"
        ))))
    })
}

/// What is kept of a first response: only successes, only if small enough.
fn keepable(response: &Response, body: &[u8]) -> Option<Stored> {
    if !response.status().is_success() || body.len() > MAX_STORED_BYTES {
        return None;
    }
    let text = |name: header::HeaderName| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Some(Stored {
        status: response.status().as_u16(),
        content_type: text(header::CONTENT_TYPE),
        location: text(header::LOCATION),
        body: String::from_utf8(body.to_vec()).ok()?,
    })
}

fn replay(stored: &Stored) -> Response {
    let mut response = Response::new(Body::from(stored.body.clone()));
    *response.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, &stored.content_type),
        (header::LOCATION, &stored.location),
    ] {
        if let Some(value) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, value);
        }
    }
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_up_to_255() {
        assert!(valid_key(b"a"));
        assert!(valid_key(&[b'~'; 255]));
        assert!(valid_key(b"3f1c-retry_2:x"));
        assert!(!valid_key(b""));
        assert!(!valid_key(&[b'a'; 256]));
        assert!(!valid_key(b"has space"));
        assert!(!valid_key(b"tab\t"));
        assert!(!valid_key("é".as_bytes()));
    }

    #[test]
    fn only_successes_are_kept() {
        let ok = Response::builder()
            .status(201)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::empty())
            .unwrap();
        let kept = keepable(&ok, br#"{"number":1}"#).unwrap();
        assert_eq!(kept.status, 201);
        assert_eq!(kept.content_type.as_deref(), Some("application/json"));
        for status in [400, 404, 422, 429, 500, 503] {
            let r = Response::builder()
                .status(status)
                .body(Body::empty())
                .unwrap();
            assert!(keepable(&r, b"{}").is_none(), "{status}");
        }
        let big = vec![b'x'; MAX_STORED_BYTES + 1];
        assert!(keepable(&ok, &big).is_none());
    }
}
