//! The index definition, created at start-up when the index is missing.

use serde_json::{Value, json};

/// Prefixes of 1 to this many characters are indexed (`body._index_prefix`); a longer query
/// word falls back to a term-dictionary prefix walk, which is selective at that length.
pub const MAX_PREFIX_CHARS: u32 = 10;

/// `dynamic: strict` so a document that does not fit the mapping is rejected (reported) rather
/// than silently adding fields.
pub fn index_definition() -> Value {
    json!({
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "chat_id": { "type": "long" },
                "number": { "type": "long" },
                "body": {
                    "type": "text",
                    "analyzer": "standard",
                    "index_prefixes": { "min_chars": 1, "max_chars": MAX_PREFIX_CHARS }
                },
                "created_at": { "type": "date" },
                "version": { "type": "long", "index": false }
            }
        }
    })
}
