//! Live streams of a chat over SSE and WebSocket: the resume position a client asks for, the
//! subscription, and how each item is written on either transport.

pub mod sse;
pub mod ws;

use std::time::Duration;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use chat_core::feed::{End, Entry, EntryId, SubscribeError, Subscription};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::extract::Address;
use crate::state::AppState;

/// Where a client resumes: `Last-Event-ID` (what an EventSource sends when it reconnects, so it
/// wins) or `?after=`. Absent: only events from now on.
#[derive(Debug, Clone, Copy)]
pub struct Resume(pub Option<EntryId>);

#[derive(Deserialize)]
struct AfterQuery {
    after: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Resume {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get("last-event-id")
            .map(|v| {
                v.to_str()
                    .map(str::to_owned)
                    .map_err(|_| ApiError::BadRequest("Last-Event-ID: not ASCII".into()))
            })
            .transpose()?
            // An EventSource that never got an id sends none; an empty one means the same.
            .filter(|raw| !raw.trim().is_empty());
        let query = Query::<AfterQuery>::from_request_parts(parts, state)
            .await
            .map_err(|err| ApiError::BadRequest(err.body_text()))?
            .0
            .after;
        let (name, raw) = match (header, query) {
            (Some(raw), _) => ("Last-Event-ID", raw),
            (None, Some(raw)) => ("after", raw),
            (None, None) => return Ok(Resume(None)),
        };
        raw.trim()
            .parse()
            .map(|id| Resume(Some(id)))
            .map_err(|err| ApiError::BadRequest(format!("{name}: {err}")))
    }
}

/// A chat a client may stream: its ids, and this process's hub.
pub struct Target {
    streams: crate::state::Streams,
    application_id: i64,
    chat_id: i64,
    chat_number: i64,
}

/// Looks the chat up (404).
pub async fn target(state: &AppState, address: &Address) -> Result<Target, ApiError> {
    let streams = state.streams.clone().ok_or(ApiError::RouteNotFound)?;
    let chat = state.service.chat(&address.token, address.chat()).await?;
    Ok(Target {
        streams,
        application_id: chat.application_id,
        chat_id: chat.id,
        chat_number: chat.number,
    })
}

/// Subscribes (429 past the per-token cap); answers the heartbeat interval too.
pub async fn open(target: Target, resume: Resume) -> Result<(Subscription, Duration), ApiError> {
    let subscription = target
        .streams
        .hub
        .subscribe(
            target.application_id,
            target.chat_id,
            target.chat_number,
            resume.0,
        )
        .await
        .map_err(|err| match err {
            SubscribeError::TooMany { limit } => ApiError::TooManyStreams { limit },
            SubscribeError::Unavailable(err) => ApiError::Core(err),
        })?;
    Ok((subscription, target.streams.heartbeat))
}

/// The `reset` payload: what the client does next.
fn reset_data(id: EntryId) -> String {
    json!({
        "reason": "events after the requested id are no longer retained",
        "resync": "list the chat's messages, then follow from this event's id",
        "id": id.to_string(),
    })
    .to_string()
}

/// The final `error` payload.
fn end_data(end: End) -> String {
    let detail = match end {
        End::Slow => "the client read too slowly; reconnect with the last event id",
        End::Shutdown => "the server is shutting down; reconnect with the last event id",
        End::Deleted => "the chat was deleted",
        End::Unavailable => "events are unavailable right now; reconnect with the last event id",
    };
    json!({ "reason": end.reason(), "detail": detail }).to_string()
}

/// One WebSocket text frame: `{"type", "id", "data"}`.
fn frame(kind: &str, id: Option<EntryId>, data: &str) -> String {
    let kind = serde_json::to_string(kind).expect("strings serialise");
    match id {
        Some(id) => format!(r#"{{"type":{kind},"id":"{id}","data":{data}}}"#),
        None => format!(r#"{{"type":{kind},"data":{data}}}"#),
    }
}

fn event_frame(entry: &Entry) -> String {
    frame(&entry.kind, Some(entry.id), &entry.data)
}
