//! Live streams of a chat's messages: Server-Sent Events and WebSocket.

use axum::extract::State;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::Address;
use crate::state::AppState;
use crate::stream::{self, Resume};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(stream_messages))
        .routes(routes!(stream_messages_ws))
}

/// Follow a chat's message events as Server-Sent Events.
///
/// Events: `message.created`, `message.updated`, `message.deleted` (`data`: the message's
/// public fields), each with `id:` its position in the chat's event log (commit order). Resume
/// with `Last-Event-ID` (an EventSource sends it itself) or `?after=`: every later event once,
/// then live ones. When events after that id are no longer retained the first event is `reset`:
/// list the messages, then follow from the reset's id. A comment arrives every heartbeat (15 s
/// by default). The server ends a stream with an `error` event (`data.reason`: `slow` when the
/// client reads too slowly, `shutdown`, `deleted`, `unavailable`).
#[utoipa::path(
    get, path = "/chat_applications/{token}/chats/{chat_number}/messages/stream", tag = "streams",
    params(
        ("token" = String, Path, description = "The application's token"),
        ("chat_number" = i64, Path, description = "The chat's number", minimum = 1),
        ("after" = Option<String>, Query, description = "Resume after this event id (`<ms>-<seq>`)", example = "1733050000000-0"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id; wins over `after`"),
    ),
    responses(
        (status = 200, description = "An event stream", content_type = "text/event-stream", body = String,
            example = "event: message.created\nid: 1733050000000-0\ndata: {\"number\":1,\"body\":\"hi\",\"version\":1,\"created_at\":\"2024-12-01T10:46:40Z\",\"updated_at\":\"2024-12-01T10:46:40Z\"}\n\n"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many open streams for this token", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn stream_messages(
    State(state): State<AppState>,
    address: Address,
    resume: Resume,
) -> ApiResult<Response> {
    let target = stream::target(&state, &address).await?;
    let (subscription, heartbeat) = stream::open(target, resume).await?;
    Ok(stream::sse::respond(
        subscription,
        state.lifecycle.clone(),
        heartbeat,
    ))
}

/// Follow a chat's message events over a WebSocket.
///
/// The same events, resume rules and reasons as the SSE stream, one JSON text frame each:
/// `{"type": "message.created", "id": "<ms>-<seq>", "data": {…}}`; `reset` frames likewise.
/// The server pings every heartbeat and ends a stream with an `error` frame and a close frame
/// whose reason is `slow`, `shutdown`, `deleted` or `unavailable`.
#[utoipa::path(
    get, path = "/chat_applications/{token}/chats/{chat_number}/messages/ws", tag = "streams",
    params(
        ("token" = String, Path, description = "The application's token"),
        ("chat_number" = i64, Path, description = "The chat's number", minimum = 1),
        ("after" = Option<String>, Query, description = "Resume after this event id (`<ms>-<seq>`)", example = "1733050000000-0"),
    ),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Malformed id, or not a WebSocket upgrade", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many open streams for this token", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn stream_messages_ws(
    State(state): State<AppState>,
    address: Address,
    resume: Resume,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let target = stream::target(&state, &address).await?;
    let upgrade = upgrade.map_err(|err| ApiError::BadRequest(err.body_text()))?;
    let (subscription, heartbeat) = stream::open(target, resume).await?;
    let lifecycle = state.lifecycle.clone();
    Ok(upgrade
        .on_upgrade(move |socket| stream::ws::run(socket, subscription, lifecycle, heartbeat))
        .into_response())
}
