//! WebSocket: one JSON text frame per event (`{"type","id","data"}`), a ping every heartbeat,
//! and a close frame with the reason when the server ends the stream. The socket is ours here,
//! so a client that stops reading is cut off: a send that cannot complete within the
//! heartbeat interval drops the connection.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, close_code};
use chat_core::feed::{End, Item, Subscription};

use super::{end_data, event_frame, frame, reset_data};
use crate::state::Lifecycle;

pub async fn run(
    mut socket: WebSocket,
    mut subscription: Subscription,
    lifecycle: Arc<Lifecycle>,
    heartbeat: Duration,
) {
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    loop {
        let outgoing = tokio::select! {
            biased;
            () = lifecycle.stopped() => subscription.shut_down(),
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                // Pongs, and anything a client sends: the stream is one-way.
                Some(Ok(_)) => continue,
            },
            _ = ping.tick() => {
                if !send(&mut socket, Message::Ping(Default::default()), heartbeat).await {
                    return;
                }
                continue;
            }
            item = subscription.next() => match item {
                Some(item) => item,
                None => return,
            },
        };
        let message = match &outgoing {
            Item::Event(entry) => Message::Text(event_frame(entry).into()),
            Item::Reset(id) => Message::Text(frame("reset", Some(*id), &reset_data(*id)).into()),
            Item::End(end) => {
                // The reason as a frame the client can parse, then the close frame.
                let _ = send(
                    &mut socket,
                    Message::Text(frame("error", None, &end_data(*end)).into()),
                    heartbeat,
                )
                .await;
                let code = match end {
                    End::Slow => close_code::POLICY,
                    End::Shutdown => close_code::AWAY,
                    End::Deleted => close_code::NORMAL,
                    End::Unavailable => close_code::AGAIN,
                };
                Message::Close(Some(CloseFrame {
                    code,
                    reason: Utf8Bytes::from_static(end.reason()),
                }))
            }
        };
        let last = matches!(outgoing, Item::End(_));
        if !send(&mut socket, message, heartbeat).await || last {
            return;
        }
    }
}

/// False when the frame could not be written in time: the caller drops the connection.
async fn send(socket: &mut WebSocket, message: Message, within: Duration) -> bool {
    matches!(
        tokio::time::timeout(within, socket.send(message)).await,
        Ok(Ok(()))
    )
}
