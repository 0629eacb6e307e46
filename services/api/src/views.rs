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
            chats_count: a.chats_count,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

impl From<Chat> for ChatView {
    fn from(c: Chat) -> Self {
        ChatView {
            number: c.number,
            messages_count: c.messages_count,
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
    /// 1 to 255 characters, not blank. (The pattern: at least one character outside
    /// `char::is_whitespace`, which the server's `trim` strips; `\S` means other sets in other
    /// regex engines.)
    #[schema(
        example = "Support desk",
        min_length = 1,
        max_length = 255,
        pattern = "[^\\u0009-\\u000d \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    pub name: String,
}

/// Chats have no fields: `{}` (any members are ignored), or no body at all. Documented as an
/// object because any other JSON value is a 400.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ChatInput {}

/// `{"body": …}`, or Rails-style `{"message": {"body": …}}`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct MessageInput {
    /// Not blank; at most `CHAT_MAX_BODY_BYTES` UTF-8 bytes (default 65536).
    #[schema(
        example = "hello world",
        min_length = 1,
        pattern = "[^\\u0009-\\u000d \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
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

/// utoipa documents an `Option<T>` request body as "not required" and also as `null`-able; the
/// API means only the first (no body at all), and answers 400 to a JSON `null`. Drops the
/// `null` branch from every optional body's schema in the served document.
pub fn optional_bodies_are_not_null(doc: &mut serde_json::Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for operation in paths.values_mut().filter_map(|item| item.as_object_mut()) {
        for op in operation.values_mut() {
            let Some(body) = op.get_mut("requestBody") else {
                continue;
            };
            if body["required"] == serde_json::Value::Bool(true) {
                continue;
            }
            let Some(content) = body["content"].as_object_mut() else {
                continue;
            };
            for media in content.values_mut() {
                let schema = &mut media["schema"];
                if let Some(branches) = schema["oneOf"].as_array() {
                    let not_null: Vec<_> = branches
                        .iter()
                        .filter(|b| b["type"] != "null")
                        .cloned()
                        .collect();
                    if let [only] = not_null.as_slice() {
                        *schema = only.clone();
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// The characters `char::is_whitespace` holds, as ranges.
    const WHITESPACE: &[(u32, u32)] = &[
        (0x09, 0x0d),
        (0x20, 0x20),
        (0x85, 0x85),
        (0xa0, 0xa0),
        (0x1680, 0x1680),
        (0x2000, 0x200a),
        (0x2028, 0x2028),
        (0x2029, 0x2029),
        (0x202f, 0x202f),
        (0x205f, 0x205f),
        (0x3000, 0x3000),
    ];

    #[test]
    fn the_not_blank_pattern_is_the_servers_whitespace() {
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            let listed = WHITESPACE
                .iter()
                .any(|(lo, hi)| (*lo..=*hi).contains(&(c as u32)));
            assert_eq!(listed, c.is_whitespace(), "{:#x}", c as u32);
        }
        let class: String = WHITESPACE
            .iter()
            .map(|&(lo, hi)| match (lo, hi) {
                (0x20, 0x20) => " ".to_owned(),
                (lo, hi) if lo == hi => format!("\\u{lo:04x}"),
                (lo, hi) => format!("\\u{lo:04x}-\\u{hi:04x}"),
            })
            .collect();
        let pattern = format!("[^{class}]");
        let doc = crate::openapi_document();
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["ApplicationInput"]["properties"]["name"]["pattern"],
            pattern
        );
        assert_eq!(
            schemas["MessageInput"]["properties"]["body"]["pattern"],
            pattern
        );
        let search =
            &doc["paths"]["/chat_applications/{token}/chats/{chat_number}/messages/search"];
        let q = search["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "q")
            .unwrap();
        assert_eq!(q["schema"]["pattern"], pattern);
    }

    #[test]
    fn an_optional_body_is_not_a_nullable_one() {
        let doc = crate::openapi_document();
        let body = &doc["paths"]["/chat_applications/{token}/chats"]["post"]["requestBody"];
        assert_ne!(body["required"], true);
        assert_eq!(
            body["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ChatInput"
        );
    }
}
