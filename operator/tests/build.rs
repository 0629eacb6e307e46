//! Snapshot and property tests of the pure build step.

mod common;

use chat_operator::build::{build, observed_after_migration};
use chat_operator::observe::Observed;
use common::fixture;
use serde_json::Value;

fn render(name: &str) -> (String, Vec<Value>) {
    let cs = fixture(name);
    let desired = build(&cs, &observed_after_migration(&cs).unwrap()).unwrap();
    (desired.to_yaml(), desired.objects())
}

#[test]
fn snapshot_minimal() {
    insta::assert_snapshot!("minimal", render("minimal").0);
}

#[test]
fn snapshot_full() {
    insta::assert_snapshot!("full", render("full").0);
}

#[test]
fn first_install_with_migrations_holds_back_every_deployment() {
    let cs = fixture("minimal");
    let desired = build(&cs, &Observed::default()).unwrap();
    assert!(desired.job.is_some());
    assert!(desired.deployments.is_empty());
    assert_eq!(desired.rollout.held_back.len(), 3);
}

#[test]
fn every_object_is_owned_labelled_and_hardened() {
    for name in ["minimal", "full"] {
        let (_, objects) = render(name);
        assert_eq!(objects.len(), if name == "full" { 8 } else { 6 }, "{name}");
        for o in &objects {
            let meta = &o["metadata"];
            assert_eq!(meta["ownerReferences"][0]["kind"], "ChatSystem");
            assert_eq!(meta["ownerReferences"][0]["controller"], true);
            assert_eq!(meta["labels"]["app.kubernetes.io/managed-by"], "chat-operator");
            let Some(pod) = o["spec"]["template"]["spec"].as_object() else {
                continue;
            };
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
            assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
            assert_eq!(pod["automountServiceAccountToken"], false);
            let c = &pod["containers"][0];
            assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
            assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
            assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
            // Connection URLs only ever come from Secrets.
            for env in c["env"].as_array().unwrap() {
                if env["name"].as_str().unwrap().ends_with("_URL") {
                    assert!(env.get("value").is_none(), "{env}");
                    assert!(env["valueFrom"]["secretKeyRef"].is_object(), "{env}");
                }
            }
            if o["kind"] == "Deployment" {
                assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/up");
                assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
                assert_eq!(c["livenessProbe"]["httpGet"]["port"], "admin");
                let ann = &o["spec"]["template"]["metadata"]["annotations"];
                assert_eq!(ann["prometheus.io/scrape"], "true");
                assert_eq!(ann["prometheus.io/port"], "9000");
            }
        }
    }
}

#[test]
fn autoscaled_deployments_leave_replicas_to_the_hpa() {
    let (_, objects) = render("full");
    let deployment = |n: &str| {
        objects
            .iter()
            .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == n)
            .unwrap()
    };
    assert!(deployment("chat-api")["spec"].get("replicas").is_none());
    assert!(deployment("chat-indexer")["spec"].get("replicas").is_none());
    assert_eq!(deployment("chat-counter")["spec"]["replicas"], 2);
    let hpas: Vec<_> = objects
        .iter()
        .filter(|o| o["kind"] == "HorizontalPodAutoscaler")
        .collect();
    assert_eq!(hpas.len(), 2);
}

#[test]
fn render_without_uid_has_no_owner_reference() {
    let mut cs = fixture("minimal");
    cs.metadata.uid = None;
    let desired = build(&cs, &observed_after_migration(&cs).unwrap()).unwrap();
    assert!(
        desired
            .objects()
            .iter()
            .all(|o| o["metadata"].get("ownerReferences").is_none())
    );
}

fn containers(cs: &chat_operator::crd::ChatSystem) -> Vec<(String, Value)> {
    let desired = build(cs, &observed_after_migration(cs).unwrap()).unwrap();
    desired
        .objects()
        .into_iter()
        .filter(|o| o["kind"] == "Deployment" || o["kind"] == "Job")
        .map(|o| {
            let c = o["spec"]["template"]["spec"]["containers"][0].clone();
            (c["args"][0].as_str().unwrap().to_string(), c)
        })
        .collect()
}

fn env_value(container: &Value, name: &str) -> Option<Value> {
    let found: Vec<&Value> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == name)
        .collect();
    assert!(found.len() <= 1, "{name} set {} times", found.len());
    found
        .first()
        .map(|e| e.get("value").cloned().unwrap_or_else(|| e["valueFrom"].clone()))
}

