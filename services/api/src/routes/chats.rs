use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiResult, Problem};
use crate::extract::{Address, JsonObject, Paging};
use crate::state::AppState;
use crate::views::{ChatInput, ChatView, PageView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_chat, list_chats))
        .routes(routes!(get_chat))
}

/// Create the next chat of an application. The body may be absent or `{}`.
#[utoipa::path(
    post, path = "/chat_applications/{token}/chats", tag = "chats",
    params(("token" = String, Path, description = "The application's token")),
    request_body(content = Option<ChatInput>, content_type = "application/json", description = "None, or `{}`"),
    responses(
        (status = 201, body = ChatView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_chat(
    State(state): State<AppState>,
    address: Address,
    // Parsed only to reject malformed JSON and non-JSON media types; chats have no fields.
    _body: JsonObject,
) -> ApiResult<(StatusCode, Json<ChatView>)> {
    let chat = state.service.create_chat(&address.token).await?;
    Ok((StatusCode::CREATED, Json(chat.into())))
}

#[utoipa::path(
    get, path = "/chat_applications/{token}/chats", tag = "chats",
    params(
        ("token" = String, Path, description = "The application's token"),
        ("limit" = Option<u32>, Query, description = "Page size, 1 to 200 (default 50)", minimum = 1, maximum = 200),
        ("after" = Option<i64>, Query, description = "Chats numbered above this, ascending", minimum = 0),
        ("before" = Option<i64>, Query, description = "Chats numbered below this, descending", minimum = 0),
    ),
    responses(
        (status = 200, body = PageView<ChatView>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_chats(
    State(state): State<AppState>,
    address: Address,
    Paging(page): Paging,
) -> ApiResult<Json<PageView<ChatView>>> {
    let chats = state.service.chats(&address.token, page).await?;
    Ok(Json(chats.into()))
}

#[utoipa::path(
    get, path = "/chat_applications/{token}/chats/{chat_number}", tag = "chats",
    params(
        ("token" = String, Path, description = "The application's token"),
        ("chat_number" = i64, Path, description = "The chat's number", minimum = 1),
    ),
    responses(
        (status = 200, body = ChatView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_chat(
    State(state): State<AppState>,
    address: Address,
) -> ApiResult<Json<ChatView>> {
    let chat = state.service.chat(&address.token, address.chat()).await?;
    Ok(Json(chat.into()))
}
