use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiResult, Problem};
use crate::extract::{Address, JsonObject};
use crate::state::AppState;
use crate::views::{ApplicationInput, ApplicationView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_application))
        .routes(routes!(get_application, update_application))
        .routes(routes!(rotate_token))
}

/// Create a chat application; the response carries its secret token.
#[utoipa::path(
    post, path = "/chat_applications", tag = "applications",
    request_body(content = ApplicationInput, content_type = "application/json"),
    responses(
        (status = 201, body = ApplicationView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create_application(
    State(state): State<AppState>,
    body: JsonObject,
) -> ApiResult<(StatusCode, Json<ApplicationView>)> {
    let name = body.string("chat_application", "name")?;
    let app = state.service.create_application(&name).await?;
    Ok((StatusCode::CREATED, Json(app.into())))
}

#[utoipa::path(
    get, path = "/chat_applications/{token}", tag = "applications",
    params(("token" = String, Path, description = "The application's token")),
    responses(
        (status = 200, body = ApplicationView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_application(
    State(state): State<AppState>,
    address: Address,
) -> ApiResult<Json<ApplicationView>> {
    let app = state.service.application(&address.token).await?;
    Ok(Json(app.into()))
}

/// Rename an application (PATCH and PUT behave alike: `name` is the only field).
#[utoipa::path(
    method(patch, put), path = "/chat_applications/{token}", tag = "applications",
    params(("token" = String, Path, description = "The application's token")),
    request_body(content = ApplicationInput, content_type = "application/json"),
    responses(
        (status = 200, body = ApplicationView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update_application(
    State(state): State<AppState>,
    address: Address,
    body: JsonObject,
) -> ApiResult<Json<ApplicationView>> {
    let name = body.string("chat_application", "name")?;
    let app = state
        .service
        .rename_application(&address.token, &name)
        .await?;
    Ok(Json(app.into()))
}

/// Issue a new token for the application. The token in the path stops working at once (or
/// after the deployment's grace period, `CHAT_TOKEN_GRACE_S`); chats, messages and their
/// numbers are untouched. Send an `Idempotency-Key` so that a retry after a lost response
/// answers the same new token instead of failing with the old one.
#[utoipa::path(
    post, path = "/chat_applications/{token}/rotate_token", tag = "applications",
    params(("token" = String, Path, description = "The application's current token")),
    responses(
        (status = 200, description = "The application with its new token", body = ApplicationView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The token was already rotated (it still works during its grace period, but cannot rotate again)", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn rotate_token(
    State(state): State<AppState>,
    address: Address,
) -> ApiResult<Json<ApplicationView>> {
    let app = state.service.rotate_token(&address.token).await?;
    Ok(Json(app.into()))
}