#[test]
fn redis_prefix_and_search_index_default_to_one_per_chatsystem() {
    let mut seen = std::collections::BTreeSet::new();
    // Same names in swapped places, and a hyphen that could join differently: all distinct.
    for (namespace, name) in [
        ("default", "chat"),
        ("chat", "default"),
        ("a-b", "c"),
        ("a", "b-c"),
        ("prod", "chat"),
    ] {
        let mut cs = fixture("minimal");
        cs.metadata.namespace = Some(namespace.into());
        cs.metadata.name = Some(name.into());
        for (role, c) in containers(&cs) {
            let prefix = env_value(&c, "CHAT_REDIS_PREFIX").unwrap();
            let index = env_value(&c, "CHAT_SEARCH_INDEX").unwrap();
            assert_eq!(prefix, format!("chat:{namespace}:{name}:"), "{role}");
            assert_eq!(index, format!("chat_messages_{namespace}_{name}"), "{role}");
        }
        assert!(seen.insert(format!("chat:{namespace}:{name}:")));
        assert!(seen.insert(format!("chat_messages_{namespace}_{name}")));
    }
}

#[test]
fn explicit_isolation_fields_win_and_an_empty_prefix_is_kept() {
    for (role, c) in containers(&fixture("full")) {
        assert_eq!(env_value(&c, "CHAT_REDIS_PREFIX").unwrap(), "prod-chat:", "{role}");
        assert_eq!(env_value(&c, "CHAT_SEARCH_INDEX").unwrap(), "chat_prod", "{role}");
        let header = env_value(&c, "CHAT_TRUSTED_PROXY_HEADER");
        assert_eq!(header.is_some(), role == "api", "{role}");
    }
    // `""` is the binary's own default, for installations that predate the derived prefix.
    let mut cs = fixture("minimal");
    cs.spec.redis.key_prefix = Some(String::new());
    for (_, c) in containers(&cs) {
        assert_eq!(env_value(&c, "CHAT_REDIS_PREFIX").unwrap(), "");
    }
}

