//! `_bulk` requests and what each item of the response means.

use chat_core::search::SearchDocument;
use chrono::SecondsFormat;
use elasticsearch::http::request::JsonBody;
use serde::Deserialize;
use serde_json::{Value, json};

/// Two NDJSON lines per document: the action with the deterministic id and external version
/// (Elasticsearch then keeps whichever version is highest), and the source.
pub fn lines(documents: &[&SearchDocument]) -> Vec<JsonBody<Value>> {
    let mut lines = Vec::with_capacity(documents.len() * 2);
    for doc in documents {
        lines.push(JsonBody::new(json!({
            "index": { "_id": doc.key(), "version": doc.version, "version_type": "external" }
        })));
        lines.push(JsonBody::new(source(doc)));
    }
    lines
}

pub fn source(doc: &SearchDocument) -> Value {
    json!({
        "chat_id": doc.chat_id,
        "number": doc.number,
        "body": doc.body,
        "created_at": doc.created_at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        "version": doc.version,
    })
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Written,
    /// Worth sending again after a pause (429, 5xx).
    Retry(String),
    /// Sending it again will not help; reported to the caller.
    Rejected(String),
}

#[derive(Deserialize)]
pub struct Response {
    pub items: Vec<Item>,
}

#[derive(Deserialize)]
pub struct Item {
    // The action is the single key: `index` here, but read any.
    #[serde(alias = "create", alias = "update", alias = "delete")]
    pub index: ItemResult,
}

#[derive(Deserialize)]
pub struct ItemResult {
    pub status: u16,
    #[serde(default)]
    pub error: Option<Value>,
}

impl ItemResult {
    pub fn outcome(&self) -> Outcome {
        match self.status {
            200..=299 => Outcome::Written,
            // A version conflict: the stored version is newer or equal, which is the goal.
            409 => Outcome::Written,
            429 | 500..=599 => Outcome::Retry(self.reason()),
            _ => Outcome::Rejected(self.reason()),
        }
    }

    fn reason(&self) -> String {
        let Some(error) = &self.error else {
            return format!("status {}", self.status);
        };
        let kind = error.get("type").and_then(Value::as_str).unwrap_or("error");
        let reason = error.get("reason").and_then(Value::as_str).unwrap_or("");
        format!("{} {kind}: {reason}", self.status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(status: u16, error: Option<Value>) -> ItemResult {
        ItemResult { status, error }
    }

    #[test]
    fn item_statuses_map_to_outcomes() {
        assert_eq!(item(201, None).outcome(), Outcome::Written);
        assert_eq!(item(409, None).outcome(), Outcome::Written);
        assert!(matches!(item(429, None).outcome(), Outcome::Retry(_)));
        assert!(matches!(item(503, None).outcome(), Outcome::Retry(_)));
        let rejected = item(
            400,
            Some(json!({"type": "mapper_parsing_exception", "reason": "bad"})),
        );
        assert_eq!(
            rejected.outcome(),
            Outcome::Rejected("400 mapper_parsing_exception: bad".into())
        );
    }
}
