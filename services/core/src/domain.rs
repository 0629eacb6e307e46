//! The entities clients see, the rules their fields follow, and paging.

use chrono::{DateTime, SubsecRound, Utc};

use crate::error::{Error, Result};

/// Longest application name, in characters (MySQL `VARCHAR(255)` counts characters).
pub const MAX_NAME_CHARS: usize = 255;
pub const DEFAULT_PAGE_LIMIT: u32 = 50;
pub const MAX_PAGE_LIMIT: u32 = 200;

/// The chat application. `id` is internal and never leaves the process.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Application {
    pub id: i64,
    /// The token the client used (or was just given): the database keeps only its hash.
    #[sqlx(skip)]
    pub token: String,
    pub name: String,
    pub chats_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Chat {
    pub id: i64,
    pub application_id: i64,
    pub number: i64,
    pub messages_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Message {
    pub id: i64,
    pub chat_id: i64,
    pub number: i64,
    pub body: String,
    /// 1 at creation, +1 per edit: the search index keeps only the newest.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A numbering sequence: chat numbers inside an application, message numbers inside a chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sequence {
    Chats { application_id: i64 },
    Messages { chat_id: i64 },
}

/// Keyset paging on the number, so pages stay stable while rows are inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub cursor: Cursor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// Items with a number greater than this one, ascending.
    After(i64),
    /// Items with a number smaller than this one, descending.
    Before(i64),
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest {
            limit: DEFAULT_PAGE_LIMIT,
            cursor: Cursor::After(0),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The number to pass in the same cursor parameter for the next page; `None` on the last.
    pub next: Option<i64>,
}

impl<T> Page<T> {
    /// Builds a page from a query that fetched `limit + 1` rows: the extra row only tells that
    /// another page exists.
    pub fn from_overfetch(mut rows: Vec<T>, limit: u32, number: impl Fn(&T) -> i64) -> Self {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = if more { rows.last().map(number) } else { None };
        Page { items: rows, next }
    }
}

/// Timestamps are kept to the microsecond: what both databases store, so what a create returns
/// equals what a later read returns.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A fresh application token: 128 bits from the OS CSPRNG, as 32 lowercase hex characters.
pub fn new_token() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|err| Error::Config(format!("the OS random source failed: {err}")))?;
    Ok(hex::encode(bytes))
}

/// What the database keeps of a token: its SHA-256, lowercase hex. A dump of the table grants
/// nothing, and a 128-bit random token needs no salt or slow hash (nothing to brute-force).
pub fn token_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// Tokens are only ever 32 lowercase hex characters; anything else cannot exist, so it is
/// rejected without a database round trip.
pub fn is_well_formed_token(token: &str) -> bool {
    token.len() == 32
        && token
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub fn validate_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(invalid("name", "must not be empty"));
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(invalid(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters (got {chars})"),
        ));
    }
    Ok(())
}

pub fn validate_body(body: &str, max_bytes: usize) -> Result<()> {
    if body.trim().is_empty() {
        return Err(invalid("body", "must not be empty"));
    }
    if body.len() > max_bytes {
        return Err(invalid(
            "body",
            format!(
                "must be at most {max_bytes} UTF-8 bytes (got {})",
                body.len()
            ),
        ));
    }
    Ok(())
}

pub fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        field,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_32_lowercase_hex_and_distinct() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert!(is_well_formed_token(&a), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn malformed_tokens_are_recognised() {
        assert!(!is_well_formed_token("ABCDEF0123456789abcdef0123456789"));
        assert!(!is_well_formed_token("abc"));
        assert!(!is_well_formed_token("g0000000000000000000000000000000"));
    }

    #[test]
    fn names_count_characters_not_bytes() {
        assert!(validate_name(&"é".repeat(255)).is_ok());
        assert!(validate_name(&"é".repeat(256)).is_err());
        assert!(validate_name("   ").is_err());
    }

    #[test]
    fn bodies_count_utf8_bytes() {
        assert!(validate_body(&"é".repeat(5), 10).is_ok());
        assert!(validate_body(&"é".repeat(6), 10).is_err());
        assert!(validate_body("", 10).is_err());
    }

    #[test]
    fn overfetch_sets_next_only_when_more_rows_exist() {
        let page = Page::from_overfetch(vec![1, 2, 3], 2, |n| *n);
        assert_eq!(page.items, vec![1, 2]);
        assert_eq!(page.next, Some(2));
        let last = Page::from_overfetch(vec![1, 2], 2, |n| *n);
        assert_eq!(last.next, None);
    }
}
