use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiResult, Problem};
use crate::extract::{Address, JsonObject, Paging};
use crate::state::AppState;
use crate::views::{MessageInput, MessageView, PageView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_message, list_messages))
        .routes(routes!(get_message, update_message, delete_message))
}

/// Create the next message of a chat.
#[utoipa::path(
    post, path = "/chat_applications/{token}/chats/{chat_number}/messages", tag = "messages",
    params(
        ("token" = String, Path, description = "The application's token"),
        ("chat_number" = i64, Path, description = "The chat's number", minimum = 1),
    ),
    request_body(content = MessageInput, content_type = "application/json"),
    responses(
        (status = 201, body = MessageView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_message(
    State(state): State<AppState>,
    address: Address,
    body: JsonObject,
) -> ApiResult<(StatusCode, Json<MessageView>)> {
    let text = body.string("message", "body")?;
    let message = state
        .service
        .create_message(&address.token, address.chat(), &text)
        .await?;
    Ok((StatusCode::CREATED, Json(message.into())))
}

#[utoipa::path(
    get, path = "/chat_applications/{token}/chats/{chat_number}/messages", tag = "messages",
    params(
        ("token" = String, Path, description = "The application's token"),
        ("chat_number" = i64, Path, description = "The chat's number", minimum = 1),
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 200 (default 50)", minimum = 1, maximum = 200),
        ("after" = Option<i64>, Query, description = "Messages numbered above this, ascending", minimum = 0),
        ("before" = Option<i64>, Query, description = "Messages numbered below this, descending", minimum = 0),
    ),
    responses(
        (status = 200, body = PageView<MessageView>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_messages(
    State(state): State<AppState>,
    address: Address,
    Paging(page): Paging,
) -> ApiResult<Json<PageView<MessageView>>> {
    let messages = state
        .service
        .messages(&address.token, address.chat(), page)
        .await?;
    Ok(Json(messages.into()))
}

#[utoipa::path(
    get, path = "/chat_applications/{token}/chats/{chat_number}/messages/{number}", tag = "messages",
    params(
        ("token" = String, Path, description = "The application's token"),
        ("chat_number" = i64, Path, description = "The chat's number", minimum = 1),
        ("number" = i64, Path, description = "The message's number", minimum = 1),
    ),
    responses(
        (status = 200, body = MessageView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_message(
    State(state): State<AppState>,
    address: Address,
) -> ApiResult<Json<MessageView>> {
    let message = state
        .service
        .message(&address.token, address.chat(), address.message())
        .await?;
    Ok(Json(message.into()))
}

/// Edit a message's body (PATCH and PUT behave alike).
#[utoipa::path(
    method(patch, put), path = "/chat_applications/{token}/chats/{chat_number}/messages/{number}", tag = "messages",
    params(
        ("token" = String, Path, description = "The application's token"),
        ("chat_number" = i64, Path, description = "The chat's number", minimum = 1),
        ("number" = i64, Path, description = "The message's number", minimum = 1),
    ),
    request_body(content = MessageInput, content_type = "application/json"),
    responses(
        (status = 200, body = MessageView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update_message(
    State(state): State<AppState>,
    address: Address,
    body: JsonObject,
) -> ApiResult<Json<MessageView>> {
    let text = body.string("message", "body")?;
    let message = state
        .service
        .update_message(&address.token, address.chat(), address.message(), &text)
        .await?;
    Ok(Json(message.into()))
}

/// Delete a message. Its number is never reused.
#[utoipa::path(
    delete, path = "/chat_applications/{token}/chats/{chat_number}/messages/{number}", tag = "messages",
    params(
        ("token" = String, Path, description = "The application's token"),
        ("chat_number" = i64, Path, description = "The chat's number", minimum = 1),
        ("number" = i64, Path, description = "The message's number", minimum = 1),
    ),
    responses(
        (status = 204, description = "Deleted: gone from reads, listings and search"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_message(
    State(state): State<AppState>,
    address: Address,
) -> ApiResult<StatusCode> {
    state
        .service
        .delete_message(&address.token, address.chat(), address.message())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
