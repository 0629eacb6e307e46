//! Server-Sent Events: `event:` the type, `id:` the entry id, `data:` the JSON payload; a
//! comment every heartbeat; a final `error` event when the server ends the stream.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderValue;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chat_core::feed::{Item, Subscription};
use futures::Stream;

use super::{end_data, reset_data};
use crate::state::Lifecycle;

pub fn respond(
    subscription: Subscription,
    lifecycle: Arc<Lifecycle>,
    heartbeat: Duration,
) -> Response {
    let events = Sse::new(events(subscription, lifecycle))
        .keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat"));
    let mut response = events.into_response();
    // Proxies that buffer responses (nginx) would hold events back.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

fn events(
    subscription: Subscription,
    lifecycle: Arc<Lifecycle>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(Some((subscription, lifecycle)), |state| async move {
        let (mut subscription, lifecycle) = state?;
        let item = tokio::select! {
            biased;
            () = lifecycle.stopped() => subscription.shut_down(),
            item = subscription.next() => item?,
        };
        let event = match &item {
            Item::Event(entry) => Event::default()
                .event(&entry.kind)
                .id(entry.id.to_string())
                .data(&entry.data),
            Item::Reset(id) => Event::default()
                .event("reset")
                .id(id.to_string())
                .data(reset_data(*id)),
            Item::End(end) => Event::default().event("error").data(end_data(*end)),
        };
        let next = match item {
            Item::End(_) => None,
            _ => Some((subscription, lifecycle)),
        };
        Some((Ok(event), next))
    })
}
