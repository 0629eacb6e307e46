//! Request parsing: path numbers, paging parameters and JSON bodies (flat or Rails-wrapped),
//! each failure mapped to the status the contract names.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, RawPathParams, Request};
use axum::http::{StatusCode, header, request::Parts};
use chat_core::config::MAX_REQUEST_BYTES;
use chat_core::domain::{Cursor, DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, PageRequest, invalid};
use serde_json::{Map, Value};

use crate::error::ApiError;

/// The path parameters of every route, parsed: `{token}`, `{chat_number}`, `{number}`.
#[derive(Debug)]
pub struct Address {
    pub token: String,
    pub chat: Option<i64>,
    pub message: Option<i64>,
}

impl Address {
    pub fn chat(&self) -> i64 {
        self.chat.expect("route has {chat_number}")
    }
    pub fn message(&self) -> i64 {
        self.message.expect("route has {number}")
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Address {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|err| ApiError::BadRequest(err.body_text()))?;
        let mut address = Address {
            token: String::new(),
            chat: None,
            message: None,
        };
        for (name, value) in &params {
            match name {
                "token" => address.token = value.to_owned(),
                "chat_number" => address.chat = Some(parse_number("chat number", value)?),
                "number" => address.message = Some(parse_number("message number", value)?),
                _ => {}
            }
        }
        Ok(address)
    }
}

/// Numbers are positive decimal integers. Zero is well-formed but never assigned, so it is a
/// 404 further on rather than a 400 here.
fn parse_number(what: &str, raw: &str) -> Result<i64, ApiError> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::BadRequest(format!(
            "{what} must be a positive integer, got {raw:?}"
        )));
    }
    raw.parse()
        .map_err(|_| ApiError::BadRequest(format!("{what} is out of range: {raw}")))
}

/// `?limit=&after=` or `?limit=&before=` (the contract's keyset paging).
pub struct Paging(pub PageRequest);

impl<S: Send + Sync> FromRequestParts<S> for Paging {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(query) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|err| ApiError::BadRequest(err.body_text()))?;
        let limit = match query.get("limit") {
            None => DEFAULT_PAGE_LIMIT,
            Some(raw) => match raw.parse::<u32>() {
                Ok(n) if (1..=MAX_PAGE_LIMIT).contains(&n) => n,
                _ => {
                    return Err(ApiError::BadRequest(format!(
                        "limit must be an integer from 1 to {MAX_PAGE_LIMIT}, got {raw:?}"
                    )));
                }
            },
        };
        let cursor_value = |name: &str, raw: &str| {
            raw.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "{name} must be a non-negative integer, got {raw:?}"
                ))
            })
        };
        let cursor = match (query.get("after"), query.get("before")) {
            (Some(_), Some(_)) => {
                return Err(ApiError::BadRequest(
                    "pass either after or before, not both".into(),
                ));
            }
            (Some(raw), None) => Cursor::After(cursor_value("after", raw)?),
            (None, Some(raw)) => Cursor::Before(cursor_value("before", raw)?),
            (None, None) => Cursor::After(0),
        };
        Ok(Paging(PageRequest { limit, cursor }))
    }
}

/// A JSON object body, or `None` for an empty body (which needs no media type).
pub struct JsonObject(pub Option<Map<String, Value>>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let too_large = ApiError::PayloadTooLarge {
            limit: MAX_REQUEST_BYTES,
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_REQUEST_BYTES as u64) {
            return Err(too_large);
        }
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("(not text)").to_owned());
        let bytes = Bytes::from_request(req, state).await.map_err(|err| {
            if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge {
                    limit: MAX_REQUEST_BYTES,
                }
            } else {
                ApiError::BadRequest(err.body_text())
            }
        })?;
        if bytes.is_empty() {
            return Ok(JsonObject(None));
        }
        match content_type.as_deref() {
            Some(ct) if is_json(ct) => {}
            Some(ct) => {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "expected Content-Type: application/json, got {ct:?}"
                )));
            }
            None => {
                return Err(ApiError::UnsupportedMediaType(
                    "a request body needs Content-Type: application/json".into(),
                ));
            }
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(JsonObject(Some(map))),
            Ok(_) => Err(ApiError::BadRequest(
                "the request body must be a JSON object".into(),
            )),
            Err(err) => Err(ApiError::BadRequest(format!("malformed JSON: {err}"))),
        }
    }
}

fn is_json(content_type: &str) -> bool {
    content_type.parse::<mime::Mime>().is_ok_and(|m| {
        m.type_() == mime::APPLICATION
            && (m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON))
    })
}

impl JsonObject {
    /// A required string field, read from the object itself or from the Rails-style wrapper
    /// (`{"message": {"body": …}}`), so clients of the seed's API keep working.
    pub fn string(&self, wrapper: &str, field: &'static str) -> Result<String, ApiError> {
        let object = self.unwrapped(wrapper);
        match object.and_then(|o| o.get(field)) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Null) | None => Err(invalid(field, "is required").into()),
            Some(_) => Err(invalid(field, "must be a string").into()),
        }
    }

    fn unwrapped(&self, wrapper: &str) -> Option<&Map<String, Value>> {
        let object = self.0.as_ref()?;
        match object.get(wrapper) {
            Some(Value::Object(inner)) => Some(inner),
            _ => Some(object),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
        assert!(!is_json("garbage"));
    }

    #[test]
    fn numbers_must_be_decimal_digits() {
        assert_eq!(parse_number("n", "42").unwrap(), 42);
        for bad in ["", "-1", "1.5", "abc", "+3", "99999999999999999999"] {
            assert!(parse_number("n", bad).is_err(), "{bad}");
        }
    }
}