#[test]
fn env_passthrough_order_and_precedence() {
    let by_role: std::collections::BTreeMap<String, Value> = containers(&fixture("full")).into_iter().collect();
    let names = |role: &str| -> Vec<String> {
        by_role[role]["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect()
    };
    // The operator's own variables first, then common.env, then the component's own additions.
    let api = names("api");
    let tail: Vec<&str> = api[api.len() - 4..].iter().map(String::as_str).collect();
    assert_eq!(
        tail,
        [
            "CHAT_REDIS_TIMEOUT_MS",
            "CHAT_RATE_WRITE_PER_S",
            "CHAT_IDEMPOTENCY_TTL_S",
            "CHAT_STREAM_HEARTBEAT_S"
        ]
    );
    // The api's own entry replaces the common one; other roles keep the common value.
    assert_eq!(env_value(&by_role["api"], "CHAT_RATE_WRITE_PER_S").unwrap(), "500");
    assert_eq!(env_value(&by_role["indexer"], "CHAT_RATE_WRITE_PER_S").unwrap(), "2000");
    assert_eq!(env_value(&by_role["migrate"], "CHAT_RATE_WRITE_PER_S").unwrap(), "2000");
    assert_eq!(env_value(&by_role["counter"], "CHAT_STREAM_HEARTBEAT_S"), None);
    assert_eq!(
        env_value(&by_role["counter"], "CHAT_IDEMPOTENCY_TTL_S").unwrap(),
        serde_json::json!({"configMapKeyRef": {"name": "chat-tuning", "key": "idempotency-ttl-s"}})
    );
}

/// Every variable a field sets is reserved, and every reserved variable is set by some field,
/// so `env` can neither override the operator nor be refused a name nothing else sets.
#[test]
fn reserved_env_is_exactly_what_the_operator_sets() {
    use chat_operator::crd::RESERVED_ENV;
    let mut cs = fixture("full");
    cs.spec.common.env.clear();
    cs.spec.api.env.clear();
    // Basic auth instead of the fixture's API key: the one choice `full` cannot show at once.
    let mut basic = cs.clone();
    let secret = |key: &str| chat_operator::crd::SecretKeyRef {
        name: "es".into(),
        key: key.into(),
    };
    basic.spec.elasticsearch.api_key_secret_ref = None;
    basic.spec.elasticsearch.basic_auth = Some(chat_operator::crd::BasicAuthSpec {
        username_secret_ref: secret("u"),
        password_secret_ref: secret("p"),
    });
    let set: std::collections::BTreeSet<String> = containers(&cs)
        .iter()
        .chain(containers(&basic).iter())
        .flat_map(|(_, c)| c["env"].as_array().unwrap().clone())
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    let reserved: std::collections::BTreeSet<String> = RESERVED_ENV.iter().map(|s| s.to_string()).collect();
    assert_eq!(set, reserved);
}

#[test]
fn ca_bundles_are_mounted_read_only_and_named_by_their_setting() {
    let cs = fixture("full");
    let desired = build(&cs, &observed_after_migration(&cs).unwrap()).unwrap();
    for o in desired
        .objects()
        .iter()
        .filter(|o| o["kind"] == "Deployment" || o["kind"] == "Job")
    {
        let pod = &o["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        for (service, env) in [
            ("database", "CHAT_DATABASE_CA_FILE"),
            ("redis", "CHAT_REDIS_CA_FILE"),
            ("elasticsearch", "CHAT_ELASTICSEARCH_CA_FILE"),
        ] {
            let dir = format!("/etc/chat-system/ca/{service}");
            assert_eq!(env_value(c, env).unwrap(), format!("{dir}/ca.crt"));
            let mount = c["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["name"] == format!("ca-{service}"))
                .unwrap();
            assert_eq!(mount["mountPath"], dir.as_str());
            assert_eq!(mount["readOnly"], true);
        }
        let volumes = pod["volumes"].as_array().unwrap();
        let volume = |name: &str| volumes.iter().find(|v| v["name"] == name).unwrap();
        assert_eq!(
            volume("ca-database")["secret"],
            serde_json::json!({"secretName": "mysql", "items": [{"key": "ca.crt", "path": "ca.crt"}], "optional": false})
        );
        assert_eq!(
            volume("ca-redis")["configMap"],
            serde_json::json!({"name": "internal-ca", "items": [{"key": "ca-bundle.pem", "path": "ca.crt"}], "optional": false})
        );
        assert_eq!(
            env_value(c, "CHAT_ELASTICSEARCH_API_KEY").unwrap(),
            serde_json::json!({"secretKeyRef": {"name": "elasticsearch", "key": "api-key", "optional": false}})
        );
        assert_eq!(env_value(c, "CHAT_ELASTICSEARCH_USERNAME"), None);
    }
    // Without a caBundle: no CA variable, no extra volume.
    let (_, c) = containers(&fixture("minimal")).remove(0);
    assert_eq!(env_value(&c, "CHAT_DATABASE_CA_FILE"), None);
    assert_eq!(c["volumeMounts"].as_array().unwrap().len(), 2);
}

#[test]
fn elasticsearch_basic_auth_comes_from_secrets() {
    let mut cs = fixture("minimal");
    cs.spec.elasticsearch.basic_auth = Some(chat_operator::crd::BasicAuthSpec {
        username_secret_ref: chat_operator::crd::SecretKeyRef {
            name: "es-user".into(),
            key: "username".into(),
        },
        password_secret_ref: chat_operator::crd::SecretKeyRef {
            name: "es-user".into(),
            key: "password".into(),
        },
    });
    for (role, c) in containers(&cs) {
        for (env, key) in [
            ("CHAT_ELASTICSEARCH_USERNAME", "username"),
            ("CHAT_ELASTICSEARCH_PASSWORD", "password"),
        ] {
            assert_eq!(
                env_value(&c, env).unwrap(),
                serde_json::json!({"secretKeyRef": {"name": "es-user", "key": key, "optional": false}}),
                "{role}"
            );
        }
        assert_eq!(env_value(&c, "CHAT_ELASTICSEARCH_API_KEY"), None);
    }
}

#[test]
fn the_migrations_job_is_named_by_image_and_database_only() {
    use chat_operator::build::migration_job;
    use kube::ResourceExt;
    let name = |cs: &chat_operator::crd::ChatSystem| migration_job(cs).unwrap().name_any();
    let base = fixture("minimal");
    let mut same = base.clone();
    same.spec.common.log_level = Some("debug".into());
    same.spec.common.db_pool = Some(4);
    same.spec.migrations.backoff_limit = 7;
    same.spec.redis.key_prefix = Some("x:".into());
    assert_eq!(
        name(&same),
        name(&base),
        "settings outside the migration set keep the Job"
    );
    let mut new_image = base.clone();
    new_image.spec.image.tag = "1.0.1".into();
    let mut new_database = base.clone();
    new_database.spec.database.url_secret_ref.key = "other-url".into();
    for other in [new_image, new_database] {
        assert_ne!(name(&other), name(&base));
    }
}
