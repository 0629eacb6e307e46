//! The events every committed write emits through the outbox (docs/contract.md,
//! "Events"). They are internal: consumers (indexer, counter) need ids, clients never see them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{Chat, Message};

/// Bumped when a field changes meaning or disappears; consumers refuse versions they don't know
/// (the entry then ends in the dead-letter stream instead of being misread).
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Schema version.
    pub v: u32,
    #[serde(flatten)]
    pub event: Event,
    /// W3C `traceparent` of the request that made the change, so the workers continue its trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    #[serde(rename = "chat.created")]
    ChatCreated {
        application_id: i64,
        chat_id: i64,
        number: i64,
        created_at: DateTime<Utc>,
    },
    #[serde(rename = "message.created")]
    MessageCreated(MessageEvent),
    #[serde(rename = "message.updated")]
    MessageUpdated(MessageEvent),
    #[serde(rename = "message.deleted")]
    MessageDeleted(MessageDeleted),
    /// The chat is hidden at once; the counter role purges its rows and documents later.
    #[serde(rename = "chat.deleted")]
    ChatDeleted {
        application_id: i64,
        chat_id: i64,
        number: i64,
        deleted_at: DateTime<Utc>,
    },
    /// The application and its token are gone at once; its chats are purged later.
    #[serde(rename = "application.deleted")]
    ApplicationDeleted {
        application_id: i64,
        deleted_at: DateTime<Utc>,
    },
}

/// A hard-deleted message. `version` is the deleted row's version + 1, so the search index
/// takes the deletion as the newest version of the document and no late create or edit of it
/// can come back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageDeleted {
    pub application_id: i64,
    pub chat_id: i64,
    pub number: i64,
    pub version: i64,
    pub deleted_at: DateTime<Utc>,
}

/// What the indexer needs to write the document without reading the database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageEvent {
    pub application_id: i64,
    pub chat_id: i64,
    pub number: i64,
    pub body: String,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Envelope {
    pub fn new(event: Event) -> Self {
        Envelope {
            v: SCHEMA_VERSION,
            event,
            trace: crate::telemetry::current_traceparent(),
        }
    }

    /// The event as written on behalf of a request whose trace was captured earlier (a
    /// batched write runs outside the request's span).
    pub fn traced(mut self, trace: Option<String>) -> Self {
        self.trace = trace;
        self
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("events serialise")
    }

    /// Parses a queue payload, refusing unknown schema versions.
    pub fn parse(payload: &str) -> Result<Envelope, String> {
        let envelope: Envelope =
            serde_json::from_str(payload).map_err(|err| format!("unreadable event: {err}"))?;
        if envelope.v != SCHEMA_VERSION {
            return Err(format!(
                "event schema version {} is not {SCHEMA_VERSION}",
                envelope.v
            ));
        }
        Ok(envelope)
    }

    pub fn chat_created(chat: &Chat) -> Self {
        Envelope::new(Event::ChatCreated {
            application_id: chat.application_id,
            chat_id: chat.id,
            number: chat.number,
            created_at: chat.created_at,
        })
    }

    pub fn message_created(application_id: i64, message: &Message) -> Self {
        Envelope::new(Event::MessageCreated(MessageEvent::of(
            application_id,
            message,
        )))
    }

    pub fn message_updated(application_id: i64, message: &Message) -> Self {
        Envelope::new(Event::MessageUpdated(MessageEvent::of(
            application_id,
            message,
        )))
    }

    /// `message` is the row as the delete read it: the store bumps its version first (locking
    /// it against a concurrent edit), so `message.version` is already past every edit's.
    pub fn message_deleted(
        application_id: i64,
        message: &Message,
        deleted_at: DateTime<Utc>,
    ) -> Self {
        Envelope::new(Event::MessageDeleted(MessageDeleted {
            application_id,
            chat_id: message.chat_id,
            number: message.number,
            version: message.version,
            deleted_at,
        }))
    }

    pub fn chat_deleted(chat: &Chat, deleted_at: DateTime<Utc>) -> Self {
        Envelope::new(Event::ChatDeleted {
            application_id: chat.application_id,
            chat_id: chat.id,
            number: chat.number,
            deleted_at,
        })
    }

    pub fn application_deleted(application_id: i64, deleted_at: DateTime<Utc>) -> Self {
        Envelope::new(Event::ApplicationDeleted {
            application_id,
            deleted_at,
        })
    }
}

impl MessageEvent {
    fn of(application_id: i64, m: &Message) -> Self {
        MessageEvent {
            application_id,
            chat_id: m.chat_id,
            number: m.number,
            body: m.body.clone(),
            version: m.version,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_type_tag_and_version() {
        let e = Envelope::new(Event::ChatCreated {
            application_id: 1,
            chat_id: 2,
            number: 3,
            created_at: crate::domain::now(),
        });
        let json = e.to_json();
        assert!(
            json.contains("\"type\":\"chat.created\"") && json.contains("\"v\":1"),
            "{json}"
        );
        assert_eq!(Envelope::parse(&json).unwrap(), e);
    }

    #[test]
    fn deletions_carry_their_type_tags() {
        let at = crate::domain::now();
        for (event, tag) in [
            (
                Event::MessageDeleted(MessageDeleted {
                    application_id: 1,
                    chat_id: 2,
                    number: 3,
                    version: 4,
                    deleted_at: at,
                }),
                "message.deleted",
            ),
            (
                Event::ChatDeleted {
                    application_id: 1,
                    chat_id: 2,
                    number: 3,
                    deleted_at: at,
                },
                "chat.deleted",
            ),
            (
                Event::ApplicationDeleted {
                    application_id: 1,
                    deleted_at: at,
                },
                "application.deleted",
            ),
        ] {
            let e = Envelope::new(event);
            let json = e.to_json();
            assert!(json.contains(&format!("\"type\":\"{tag}\"")), "{json}");
            assert_eq!(Envelope::parse(&json).unwrap(), e);
        }
    }

    #[test]
    fn unknown_versions_and_garbage_are_refused() {
        assert!(Envelope::parse("{\"v\":99,\"type\":\"chat.created\"}").is_err());
        assert!(Envelope::parse("not json").is_err());
    }
}
