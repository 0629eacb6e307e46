//! The feed port: one append-only event log per chat, what live streams are served from. The
//! outbox relay appends each chat's message events after publishing them to the queue
//! ([`Tee`]); every api replica follows the logs of the chats its clients watch ([`Hub`]).
//! Both adapters (Redis streams, in-process) pass one conformance suite
//! (`services/core/tests/feed_conformance.rs`).
//!
//! An entry's id is its position in its chat's log: commit order (the relay publishes in outbox
//! order), not number order. Logs are capped by length and age, so a reader resuming from an id
//! can find entries after it gone; each entry records the id before it (`prev`), which makes
//! that exact to detect: the first entry after `after` has `prev > after`, or the log has
//! entries past `after` but none left to read (see [`Hub`]).

mod hub;
mod local;
mod redis;
mod tee;

pub use self::hub::{
    APPLICATION_DELETED, CHAT_DELETED, End, Hub, Item, StreamSettings, SubscribeError, Subscription,
};
pub use self::local::LocalFeed;
pub use self::redis::RedisFeed;
pub use self::tee::Tee;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use crate::error::Result;
use crate::events::{Envelope, Event, MessageEvent};

/// A position in a chat's log, `<milliseconds>-<sequence>` like a Redis stream id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EntryId {
    pub ms: u64,
    pub seq: u64,
}

impl EntryId {
    /// Before every entry.
    pub const ZERO: EntryId = EntryId { ms: 0, seq: 0 };
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadEntryId;

impl fmt::Display for BadEntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event id is <milliseconds>-<sequence>, e.g. 1733050000000-0")
    }
}

impl FromStr for EntryId {
    type Err = BadEntryId;

    fn from_str(raw: &str) -> Result<Self, BadEntryId> {
        let (ms, seq) = raw.split_once('-').ok_or(BadEntryId)?;
        let digits = |s: &str| {
            if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(BadEntryId);
            }
            s.parse::<u64>().map_err(|_| BadEntryId)
        };
        Ok(EntryId {
            ms: digits(ms)?,
            seq: digits(seq)?,
        })
    }
}

/// One event to append to a chat's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Append {
    pub chat_id: i64,
    /// The public event type (`message.created`, …).
    pub kind: String,
    /// Identifies the event itself: an append whose key the log already holds is skipped, so a
    /// relay that crashed after appending and before marking its rows published (and appends
    /// them again) adds no duplicate.
    pub key: String,
    /// The public payload (JSON): no internal id.
    pub data: String,
}

/// One entry of a chat's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: EntryId,
    /// The entry before it in the same log when it was appended (`ZERO` for the first).
    pub prev: EntryId,
    /// The first entry of this log's incarnation: a log lost (Redis restarted empty) or expired
    /// and written anew has a later origin than any id a client got from the old one.
    pub origin: EntryId,
    /// The event's key (see [`Append::key`]).
    pub key: String,
    pub kind: String,
    pub data: String,
}

#[async_trait]
pub trait Feed: Send + Sync + 'static {
    /// Appends in order; answers each item's id, `None` where the log already held its key.
    async fn append(&self, items: &[Append]) -> Result<Vec<Option<EntryId>>>;

    /// The id of the newest entry of the chat's log, `None` when it has none (never written,
    /// or expired after a long idle time, or lost with Redis).
    async fn head(&self, chat_id: i64) -> Result<Option<EntryId>>;

    /// Up to `max` retained entries after `after`, oldest first, without waiting.
    async fn range(&self, chat_id: i64, after: EntryId, max: usize) -> Result<Vec<Entry>>;

    /// Entries after each cursor, up to `max` per chat, waiting up to `block` for the first
    /// one (or an [`Feed::interrupt`]). Only chats with entries appear in the answer. One caller
    /// per process (the [`Hub`]'s reader).
    async fn follow(
        &self,
        cursors: &[(i64, EntryId)],
        max: usize,
        block: Duration,
    ) -> Result<Vec<(i64, Vec<Entry>)>>;

    /// Ends a `follow` that is waiting, so it starts again with a new set of cursors.
    async fn interrupt(&self) -> Result<()>;

    fn backend(&self) -> &'static str;
}

/// Caps of every chat's log.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Entries kept per chat (approximately: Redis trims whole nodes).
    pub max_len: u64,
    /// Entries older than this are dropped; an idle chat's log expires after twice it.
    pub max_age: Duration,
}

/// The feed entries of a batch of outbox payloads: chat message events with their public
/// payload. Other events (and unreadable payloads, which the queue consumers dead-letter) have
/// no place in a chat's stream.
pub fn appends(payloads: &[String]) -> Vec<Append> {
    payloads
        .iter()
        .filter_map(|payload| Envelope::parse(payload).ok())
        .filter_map(|envelope| append_of(&envelope.event))
        .collect()
}

/// The log of an application's own events (its deletion), beside its chats' logs: chat ids are
/// positive, so the negated application id cannot collide with one.
pub fn application_log(application_id: i64) -> i64 {
    -application_id
}

