//! Every error the API answers, and the one place where each becomes an HTTP status and an
//! RFC 9457 problem document.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chat_core::Error as Core;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug)]
pub enum ApiError {
    Core(Core),
    /// A problem with the path, the query or the JSON syntax.
    BadRequest(String),
    UnsupportedMediaType(String),
    PayloadTooLarge {
        limit: usize,
    },
    RouteNotFound,
    MethodNotAllowed,
    /// Over a rate limit; the client may retry after this many seconds.
    RateLimited {
        retry_after_s: u64,
    },
    /// The request with this `Idempotency-Key` is still being served.
    IdempotencyInFlight,
    /// This `Idempotency-Key` was first used with a different request.
    IdempotencyMismatch,
    /// The idempotency store (Redis) did not answer.
    IdempotencyUnavailable,
    /// The application already has this many live streams open on this instance.
    TooManyStreams {
        limit: usize,
    },
}

impl From<Core> for ApiError {
    fn from(err: Core) -> Self {
        ApiError::Core(err)
    }
}

/// `application/problem+json` (RFC 9457).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[schema(example = "https://chatsystem.dev/problems/invalid-field")]
    #[serde(rename = "type")]
    pub kind: String,
    #[schema(example = "Invalid field")]
    pub title: String,
    #[schema(example = 422)]
    pub status: u16,
    #[schema(example = "name: must not be empty")]
    pub detail: String,
    /// The body field at fault (422 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "name")]
    pub field: Option<String>,
}

impl ApiError {
    fn parts(
        &self,
    ) -> (
        StatusCode,
        &'static str,
        &'static str,
        String,
        Option<String>,
    ) {
        use StatusCode as S;
        match self {
            ApiError::BadRequest(detail) => (
                S::BAD_REQUEST,
                "bad-request",
                "Bad request",
                detail.clone(),
                None,
            ),
            ApiError::UnsupportedMediaType(detail) => (
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                detail.clone(),
                None,
            ),
            ApiError::PayloadTooLarge { limit } => (
                S::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload too large",
                format!("the request body must be at most {limit} bytes"),
                None,
            ),
            ApiError::RouteNotFound => (
                S::NOT_FOUND,
                "not-found",
                "Not found",
                "no such endpoint".into(),
                None,
            ),
            ApiError::MethodNotAllowed => (
                S::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                "this endpoint does not support that method (see the Allow header)".into(),
                None,
            ),
            ApiError::RateLimited { retry_after_s } => (
                S::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                format!("rate limit exceeded; retry in {retry_after_s} s"),
                None,
            ),
            ApiError::IdempotencyInFlight => (
                S::CONFLICT,
                "idempotency-in-flight",
                "Request in progress",
                "a request with this Idempotency-Key is still in progress; retry later".into(),
                None,
            ),
            ApiError::IdempotencyMismatch => (
                S::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency-Key reused",
                "this Idempotency-Key was used with a different request".into(),
                None,
            ),
            ApiError::IdempotencyUnavailable => (
                S::SERVICE_UNAVAILABLE,
                "redis-unavailable",
                "Service unavailable",
                "idempotency keys (Redis) are unavailable; retry later".into(),
                None,
            ),
            ApiError::TooManyStreams { limit } => (
                S::TOO_MANY_REQUESTS,
                "too-many-streams",
                "Too many requests",
                format!(
                    "this application already has {limit} live streams open here; close one or retry later"
                ),
                None,
            ),
            ApiError::Core(err) => match err {
                Core::NotFound(entity) => (
                    S::NOT_FOUND,
                    "not-found",
                    "Not found",
                    format!("{entity} not found"),
                    None,
                ),
                // The chat or application was purged between its lookup and the write.
                Core::ParentGone(_) => (
                    S::NOT_FOUND,
                    "not-found",
                    "Not found",
                    "the chat or application was deleted".into(),
                    None,
                ),
                Core::Invalid { field, reason } => (
                    S::UNPROCESSABLE_ENTITY,
                    "invalid-field",
                    "Invalid field",
                    format!("{field}: {reason}"),
                    Some((*field).to_owned()),
                ),
                Core::TokenRotated => (
                    S::CONFLICT,
                    "token-rotated",
                    "Conflict",
                    "this token was already rotated; use the token the rotation answered".into(),
                    None,
                ),
                Core::Contention { .. } | Core::Taken | Core::Deadlock(_) => (
                    S::SERVICE_UNAVAILABLE,
                    "numbering-contention",
                    "Service unavailable",
                    "could not allocate a number right now; retry the request".into(),
                    None,
                ),
                Core::DatabaseUnavailable(_) => (
                    S::SERVICE_UNAVAILABLE,
                    "database-unavailable",
                    "Service unavailable",
                    "the database is unavailable; retry later".into(),
                    None,
                ),
                Core::RedisUnavailable(_) => (
                    S::SERVICE_UNAVAILABLE,
                    "redis-unavailable",
                    "Service unavailable",
                    "numbering (Redis) is unavailable; retry later".into(),
                    None,
                ),
                Core::SearchUnavailable(_) => (
                    S::SERVICE_UNAVAILABLE,
                    "search-unavailable",
                    "Service unavailable",
                    "search is unavailable; retry later".into(),
                    None,
                ),
                Core::Database(_)
                | Core::Migration(_)
                | Core::Config(_)
                | Core::SearchRejected(_) => (
                    S::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal server error",
                    "an unexpected error occurred; it has been logged".into(),
                    None,
                ),
            },
        }
    }

    pub fn problem(&self) -> (StatusCode, Problem) {
        let (status, slug, title, detail, field) = self.parts();
        let problem = Problem {
            kind: format!("https://chatsystem.dev/problems/{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            field,
        };
        (status, problem)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, problem) = self.problem();
        match &self {
            ApiError::Core(err) if status.is_server_error() => {
                // The cause stays in the log; the client gets a stable, non-leaking detail.
                tracing::error!(error = %err, status = status.as_u16(), "request failed");
            }
            _ => {}
        }
        let mut response = (status, axum::Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let ApiError::RateLimited { retry_after_s } = self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
