//! OpenAPI links (3.1 `responses.*.links`): how a create's 201 answer addresses what it
//! created. Clients and stateful test generators (schemathesis) follow them from a new
//! application's `token` to every `{token}` operation, from a new chat's `number` to every
//! `{chat_number}` operation, and from a new message's `number` to every message `{number}`
//! operation, so generated requests reach real resources rather than 404s.
//!
//! Derived from the route table rather than listed by hand, so an endpoint added under a
//! collection (a DELETE, `rotate_token`, …) is linked without touching this file.

use serde_json::{Map, Value, json};

/// Adds a link to each `POST collection` 201 response for every operation on
/// `collection/{param}…` that needs exactly the collection's path parameters plus `{param}`.
///
/// Works on the JSON document: utoipa 5's `Link` serialises its fields in snake_case
/// (`operation_ref`), which no OpenAPI tool reads.
pub fn add(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    let targets: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .into_iter()
                .flat_map(|ops| ops.keys())
                .filter(|method| METHODS.contains(&method.as_str()))
                .map(move |method| (path.clone(), method.clone()))
        })
        .collect();
    for (collection, item) in paths.iter_mut() {
        let Some(created) = item.pointer_mut("/post/responses/201") else {
            continue;
        };
        let known = path_params(collection);
        let mut links = Map::new();
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
            let mut parameters = Map::new();
            parameters.insert(format!("path.{param}"), created_field(param).into());
            for k in &known {
                parameters.insert(format!("path.{k}"), format!("$request.path.{k}").into());
            }
            links.insert(
                format!("{}{}", capitalised(method), link_name(path, collection)),
                json!({
                    "operationRef": operation_ref(path, method),
                    "parameters": parameters,
                }),
            );
        }
        if !links.is_empty() {
            created["links"] = Value::Object(links);
        }
    }
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// `get` → `Get`, `rotate` → `Rotate`.
fn capitalised(method: &str) -> String {
    let mut chars = method.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_ascii_uppercase().to_string() + chars.as_str()
    })
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
fn operation_ref(path: &str, method: &str) -> String {
    let escaped = path.replace('~', "~0").replace('/', "~1");
    format!("#/paths/{escaped}/{method}")
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
        .map(capitalised)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn creates_link_to_what_they_created() {
        let json = crate::openapi_document();
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
