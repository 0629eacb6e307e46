//! What "the same request" means for an `Idempotency-Key`: the same route, the same path
//! numbers (not the token: a key survives a rotation) and the same parsed body, with the
//! Rails-style wrapper (`{"message": {...}}`) removed and object keys in a fixed order.

use serde_json::Value;

use crate::limit::sha256_hex;

/// `path` is the request path; its token segment is left out. `wrapper` is the route's
/// optional body wrapper, as `JsonObject` reads it.
pub fn fingerprint(method: &str, path: &str, wrapper: Option<&str>, body: &[u8]) -> String {
    let mut segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if segments.len() > 1 {
        segments[1] = "{token}";
    }
    let canonical = canonical_body(wrapper, body);
    sha256_hex(&format!("{method} /{}\n{canonical}", segments.join("/")))
}

fn canonical_body(wrapper: Option<&str>, body: &[u8]) -> String {
    if body.iter().all(u8::is_ascii_whitespace) {
        // No body and `{}` are the same request (a chat is created with either).
        return "{}".to_owned();
    }
    let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
        // Not JSON: the handler rejects it; only identical bytes are the same request.
        return format!("raw:{}", sha256_hex(&String::from_utf8_lossy(body)));
    };
    if let (Some(wrapper), Value::Object(object)) = (wrapper, &mut value)
        && let Some(Value::Object(inner)) = object.remove(wrapper)
    {
        value = Value::Object(inner);
    }
    let mut out = String::new();
    write_canonical(&value, &mut out);
    out
}

/// JSON with every object's keys sorted (serde_json keeps insertion order when any crate in
/// the build enables `preserve_order`, so its own output is not canonical).
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGES: &str = "/chat_applications/aaaa/chats/3/messages";

    fn fp(path: &str, body: &str) -> String {
        fingerprint("POST", path, Some("message"), body.as_bytes())
    }

    #[test]
    fn wrapped_and_unwrapped_bodies_are_the_same_request() {
        assert_eq!(
            fp(MESSAGES, r#"{"message":{"body":"x"}}"#),
            fp(MESSAGES, r#"{"body":"x"}"#)
        );
        assert_eq!(
            fp(MESSAGES, r#"{ "b": 1, "a": {"y": 2, "x": 1} }"#),
            fp(MESSAGES, r#"{"a":{"x":1,"y":2},"b":1}"#)
        );
    }

    #[test]
    fn different_bodies_or_chats_are_different_requests() {
        assert_ne!(
            fp(MESSAGES, r#"{"body":"x"}"#),
            fp(MESSAGES, r#"{"body":"y"}"#)
        );
        assert_ne!(
            fp(MESSAGES, r#"{"body":"x"}"#),
            fp(
                "/chat_applications/aaaa/chats/4/messages",
                r#"{"body":"x"}"#
            )
        );
        assert_ne!(fp(MESSAGES, "{not json"), fp(MESSAGES, "{not json!"));
    }

    #[test]
    fn the_token_is_not_part_of_the_request() {
        assert_eq!(
            fp(MESSAGES, r#"{"body":"x"}"#),
            fp(
                "/chat_applications/bbbb/chats/3/messages",
                r#"{"body":"x"}"#
            )
        );
    }

    #[test]
    fn an_empty_body_is_an_empty_object() {
        let chats = "/chat_applications/aaaa/chats";
        assert_eq!(
            fingerprint("POST", chats, None, b""),
            fingerprint("POST", chats, None, b"{}")
        );
    }
}
