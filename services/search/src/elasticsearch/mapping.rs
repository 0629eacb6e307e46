//! The index definition, created at start-up when the index is missing.

use serde_json::{Value, json};

/// Prefixes of 1 to this many characters are indexed (`body._index_prefix`); a longer query
/// word falls back to a term-dictionary prefix walk, which is selective at that length.
pub const MAX_PREFIX_CHARS: u32 = 10;

/// `dynamic: strict` so a document that does not fit the mapping is rejected (reported) rather
/// than silently adding fields.
///
/// The `words` analyzer splits on anything that is not a letter or a digit and lowercases —
/// exactly how `query_words` splits a query and how the embedded index tokenizes — so
/// `hello.world`, `foo_bar` and `don't` are two words in the index as in the query. (The
/// `standard` analyzer would keep them whole and such searches would find nothing.)
pub fn index_definition() -> Value {
    json!({
        "settings": {
            "analysis": {
                "tokenizer": {
                    "words": { "type": "pattern", "pattern": "[^\\p{L}\\p{N}]+" }
                },
                "analyzer": {
                    "words": { "type": "custom", "tokenizer": "words", "filter": ["lowercase"] }
                }
            }
        },
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "chat_id": { "type": "long" },
                "number": { "type": "long" },
                "body": {
                    "type": "text",
                    "analyzer": "words",
                    "index_prefixes": { "min_chars": 1, "max_chars": MAX_PREFIX_CHARS }
                },
                "created_at": { "type": "date" },
                "version": { "type": "long", "index": false }
            }
        }
    })
}
