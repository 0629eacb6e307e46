//! The CRD: the chart's copy must equal what the Rust types generate, and the CEL rules in it
//! must accept valid specs and reject invalid ones (evaluated with kube-cel, since no API server
//! runs here).

mod common;

use chat_operator::crd::{ChatSystem, crd_yaml};
use kube::CustomResourceExt;
use kube_cel::Validator;
use serde_json::{Value, json};

const CHART_CRD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../charts/chat-system/crds/chatsystems.chatsystem.dev.yaml"
);

#[test]
fn chart_crd_matches_the_rust_types() {
    let committed = std::fs::read_to_string(CHART_CRD).expect("chart CRD present");
    assert!(
        committed == crd_yaml(),
        "{CHART_CRD} drifted from the Rust types; regenerate it with `chat-operator crd > {CHART_CRD}`"
    );
}

fn schema() -> Value {
    let crd = ChatSystem::crd();
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

fn minimal() -> Value {
    common::to_json(&common::fixture("minimal"))
}

/// Validates `object` the way the API server would: defaults first, then every CEL rule.
fn errors(object: &Value) -> Vec<String> {
    match Validator::new().validate_with_defaults(&schema(), object, None) {
        Ok(()) => vec![],
        Err(errors) => errors.iter().map(|e| e.message.clone()).collect(),
    }
}

fn with(mut object: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let mut target = &mut object;
    for part in parent.split('/').filter(|p| !p.is_empty()) {
        if target.get(part).is_none() {
            target[part] = json!({});
        }
        target = target.get_mut(part).unwrap();
    }
    target[key] = value;
    object
}

#[test]
fn every_rule_compiles() {
    let compiled = kube_cel::compile_schema(&schema());
    assert!(!compiled.has_errors(), "{:?}", compiled.compilation_errors());
}

#[test]
fn fixtures_and_sample_are_valid() {
    assert_eq!(errors(&minimal()), Vec::<String>::new());
    assert_eq!(errors(&common::to_json(&common::fixture("full"))), Vec::<String>::new());
    let sample = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../charts/chat-system/examples/chatsystem.yaml"
    ))
    .unwrap();
    let sample: Value = serde_norway::from_str(&sample).unwrap();
    assert_eq!(errors(&sample), Vec::<String>::new());
    let _: ChatSystem = serde_json::from_value(sample).expect("sample deserialises");
}

#[test]
fn min_replicas_must_not_exceed_max() {
    for component in ["api", "indexer", "counter"] {
        let bad = with(
            minimal(),
            &format!("/spec/{component}/autoscaling"),
            json!({"minReplicas": 5, "maxReplicas": 2}),
        );
        assert_eq!(
            errors(&bad),
            vec!["autoscaling.minReplicas must not exceed autoscaling.maxReplicas"],
            "{component}"
        );
        let ok = with(
            minimal(),
            &format!("/spec/{component}/autoscaling"),
            json!({"minReplicas": 2, "maxReplicas": 2}),
        );
        assert_eq!(errors(&ok), Vec::<String>::new());
    }
}

#[test]
fn autoscaling_needs_a_cpu_request() {
    let on = with(minimal(), "/spec/api/autoscaling", json!({"enabled": true}));
    assert_eq!(
        errors(&on),
        vec!["autoscaling.enabled needs resources.requests.cpu (the HPA target is a percentage of it)"]
    );
    let memory_only = with(
        on.clone(),
        "/spec/api/resources",
        json!({"requests": {"memory": "64Mi"}}),
    );
    assert_eq!(errors(&memory_only).len(), 1);
    let with_cpu = with(on, "/spec/api/resources", json!({"requests": {"cpu": "100m"}}));
    assert_eq!(errors(&with_cpu), Vec::<String>::new());
}

#[test]
fn node_port_needs_a_node_port_service() {
    let bad = with(minimal(), "/spec/api/service", json!({"nodePort": 30080}));
    assert_eq!(
        errors(&bad),
        vec!["service.nodePort needs service.type NodePort or LoadBalancer"]
    );
    let ok = with(
        minimal(),
        "/spec/api/service",
        json!({"type": "NodePort", "nodePort": 30080}),
    );
    assert_eq!(errors(&ok), Vec::<String>::new());
}

