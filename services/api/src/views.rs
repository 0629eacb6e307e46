//! What clients see: the response bodies (no internal id anywhere) and the documented request
//! bodies.

use chat_core::domain::{Application, Chat, Message, Page};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct ApplicationView {
    /// The application's secret: 32 lowercase hex characters. Clients address everything by it.
    #[schema(
        example = "3f9a1c0b7d2e4f6a8b9c0d1e2f3a4b5c",
        pattern = "^[0-9a-f]{32}$"
    )]
    pub token: String,
    #[schema(example = "Support desk")]
    pub name: String,
    /// Kept up to date asynchronously.
    pub chats_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatView {
    /// 1, 2, 3… inside the application.
    #[schema(example = 1, minimum = 1)]
    pub number: i64,
    /// Kept up to date asynchronously.
    pub messages_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    /// 1, 2, 3… inside the chat.
    #[schema(example = 1, minimum = 1)]
    pub number: i64,
    #[schema(example = "hello world")]
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The contract's paged envelope.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageView<T: ToSchema> {
    pub data: Vec<T>,
    /// Pass it in the same parameter (`after` or `before`) for the next page; null on the last.
    pub next: Option<i64>,
}

impl From<Application> for ApplicationView {
    fn from(a: Application) -> Self {
        ApplicationView {
            token: a.token,
            name: a.name,
            // A delete subtracts at once, possibly a row the counter had not counted yet;
            // the recount that follows corrects it, and meanwhile no count reads below 0.
            chats_count: a.chats_count.max(0),
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

impl From<Chat> for ChatView {
    fn from(c: Chat) -> Self {
        ChatView {
            number: c.number,
            messages_count: c.messages_count.max(0),
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

impl From<Message> for MessageView {
    fn from(m: Message) -> Self {
        MessageView {
            number: m.number,
            body: m.body,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

impl<T, V: From<T> + ToSchema> From<Page<T>> for PageView<V> {
    fn from(page: Page<T>) -> Self {
        PageView {
            data: page.items.into_iter().map(V::from).collect(),
            next: page.next,
        }
    }
}

/// `{"name": …}`, or Rails-style `{"chat_application": {"name": …}}`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the body; parsing goes through `JsonObject`.
pub struct ApplicationInput {
    /// 1 to 255 characters, not blank.
    #[schema(example = "Support desk", min_length = 1, max_length = 255)]
    pub name: String,
}

/// `{"body": …}`, or Rails-style `{"message": {"body": …}}`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct MessageInput {
    /// Not blank; at most `CHAT_MAX_BODY_BYTES` UTF-8 bytes (default 65536).
    #[schema(example = "hello world", min_length = 1)]
    pub body: String,
}

/// One search hit.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchHitView {
    #[schema(example = 3, minimum = 1)]
    pub number: i64,
    #[schema(example = "hello world")]
    pub body: String,
    pub created_at: DateTime<Utc>,
    /// A fragment of the body, matches wrapped in `<em>…</em>`, the rest HTML-escaped.
    #[schema(example = "<em>hello</em> world")]
    pub highlight: String,
}

/// Search results: the paged envelope with an opaque cursor.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchPageView {
    pub data: Vec<SearchHitView>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next: Option<String>,
}

impl From<chat_core::search::SearchPage> for SearchPageView {
    fn from(page: chat_core::search::SearchPage) -> Self {
        SearchPageView {
            data: page
                .hits
                .into_iter()
                .map(|h| SearchHitView {
                    number: h.number,
                    body: h.body,
                    created_at: h.created_at,
                    highlight: h.highlight,
                })
                .collect(),
            next: page.next.map(crate::routes::search::encode_cursor),
        }
    }
}
