//! Per-token rate limits (writes and reads apart) and a per-address limit on the one
//! unauthenticated write, `POST /chat_applications`. GCRA buckets live in Redis when the
//! deployment has one (shared by every replica, one round trip per check) and in-process
//! otherwise. Every limited response carries `RateLimit-Limit`, `RateLimit-Remaining` and
//! `RateLimit-Reset`; past the limit the answer is 429 with `Retry-After`.

pub mod address;
pub mod gcra;
pub mod local;
pub mod openapi;
pub mod redis;

use std::sync::LazyLock;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chat_core::config::Settings;
use prometheus::IntCounterVec;
use sha2::{Digest, Sha256};

pub use address::ClientAddress;
use gcra::{Decision, Outcome, Quota};

use crate::error::ApiError;
use crate::state::AppState;

/// Which bucket a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Write,
    Read,
    CreateApplication,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Write => "write",
            Scope::Read => "read",
            Scope::CreateApplication => "create_application",
        }
    }

    /// Routes under an application's token draw from that token's buckets; creating an
    /// application from the client address's. Health and the OpenAPI document are free.
    pub fn of(method: &Method, route: &str) -> Option<Scope> {
        if route == "/chat_applications" && method == Method::POST {
            Some(Scope::CreateApplication)
        } else if route.starts_with("/chat_applications/{token}") {
            Some(if is_read(method) {
                Scope::Read
            } else {
                Scope::Write
            })
        } else {
            None
        }
    }
}

fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

pub enum Buckets {
    Local(local::LocalBuckets),
    Redis(redis::RedisBuckets),
}

impl Buckets {
    pub async fn take(&self, key: &str, quota: Quota) -> ::redis::RedisResult<Outcome> {
        match self {
            Buckets::Local(b) => Ok(b.take(key, quota)),
            Buckets::Redis(b) => b.take(key, quota).await,
        }
    }
}

pub struct Limiter {
    buckets: Buckets,
    /// In-process buckets that stand in while Redis does not answer: writes keep succeeding
    /// during a Redis outage, each replica then enforcing the quota on its own (so N replicas
    /// allow up to N times it) until Redis is back.
    fallback: local::LocalBuckets,
    prefix: String,
    write: Option<Quota>,
    read: Option<Quota>,
    create_application: Option<Quota>,
    timeout: Duration,
    pub client: ClientAddress,
}

impl Limiter {
    pub fn new(buckets: Buckets, settings: &Settings) -> Limiter {
        LazyLock::force(&DECISIONS);
        LazyLock::force(&UNAVAILABLE);
        Limiter {
            buckets,
            // Empty until used: only the Redis buckets can fail over to it.
            fallback: local::LocalBuckets::default(),
            prefix: settings.redis_prefix.clone(),
            write: Quota::per_second(settings.rate_write_per_s, settings.rate_write_burst),
            read: Quota::per_second(settings.rate_read_per_s, settings.rate_read_burst),
            create_application: Quota::per_minute(
                settings.rate_create_app_per_min,
                settings.rate_create_app_burst,
            ),
            timeout: Duration::from_millis(settings.redis_timeout_ms),
            client: ClientAddress::new(settings.trusted_proxy_header.as_deref()),
        }
    }

    fn quota(&self, scope: Scope) -> Option<Quota> {
        match scope {
            Scope::Write => self.write,
            Scope::Read => self.read,
            Scope::CreateApplication => self.create_application,
        }
    }

    /// The bucket's key: the SHA-256 of the token (or address), never the token itself.
    fn key(&self, scope: Scope, identity: &str) -> String {
        format!(
            "{}ratelimit:{}:{}",
            self.prefix,
            scope.name(),
            sha256_hex(identity)
        )
    }

    /// One check: in the shared buckets, or in this process's when those do not answer
    /// within the Redis timeout.
    pub async fn check(&self, scope: Scope, identity: &str, quota: Quota) -> Decision {
        let key = self.key(scope, identity);
        let failure = match tokio::time::timeout(self.timeout, self.buckets.take(&key, quota)).await
        {
            Ok(Ok(outcome)) => return Decision::new(outcome, quota),
            Ok(Err(err)) => err.to_string(),
            Err(_) => "timed out".to_owned(),
        };
        tracing::warn!(error = %failure, scope = scope.name(), "rate limiter unavailable; limiting in-process");
        UNAVAILABLE.with_label_values(&["fallback"]).inc();
        Decision::new(self.fallback.take(&key, quota), quota)
    }
}

pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

static DECISIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let c = IntCounterVec::new(
        prometheus::Opts::new(
            "chat_rate_limit_decisions_total",
            "Rate limit checks, by scope and outcome (allowed, limited, unavailable)",
        ),
        &["scope", "outcome"],
    )
    .expect("valid metric");
    chat_core::metrics::REGISTRY
        .register(Box::new(c.clone()))
        .expect("registered once");
    c
});

static UNAVAILABLE: LazyLock<IntCounterVec> = LazyLock::new(|| {
    let c = IntCounterVec::new(
        prometheus::Opts::new(
            "chat_rate_limiter_unavailable_total",
            "Checks the shared (Redis) buckets could not make (Redis down or slow); each was made in-process instead (fail=\"fallback\")",
        ),
        &["fail"],
    )
    .expect("valid metric");
    chat_core::metrics::REGISTRY
        .register(Box::new(c.clone()))
        .expect("registered once");
    c
});

/// The middleware (a route layer: it needs the matched route template).
pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(limiter) = state.limiter.clone() else {
        return next.run(request).await;
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str());
    let Some(scope) = route.and_then(|r| Scope::of(request.method(), r)) else {
        return next.run(request).await;
    };
    let Some(quota) = limiter.quota(scope) else {
        return next.run(request).await;
    };
    let identity = match scope {
        Scope::CreateApplication => limiter.client.of(&request),
        Scope::Read | Scope::Write => token_of(request.uri().path()).to_owned(),
    };
    let d = limiter.check(scope, &identity, quota).await;
    let outcome = if d.allowed { "allowed" } else { "limited" };
    DECISIONS.with_label_values(&[scope.name(), outcome]).inc();
    let mut response = if d.allowed {
        next.run(request).await
    } else {
        ApiError::RateLimited {
            retry_after_s: d.retry_after_s.unwrap_or(1),
        }
        .into_response()
    };
    set_headers(response.headers_mut(), &d);
    response
}

/// `/chat_applications/{token}/…` → the token segment, as sent.
fn token_of(path: &str) -> &str {
    path.trim_start_matches('/')
        .split('/')
        .nth(1)
        .unwrap_or_default()
}

fn set_headers(headers: &mut HeaderMap, d: &Decision) {
    for (name, value) in [
        ("ratelimit-limit", u64::from(d.limit)),
        ("ratelimit-remaining", u64::from(d.remaining)),
        ("ratelimit-reset", d.reset_s),
    ] {
        headers.insert(name, HeaderValue::from(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_follow_method_and_route() {
        let s = |m: Method, r: &str| Scope::of(&m, r);
        assert_eq!(
            s(Method::POST, "/chat_applications"),
            Some(Scope::CreateApplication)
        );
        assert_eq!(
            s(Method::GET, "/chat_applications/{token}/chats"),
            Some(Scope::Read)
        );
        assert_eq!(
            s(Method::PATCH, "/chat_applications/{token}"),
            Some(Scope::Write)
        );
        assert_eq!(
            s(
                Method::POST,
                "/chat_applications/{token}/chats/{chat_number}/messages"
            ),
            Some(Scope::Write)
        );
        assert_eq!(s(Method::GET, "/up"), None);
        assert_eq!(s(Method::GET, "/openapi.json"), None);
    }

    #[test]
    fn the_token_is_the_second_segment() {
        assert_eq!(token_of("/chat_applications/abc/chats/1"), "abc");
        assert_eq!(token_of("/chat_applications/abc"), "abc");
    }

    #[test]
    fn keys_hold_a_digest_not_the_token() {
        let key = format!("p:ratelimit:write:{}", sha256_hex("secret-token"));
        assert!(!key.contains("secret-token"));
        assert_eq!(sha256_hex("").len(), 64);
    }
}