fn append_of(event: &Event) -> Option<Append> {
    match event {
        Event::MessageCreated(m) => Some(message_append("message.created", "c", m)),
        Event::MessageUpdated(m) => Some(message_append("message.updated", "u", m)),
        Event::MessageDeleted(d) => Some(Append {
            chat_id: d.chat_id,
            kind: "message.deleted".into(),
            key: format!("d:{}", d.number),
            data: json!({ "number": d.number, "deleted_at": d.deleted_at }).to_string(),
        }),
        Event::ChatDeleted {
            chat_id,
            number,
            deleted_at,
            ..
        } => Some(Append {
            chat_id: *chat_id,
            kind: CHAT_DELETED.into(),
            key: CHAT_DELETED.into(),
            data: json!({ "number": number, "deleted_at": deleted_at }).to_string(),
        }),
        Event::ApplicationDeleted {
            application_id,
            deleted_at,
        } => Some(Append {
            chat_id: application_log(*application_id),
            kind: APPLICATION_DELETED.into(),
            key: APPLICATION_DELETED.into(),
            data: json!({ "deleted_at": deleted_at }).to_string(),
        }),
        Event::ChatCreated { .. } => None,
    }
}

fn message_append(kind: &str, tag: &str, m: &MessageEvent) -> Append {
    Append {
        chat_id: m.chat_id,
        kind: kind.to_owned(),
        key: format!("{tag}:{}:{}", m.number, m.version),
        data: json!({
            "number": m.number,
            "body": m.body,
            "version": m.version,
            "created_at": m.created_at,
            "updated_at": m.updated_at,
        })
        .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_strictly_and_order_as_number_pairs() {
        let a: EntryId = "1733050000000-2".parse().unwrap();
        assert_eq!(a.to_string(), "1733050000000-2");
        assert!(a < "1733050000000-10".parse().unwrap());
        assert!(a < "1733050000001-0".parse().unwrap());
        for bad in [
            "",
            "12",
            "-1",
            "1-",
            "a-1",
            "1-1-1",
            " 1-1",
            "1-+1",
            "99999999999999999999-0",
        ] {
            assert!(bad.parse::<EntryId>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn message_events_map_to_public_payloads_without_ids() {
        let message = crate::domain::Message {
            id: 77,
            chat_id: 5,
            number: 3,
            body: "hi".into(),
            version: 2,
            created_at: crate::domain::now(),
            updated_at: crate::domain::now(),
        };
        let payloads = [
            Envelope::message_updated(9, &message).to_json(),
            Envelope::chat_created(&crate::domain::Chat {
                id: 5,
                application_id: 9,
                number: 1,
                messages_count: 0,
                created_at: crate::domain::now(),
                updated_at: crate::domain::now(),
            })
            .to_json(),
            "garbage".to_owned(),
        ];
        let got = appends(&payloads);
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].chat_id, got[0].kind.as_str()),
            (5, "message.updated")
        );
        assert_eq!(got[0].key, "u:3:2");
        let data: serde_json::Value = serde_json::from_str(&got[0].data).unwrap();
        assert_eq!(data["number"], 3);
        assert_eq!(data["body"], "hi");
        // The payload is exactly the public fields: no internal id under any name. Compared as a
        // key set (not by searching the text for "77", which the timestamps can contain).
        let mut keys: Vec<&str> = data
            .as_object()
            .expect("payload is an object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["body", "created_at", "number", "updated_at", "version"],
            "{data}"
        );
        assert!(data.as_object().unwrap().values().all(|v| v != 77));
    }

    #[test]
    fn deletions_map_to_their_logs() {
        let at = crate::domain::now();
        let message = crate::domain::Message {
            id: 77,
            chat_id: 5,
            number: 3,
            body: "hi".into(),
            version: 2,
            created_at: at,
            updated_at: at,
        };
        let chat = crate::domain::Chat {
            id: 5,
            application_id: 9,
            number: 1,
            messages_count: 0,
            created_at: at,
            updated_at: at,
        };
        let got = appends(&[
            Envelope::message_deleted(9, &message, at).to_json(),
            Envelope::chat_deleted(&chat, at).to_json(),
            Envelope::application_deleted(9, at).to_json(),
        ]);
        let logs: Vec<(i64, &str)> = got.iter().map(|a| (a.chat_id, a.kind.as_str())).collect();
        assert_eq!(
            logs,
            [
                (5, "message.deleted"),
                (5, CHAT_DELETED),
                (application_log(9), APPLICATION_DELETED)
            ]
        );
        let deleted: serde_json::Value = serde_json::from_str(&got[0].data).unwrap();
        assert_eq!(deleted["number"], 3);
        assert!(deleted["deleted_at"].is_string());
        assert_eq!(deleted.as_object().unwrap().len(), 2);
        let chat: serde_json::Value = serde_json::from_str(&got[1].data).unwrap();
        assert_eq!(chat["number"], 1);
    }
}
