//! Liveness and readiness, served on the admin port and (for the seed's Rails health path) on
//! the public port too.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(up))
        .routes(routes!(readyz))
}

#[derive(Serialize, ToSchema)]
pub struct Up {
    #[schema(example = "up")]
    status: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`, or `not_ready` (then the status is 503).
    #[schema(example = "ready")]
    status: &'static str,
    shutting_down: bool,
    checks: Checks,
}

#[derive(Serialize, ToSchema)]
pub struct Checks {
    database: Check,
    /// Reported, but not a reason to be unready: writes number from the database while it is down.
    numbering: Check,
    /// Reported, but not a reason to be unready: search answers 503 itself while it is down.
    search: Check,
}

#[derive(Serialize, ToSchema)]
pub struct Check {
    #[schema(example = "ok")]
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    backend: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Alive: the process answers.
#[utoipa::path(get, path = "/up", tag = "health", responses((status = 200, body = Up)))]
pub async fn up() -> Json<Up> {
    Json(Up { status: "up" })
}

/// Ready: 503 only when the database is unreachable or the process is shutting down.
#[utoipa::path(
    get, path = "/readyz", tag = "health",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness))
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    // Each check carries its own deadline (see `ChatService::health`).
    let health = state.service.health().await;
    let check = |result: &Result<(), String>, backend| Check {
        status: if result.is_ok() { "ok" } else { "down" },
        backend,
        error: result.as_ref().err().cloned(),
    };
    let shutting_down = state.lifecycle.is_shutting_down();
    let ready = health.database.is_ok() && !shutting_down;
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        shutting_down,
        checks: Checks {
            database: check(&health.database, None),
            numbering: check(&health.numbering, Some(health.numbering_backend)),
            search: check(&health.search, Some(health.search_backend)),
        },
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