#[test]
fn name_must_fit_every_child_name() {
    for bad in ["a".repeat(47), "chat.system".to_string(), "1chat".to_string()] {
        let object = with(minimal(), "/metadata/name", json!(bad));
        assert_eq!(errors(&object).len(), 1, "{bad}");
    }
    let object = with(minimal(), "/metadata/name", json!("a".repeat(46)));
    assert_eq!(errors(&object), Vec::<String>::new());
}

#[test]
fn crd_shape() {
    let crd = ChatSystem::crd();
    assert_eq!(crd.spec.group, "chatsystem.dev");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.short_names, Some(vec!["chs".to_string()]));
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(version.subresources.as_ref().unwrap().status.is_some());
    let columns: Vec<_> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["Ready", "API", "Image", "Age"]);
    let spec = &schema()["properties"]["spec"];
    let required: Vec<_> = spec["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for field in ["image", "database", "redis", "elasticsearch"] {
        assert!(required.contains(&field), "{field} required");
    }
    assert_eq!(
        spec["properties"]["migrations"]["properties"]["enabled"]["default"],
        true
    );
    assert_eq!(spec["properties"]["api"]["properties"]["replicas"]["minimum"], 0.0);
}

#[test]
fn reserved_env_rule_lists_exactly_the_reserved_names() {
    use chat_operator::crd::{RESERVED_ENV, reserved_env_rule};
    let rule = reserved_env_rule();
    let listed: Vec<&str> = rule
        .split_once('[')
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(list, _)| list.split(',').map(|s| s.trim().trim_matches('\'')).collect())
        .unwrap();
    assert_eq!(listed, RESERVED_ENV);
}

#[test]
fn env_cannot_set_an_operator_managed_variable() {
    let refused =
        "env cannot set a variable the operator manages; set the ChatSystem field for it (docs/crd-reference.md)";
    for pointer in [
        "/spec/common/env",
        "/spec/api/env",
        "/spec/indexer/env",
        "/spec/counter/env",
    ] {
        for name in ["DATABASE_URL", "CHAT_REDIS_PREFIX", "CHAT_LISTEN", "RUST_LOG"] {
            let bad = with(minimal(), pointer, json!([{"name": name, "value": "x"}]));
            assert_eq!(errors(&bad), vec![refused], "{pointer} {name}");
        }
        let ok = with(
            minimal(),
            pointer,
            json!([{"name": "CHAT_RATE_WRITE_PER_S", "value": "10"},
                   {"name": "CHAT_TOKEN_GRACE_S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]),
        );
        assert_eq!(errors(&ok), Vec::<String>::new(), "{pointer}");
        let both = with(
            minimal(),
            pointer,
            json!([{"name": "CHAT_TOKEN_GRACE_S", "value": "1", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]),
        );
        assert_eq!(
            errors(&both),
            vec!["env: set value or valueFrom, not both"],
            "{pointer}"
        );
    }
}

#[test]
fn a_ca_bundle_names_exactly_one_source() {
    let message = "caBundle: set exactly one of secretKeyRef and configMapKeyRef";
    for service in ["database", "redis", "elasticsearch"] {
        let pointer = format!("/spec/{service}/caBundle");
        let secret = json!({"name": "ca", "key": "ca.crt"});
        assert_eq!(
            errors(&with(minimal(), &pointer, json!({}))),
            vec![message],
            "{service}"
        );
        assert_eq!(
            errors(&with(
                minimal(),
                &pointer,
                json!({"secretKeyRef": secret, "configMapKeyRef": secret})
            )),
            vec![message],
            "{service}"
        );
        for one in [json!({"secretKeyRef": secret}), json!({"configMapKeyRef": secret})] {
            assert_eq!(
                errors(&with(minimal(), &pointer, one)),
                Vec::<String>::new(),
                "{service}"
            );
        }
    }
}

#[test]
fn elasticsearch_takes_an_api_key_or_basic_auth_not_both() {
    let r = json!({"name": "es", "key": "k"});
    let both = with(
        with(minimal(), "/spec/elasticsearch/apiKeySecretRef", r.clone()),
        "/spec/elasticsearch/basicAuth",
        json!({"usernameSecretRef": r, "passwordSecretRef": r}),
    );
    assert_eq!(
        errors(&both),
        vec!["elasticsearch: set apiKeySecretRef or basicAuth, not both"]
    );
    let key_only = with(minimal(), "/spec/elasticsearch/apiKeySecretRef", r);
    assert_eq!(errors(&key_only), Vec::<String>::new());
}
