//! The CRD accepts exactly what the chat-system binary accepts. `binary_bounds.json` is the
//! binary's side (`binary_bounds.py`, run by operator/test.sh, checks it against the real binary);
//! these tests pin the CRD schema and the build step's field → environment mapping to it.

mod common;

use std::collections::BTreeSet;

use chat_operator::build::{build, observed_after_migration};
use chat_operator::crd::ChatSystem;
use kube::CustomResourceExt;
use serde_json::{Value, json};

fn table() -> Vec<Value> {
    let text = include_str!("binary_bounds.json");
    let table: Value = serde_json::from_str(text).expect("binary_bounds.json is JSON");
    table["settings"].as_array().expect("settings").clone()
}

fn spec_schema() -> Value {
    let crd = ChatSystem::crd();
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .unwrap()
        .open_api_v3_schema
        .as_ref()
        .unwrap();
    serde_json::to_value(schema).unwrap()["properties"]["spec"].clone()
}

/// The schema of `a.b` under `spec`.
fn field_schema<'a>(spec: &'a Value, field: &str) -> &'a Value {
    field.split('.').fold(spec, |node, part| &node["properties"][part])
}

#[test]
fn every_crd_bound_equals_the_binarys() {
    let spec = spec_schema();
    for row in table() {
        let field = row["field"].as_str().unwrap();
        let schema = field_schema(&spec, field);
        assert!(schema.is_object(), "{field} is not in the CRD");
        let number = |key: &str| schema.get(key).and_then(Value::as_f64);
        if let Some(min) = row.get("min") {
            assert_eq!(number("minimum"), min.as_f64(), "{field} minimum");
            assert_eq!(number("maximum"), row["max"].as_f64(), "{field} maximum");
            assert_eq!(schema["type"], "integer", "{field}");
        } else {
            assert_eq!(schema.get("minimum"), None, "{field}");
            assert_eq!(schema.get("maximum"), None, "{field}");
        }
        // An optional enum lists `null` too (the field may be unset); that is not a value.
        let values = schema
            .get("enum")
            .map(|e| Value::Array(e.as_array().unwrap().iter().filter(|v| !v.is_null()).cloned().collect()));
        assert_eq!(values.as_ref(), row.get("enum"), "{field} enum");
        assert_eq!(schema.get("pattern"), row.get("pattern"), "{field} pattern");
    }
}

/// Settings a field passes through as is: the binary accepts any value (or the operator itself
/// chooses it, like the CA file paths), so there is no bound to agree on.
const UNBOUNDED: [&str; 10] = [
    "RUST_LOG",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "CHAT_REDIS_PREFIX",
    "CHAT_SEARCH_INDEX",
    "CHAT_DATABASE_CA_FILE",
    "CHAT_REDIS_CA_FILE",
    "CHAT_ELASTICSEARCH_CA_FILE",
    "CHAT_ELASTICSEARCH_API_KEY",
    "CHAT_ELASTICSEARCH_USERNAME",
    "CHAT_ELASTICSEARCH_PASSWORD",
];

/// Every binary setting a field's description names (`` `CHAT_…` ``, `LOG_FORMAT`, …).
fn settings_named(node: &Value, path: &str, out: &mut Vec<(String, String)>) {
    if let Some(description) = node.get("description").and_then(Value::as_str) {
        for part in description.split('`').skip(1).step_by(2) {
            let is_setting = part.len() > 3
                && part.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                && (part.starts_with("CHAT_")
                    || ["LOG_FORMAT", "RUST_LOG", "OTEL_EXPORTER_OTLP_ENDPOINT"].contains(&part));
            if is_setting {
                out.push((path.to_string(), part.to_string()));
            }
        }
    }
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            let child_path = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            settings_named(child, &child_path, out);
        }
    }
}

#[test]
fn every_field_that_sets_a_binary_setting_is_in_the_table() {
    let mut named = Vec::new();
    settings_named(&spec_schema(), "", &mut named);
    assert!(named.len() >= 10, "the walk found too little: {named:?}");
    let rows: BTreeSet<(String, String)> = table()
        .iter()
        .map(|r| {
            (
                r["field"].as_str().unwrap().to_string(),
                r["env"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (field, env) in named {
        assert!(
            rows.contains(&(field.clone(), env.clone())) || UNBOUNDED.contains(&env.as_str()),
            "{field} sets {env}, which has no row in tests/binary_bounds.json"
        );
    }
}

fn set(object: &mut Value, field: &str, value: Value) {
    let mut node = &mut object["spec"];
    for part in field.split('.') {
        if node.get(part).is_none() {
            node[part] = json!({});
        }
        node = node.get_mut(part).unwrap();
    }
    *node = value;
}

/// Each field reaches exactly the roles whose code reads the setting, under the table's name.
#[test]
fn each_field_becomes_its_setting_in_the_right_roles() {
    for row in table() {
        let field = row["field"].as_str().unwrap();
        let env = row["env"].as_str().unwrap();
        let value = row
            .get("max")
            .cloned()
            .or_else(|| row["enum"].get(1).cloned())
            .or_else(|| row["accept"].get(0).cloned())
            .unwrap();
        let mut object = common::to_json(&common::fixture("minimal"));
        set(&mut object, field, value.clone());
        let cs: ChatSystem = serde_json::from_value(object).unwrap();
        let desired = build(&cs, &observed_after_migration(&cs).unwrap()).unwrap();
        let roles: Vec<&str> = row["roles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        let want = value.as_str().map_or_else(|| value.to_string(), str::to_string);
        for o in desired
            .objects()
            .iter()
            .filter(|o| o["kind"] == "Deployment" || o["kind"] == "Job")
        {
            let container = &o["spec"]["template"]["spec"]["containers"][0];
            let role = container["args"][0].as_str().unwrap();
            let found: Vec<&Value> = container["env"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["name"] == env)
                .collect();
            if roles.contains(&role) {
                assert_eq!(found.len(), 1, "{field}: {env} once in {role}");
                assert_eq!(found[0]["value"], want.as_str(), "{field} in {role}");
            } else {
                assert!(found.is_empty(), "{field}: {env} must not reach {role}");
            }
        }
    }
}
