//! OpenAPI links (3.1 `responses.*.links`): how a create's 201 answer addresses what it
//! created. Clients and stateful test generators (schemathesis) follow them from a new
//! application's `token` to every `{token}` operation, from a new chat's `number` to every
//! `{chat_number}` operation, and from a new message's `number` to every message `{number}`
//! operation, so generated requests reach real resources rather than 404s.
//!
//! Derived from the route table rather than listed by hand, so an endpoint added under a
//! collection (a DELETE, `rotate_token`, …) is linked without touching this file.

use utoipa::openapi::link::Link;
use utoipa::openapi::path::{HttpMethod, Operation, PathItem};
use utoipa::openapi::{OpenApi, RefOr};

const METHODS: [HttpMethod; 8] = [
    HttpMethod::Get,
    HttpMethod::Put,
    HttpMethod::Post,
    HttpMethod::Delete,
    HttpMethod::Options,
    HttpMethod::Head,
    HttpMethod::Patch,
    HttpMethod::Trace,
];

/// Adds a link to each `POST collection` 201 response for every operation on
/// `collection/{param}…` that needs exactly the collection's path parameters plus `{param}`.
pub fn add(doc: &mut OpenApi) {
    let targets: Vec<(String, HttpMethod)> = doc
        .paths
        .paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| operation(item, m).is_some())
                .map(|m| (path.clone(), m.clone()))
        })
        .collect();
    for (collection, item) in doc.paths.paths.iter_mut() {
        let Some(create) = item.post.as_mut() else {
            continue;
        };
        let known = path_params(collection);
        let mut links = Vec::new();
        for (path, method) in &targets {
            let Some(param) = path
                .strip_prefix(collection.as_str())
                .and_then(|rest| rest.strip_prefix("/{"))
                .and_then(|rest| rest.split('}').next())
            else {
                continue;
            };
            let needed = path_params(path);
            if needed.len() != known.len() + 1 || !known.iter().all(|k| needed.contains(k)) {
                continue;
            }
            let mut link = Link::builder()
                .operation_ref(operation_ref(path, method))
                .parameter(format!("path.{param}"), created_field(param));
            for k in &known {
                link = link.parameter(format!("path.{k}"), format!("$request.path.{k}"));
            }
            let name = format!("{}{}", method_name(method), link_name(path, collection));
            links.push((name, link.build()));
        }
        add_to_created(create, links);
    }
}

fn add_to_created(create: &mut Operation, links: Vec<(String, Link)>) {
    if let Some(RefOr::T(created)) = create.responses.responses.get_mut("201") {
        for (name, link) in links {
            created.links.insert(name, RefOr::T(link));
        }
    }
}

fn operation<'a>(item: &'a PathItem, method: &HttpMethod) -> Option<&'a Operation> {
    match method {
        HttpMethod::Get => item.get.as_ref(),
        HttpMethod::Put => item.put.as_ref(),
        HttpMethod::Post => item.post.as_ref(),
        HttpMethod::Delete => item.delete.as_ref(),
        HttpMethod::Options => item.options.as_ref(),
        HttpMethod::Head => item.head.as_ref(),
        HttpMethod::Patch => item.patch.as_ref(),
        HttpMethod::Trace => item.trace.as_ref(),
    }
}

fn method_name(method: &HttpMethod) -> &'static str {
    match method {
        HttpMethod::Get => "Get",
        HttpMethod::Put => "Put",
        HttpMethod::Post => "Post",
        HttpMethod::Delete => "Delete",
        HttpMethod::Options => "Options",
        HttpMethod::Head => "Head",
        HttpMethod::Patch => "Patch",
        HttpMethod::Trace => "Trace",
    }
}

/// `{token}` is the application's response field `token`; every other created key is the
/// new resource's `number`.
fn created_field(param: &str) -> String {
    let field = if param == "token" { "token" } else { "number" };
    format!("$response.body#/{field}")
}

fn path_params(path: &str) -> Vec<&str> {
    path.split('{')
        .skip(1)
        .filter_map(|rest| rest.split('}').next())
        .collect()
}

/// A JSON pointer into this document (RFC 6901 escapes `~` and `/`).
fn operation_ref(path: &str, method: &HttpMethod) -> String {
    let escaped = path.replace('~', "~0").replace('/', "~1");
    format!(
        "#/paths/{escaped}/{}",
        method_name(method).to_ascii_lowercase()
    )
}

/// `GetChats`, `PostMessages`, `GetItem` (the resource itself), `PostRotateToken`…: the
/// path below the new resource, in CamelCase.
fn link_name(path: &str, collection: &str) -> String {
    let below: Vec<&str> = path[collection.len()..]
        .split('/')
        .skip(2)
        .filter(|s| !s.starts_with('{'))
        .collect();
    if below.is_empty() {
        return "Item".into();
    }
    below
        .iter()
        .flat_map(|segment| segment.split('_'))
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_link_to_what_they_created() {
        let mut doc = crate::openapi();
        add(&mut doc);
        let json = serde_json::to_value(&doc).unwrap();
        let links = |path: &str| {
            json["paths"][path]["post"]["responses"]["201"]["links"]
                .as_object()
                .cloned()
                .unwrap_or_default()
        };
        let apps = links("/chat_applications");
        assert_eq!(
            apps["GetItem"]["operationRef"],
            "#/paths/~1chat_applications~1{token}/get"
        );
        assert_eq!(
            apps["PostChats"]["parameters"]["path.token"],
            "$response.body#/token"
        );
        assert!(apps.keys().all(|k| !k.contains("Messages")), "{apps:?}");

        let chats = links("/chat_applications/{token}/chats");
        let search = &chats["GetMessagesSearch"]["parameters"];
        assert_eq!(search["path.token"], "$request.path.token");
        assert_eq!(search["path.chat_number"], "$response.body#/number");

        let messages = links("/chat_applications/{token}/chats/{chat_number}/messages");
        for method in ["GetItem", "PatchItem", "PutItem"] {
            let p = &messages[method]["parameters"];
            assert_eq!(p["path.number"], "$response.body#/number", "{method}");
            assert_eq!(p["path.chat_number"], "$request.path.chat_number");
        }
        // `search` is a literal segment, not a message number.
        assert!(!messages.contains_key("GetMessagesSearch"));
    }
}
