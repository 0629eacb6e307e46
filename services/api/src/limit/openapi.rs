//! Documents what the guards add to the routes they cover, in the served OpenAPI document: a
//! 429 (with `Retry-After`) on every limited operation, and the `Idempotency-Key` header with
//! its 400/409/422 on the idempotent POSTs. Done on the built document, from the same route
//! templates the middleware matches, so the two cannot drift apart.

use axum::http::Method;
use utoipa::openapi::header::Header;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{OpenApi, RefOr, Required, Response};

use super::Scope;
use crate::idempotency;

pub fn document(doc: &mut OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            (Method::GET, &mut item.get),
            (Method::POST, &mut item.post),
            (Method::PUT, &mut item.put),
            (Method::PATCH, &mut item.patch),
            (Method::DELETE, &mut item.delete),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation.as_mut() else {
                continue;
            };
            if Scope::of(&method, path).is_some() {
                let mut limited = problem_like(operation, "Rate limit exceeded; see Retry-After");
                let mut retry = Header::new(ObjectBuilder::new().schema_type(Type::Integer));
                retry.description = Some("Seconds until the next request is allowed".into());
                limited.headers.insert("Retry-After".into(), retry);
                add(operation, "429", limited);
            }
            if method == Method::POST && idempotency::honours(path) {
                document_idempotency(operation);
            }
        }
    }
}

fn document_idempotency(operation: &mut Operation) {
    let key = ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "Makes a retry safe: the same key with the same request answers the first response \
             again (with `Idempotent-Replayed: true`) and creates nothing.",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(255))
                .pattern(Some("^[!-~]+$")),
        ))
        .build();
    operation.parameters.get_or_insert_with(Vec::new).push(key);
    for (status, description) in [
        ("400", "Bad request (or an invalid Idempotency-Key)"),
        (
            "409",
            "A request with this Idempotency-Key is still in progress",
        ),
        (
            "422",
            "Invalid field, or the Idempotency-Key was used with another request",
        ),
    ] {
        let response = problem_like(operation, description);
        add(operation, status, response);
    }
}

/// A problem response shaped like the operation's documented 503 (every guarded operation has
/// one), under another description.
fn problem_like(operation: &Operation, description: &str) -> Response {
    let mut response = match operation.responses.responses.get("503") {
        Some(RefOr::T(r)) => r.clone(),
        _ => Response::new(description),
    };
    response.description = description.to_owned();
    response.headers.clear();
    response
}

/// Adds a response unless the operation already documents that status.
fn add(operation: &mut Operation, status: &str, response: Response) {
    operation
        .responses
        .responses
        .entry(status.to_owned())
        .or_insert(RefOr::T(response));
}
