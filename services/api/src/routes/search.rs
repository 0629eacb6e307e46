use std::collections::HashMap;

use axum::Json;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use chat_core::search::{DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT, SearchCursor};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::Address;
use crate::state::AppState;
use crate::views::SearchPageView;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(search_messages))
}

/// Search one chat's messages: every word of `q` must match a word or a word prefix,
/// case-insensitively; ranked by relevance, ties by newest. Indexed asynchronously, usually
/// within a second of the create.
#[utoipa::path(
    get, path = "/chat_applications/{token}/chats/{chat_number}/messages/search", tag = "messages",
    params(
        ("token" = String, Path, description = "The application's token"),
        ("chat_number" = i64, Path, description = "The chat's number", minimum = 1),
        ("q" = String, Query, description = "Words to find (1 to 256 characters, not blank)", min_length = 1, max_length = 256, pattern = "[^\\u0009-\\u000d \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"),
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 100 (default 20)", minimum = 1, maximum = 100),
        ("cursor" = Option<String>, Query, description = "The `next` value of the previous page"),
    ),
    responses(
        (status = 200, body = SearchPageView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn search_messages(
    State(state): State<AppState>,
    address: Address,
    params: SearchParams,
) -> ApiResult<Json<SearchPageView>> {
    let page = state
        .service
        .search(
            &address.token,
            address.chat(),
            &params.q,
            params.limit,
            params.cursor,
        )
        .await?;
    Ok(Json(page.into()))
}

pub struct SearchParams {
    q: String,
    limit: u32,
    cursor: Option<SearchCursor>,
}

impl<S: Send + Sync> FromRequestParts<S> for SearchParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(query) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|err| ApiError::BadRequest(err.body_text()))?;
        let q = match query.get("q") {
            Some(q) if !q.trim().is_empty() => q.clone(),
            _ => {
                return Err(ApiError::BadRequest(
                    "q is required and must not be blank".into(),
                ));
            }
        };
        let limit = match query.get("limit") {
            None => DEFAULT_SEARCH_LIMIT,
            Some(raw) => match raw.parse::<u32>() {
                Ok(n) if (1..=MAX_SEARCH_LIMIT).contains(&n) => n,
                _ => {
                    return Err(ApiError::BadRequest(format!(
                        "limit must be an integer from 1 to {MAX_SEARCH_LIMIT}, got {raw:?}"
                    )));
                }
            },
        };
        let cursor = query
            .get("cursor")
            .map(|raw| {
                decode_cursor(raw).ok_or_else(|| {
                    ApiError::BadRequest("cursor is not one this server issued".into())
                })
            })
            .transpose()?;
        Ok(SearchParams { q, limit, cursor })
    }
}

/// Opaque to clients: the score's exact bits and the number, so the next page continues
/// exactly where this one ended.
pub fn encode_cursor(cursor: SearchCursor) -> String {
    format!("{:08x}{:x}", cursor.score.to_bits(), cursor.number)
}

pub fn decode_cursor(raw: &str) -> Option<SearchCursor> {
    if raw.len() < 9 || !raw.is_ascii() {
        return None;
    }
    let (score, number) = raw.split_at(8);
    let score = f32::from_bits(u32::from_str_radix(score, 16).ok()?);
    let number = i64::from_str_radix(number, 16).ok().filter(|n| *n > 0)?;
    score.is_finite().then_some(SearchCursor { score, number })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_exactly() {
        for (score, number) in [(1.234_567_f32, 1_i64), (0.0, 987_654_321), (42.5, 7)] {
            let c = SearchCursor { score, number };
            assert_eq!(decode_cursor(&encode_cursor(c)), Some(c));
        }
        for bad in [
            "",
            "zz",
            "ffffffffff",
            "7fc00000ff",
            "3f800000-1",
            "3f80000g1",
        ] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }
}
