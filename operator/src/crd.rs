//! The `ChatSystem` custom resource (`chatsystem.dev/v1alpha1`).
//!
//! The Rust types are the source of truth: `chat-operator crd` prints the CRD generated from them,
//! and `operator/test.sh` fails when the chart's copy drifts. Schema defaults are written as serde
//! defaults so the API server (structural defaulting) and the operator (deserialising) agree.
//! Cross-field rules live in the CRD as CEL (`x-kubernetes-validations`); what CEL cannot see
//! (Secrets, for instance) is checked in `validate.rs`.

use k8s_openapi::api::core::v1::{EnvVarSource, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Longest ChatSystem name: `<name>-migrate-<8 hex>` must stay a valid 63-character label value.
pub const MAX_NAME_LEN: usize = 46;

/// Desired state of one chat-system installation: the api, indexer and counter components of a
/// single data-plane image, wired to MySQL, Redis and Elasticsearch through Secret references.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "chatsystem.dev",
    version = "v1alpha1",
    kind = "ChatSystem",
    plural = "chatsystems",
    shortname = "chs",
    namespaced,
    status = "ChatSystemStatus",
    derive = "PartialEq",
    doc = "A chat-system installation: api, indexer and counter Deployments of one image.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "API",
        type_ = "integer",
        description = "Ready api replicas",
        json_path = ".status.api.readyReplicas"
    ),
    printcolumn(
        name = "Image",
        type_ = "string",
        priority = "1",
        json_path = ".status.image"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.size() <= 46 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')")
        .message("metadata.name must be a DNS-1035 label of at most 46 characters (it prefixes every child object name)")
)]
#[serde(rename_all = "camelCase")]
pub struct ChatSystemSpec {
    /// The data-plane image; every component and the migrations Job run it.
    pub image: ImageSpec,
    /// Names of Secrets in the same namespace used to pull the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<String>,
    /// MySQL connection (`DATABASE_URL`).
    pub database: DatabaseSpec,
    /// Redis connection (`REDIS_URL`): numbering, queue and fan-out across replicas.
    pub redis: RedisSpec,
    /// Elasticsearch connection (`ELASTICSEARCH_URL`): pods keep no local search index.
    pub elasticsearch: ElasticsearchSpec,
    /// Schema migrations run as a Job before any Deployment rolls to a new image.
    #[serde(default)]
    pub migrations: MigrationsSpec,
    /// The public REST API.
    #[serde(default)]
    pub api: ApiSpec,
    /// Queue → search index worker.
    #[serde(default)]
    pub indexer: IndexerSpec,
    /// Queue → counts worker.
    #[serde(default)]
    pub counter: CounterSpec,
    /// Settings shared by every component. Unset fields keep the binary's defaults.
    #[serde(default, skip_serializing_if = "CommonSpec::is_empty")]
    pub common: CommonSpec,
    /// Stop reconciling: nothing is applied or deleted (no rollout, no migrations Job, no
    /// clean-up) until it is false again; status keeps reporting what runs. For hands-on
    /// maintenance, or to stage several spec changes into one rollout.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
}

/// Where a referenced value lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SourceKind {
    Secret,
    ConfigMap,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Secret => "Secret",
            SourceKind::ConfigMap => "ConfigMap",
        }
    }
}

/// One key of a Secret or ConfigMap the spec refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// Where in the spec, for messages (`redis.caBundle`).
    pub field: String,
    pub kind: SourceKind,
    pub name: String,
    pub key: String,
    /// An `env` valueFrom marked optional: its absence is not a problem.
    pub optional: bool,
}

impl ChatSystemSpec {
    /// Every Secret and ConfigMap key the pods read, in spec order: observe fetches them,
    /// validate checks they exist, and build hashes them so a change rolls the pods.
    pub fn references(&self) -> Vec<Reference> {
        let mut out = Vec::new();
        let secret = |field: &str, r: &SecretKeyRef| Reference {
            field: field.to_string(),
            kind: SourceKind::Secret,
            name: r.name.clone(),
            key: r.key.clone(),
            optional: false,
        };
        out.push(secret("database.urlSecretRef", &self.database.url_secret_ref));
        out.push(secret("redis.urlSecretRef", &self.redis.url_secret_ref));
        out.push(secret("elasticsearch.urlSecretRef", &self.elasticsearch.url_secret_ref));
        let es = &self.elasticsearch;
        if let Some(r) = &es.api_key_secret_ref {
            out.push(secret("elasticsearch.apiKeySecretRef", r));
        }
        if let Some(auth) = &es.basic_auth {
            out.push(secret(
                "elasticsearch.basicAuth.usernameSecretRef",
                &auth.username_secret_ref,
            ));
            out.push(secret(
                "elasticsearch.basicAuth.passwordSecretRef",
                &auth.password_secret_ref,
            ));
        }
        for (field, bundle) in [
            ("database.caBundle", &self.database.ca_bundle),
            ("redis.caBundle", &self.redis.ca_bundle),
            ("elasticsearch.caBundle", &es.ca_bundle),
        ] {
            match bundle {
                Some(CaBundleSpec {
                    secret_key_ref: Some(r),
                    ..
                }) => out.push(secret(field, r)),
                Some(CaBundleSpec {
                    config_map_key_ref: Some(r),
                    ..
                }) => out.push(Reference {
                    field: field.to_string(),
                    kind: SourceKind::ConfigMap,
                    name: r.name.clone(),
                    key: r.key.clone(),
                    optional: false,
                }),
                _ => {}
            }
        }
        for (field, list) in [
            ("common.env", &self.common.env),
            ("api.env", &self.api.env),
            ("indexer.env", &self.indexer.env),
            ("counter.env", &self.counter.env),
        ] {
            for e in list {
                let Some(from) = &e.value_from else { continue };
                let field = format!("{field}[{}]", e.name);
                if let Some(r) = &from.secret_key_ref {
                    out.push(Reference {
                        field: field.clone(),
                        kind: SourceKind::Secret,
                        name: r.name.clone(),
                        key: r.key.clone(),
                        optional: r.optional.unwrap_or(false),
                    });
                }
                if let Some(r) = &from.config_map_key_ref {
                    out.push(Reference {
                        field,
                        kind: SourceKind::ConfigMap,
                        name: r.name.clone(),
                        key: r.key.clone(),
                        optional: r.optional.unwrap_or(false),
                    });
                }
            }
        }
        out
    }
}

/// Container image reference.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageSpec {
    /// Image repository, e.g. `ghcr.io/example/chat-system`.
    #[schemars(length(min = 1, max = 255))]
    pub repository: String,
    /// Image tag. A new tag runs the migrations Job before the Deployments roll.
    #[schemars(regex(pattern = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"))]
    pub tag: String,
    /// Kubernetes image pull policy.
    #[serde(default)]
    pub pull_policy: PullPolicy,
}

impl ImageSpec {
    /// `repository:tag`, the form Deployments carry and the operator compares.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.repository, self.tag)
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum PullPolicy {
    Always,
    #[default]
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// MySQL, reachable through a URL kept in a Secret (never in the spec).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    pub url_secret_ref: SecretKeyRef,
    /// CA bundle the server's certificate is verified against (`CHAT_DATABASE_CA_FILE`). TLS
    /// itself is asked for in the URL (`ssl-mode=VERIFY_IDENTITY`, for instance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<CaBundleSpec>,
}

/// Redis, reachable through a URL kept in a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisSpec {
    pub url_secret_ref: SecretKeyRef,
    /// Prefix of every Redis key this installation writes (`CHAT_REDIS_PREFIX`), so several
    /// installations can share one Redis. Unset: `chat:<namespace>:<name>:`, unique per
    /// ChatSystem. `""` is the binary's own default (no prefix). Changing it on a live system
    /// orphans the keys under the old prefix (queued events not yet indexed or counted, dead
    /// letters, idempotency keys, rate-limit buckets, live-stream history); numbering counters
    /// are re-seeded from the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub key_prefix: Option<String>,
    /// CA bundle a `rediss://` server's certificate is verified against (`CHAT_REDIS_CA_FILE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<CaBundleSpec>,
}

/// Elasticsearch, reachable through a URL kept in a Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.apiKeySecretRef) && has(self.basicAuth))").message("elasticsearch: set apiKeySecretRef or basicAuth, not both"))]
pub struct ElasticsearchSpec {
    pub url_secret_ref: SecretKeyRef,
    /// Index (or alias) holding this installation's messages (`CHAT_SEARCH_INDEX`). Unset:
    /// `chat_messages_<namespace>_<name>`, unique per ChatSystem. Changing it on a live system
    /// starts an empty index (searches find nothing until `chat-system reindex` ran) and leaves
    /// the old one behind. The pattern is Elasticsearch's own rule for index names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255), regex(pattern = r"^[a-z0-9][-_.+a-z0-9]*$"))]
    pub index: Option<String>,
    /// CA bundle an `https://` server's certificate is verified against
    /// (`CHAT_ELASTICSEARCH_CA_FILE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<CaBundleSpec>,
    /// API key, the base64 `id:api_key` form Elasticsearch returns as `encoded`
    /// (`CHAT_ELASTICSEARCH_API_KEY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret_ref: Option<SecretKeyRef>,
    /// Basic authentication (`CHAT_ELASTICSEARCH_USERNAME`, `CHAT_ELASTICSEARCH_PASSWORD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuthSpec>,
}

/// Username and password, each a key of a Secret (they may be the same Secret).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuthSpec {
    pub username_secret_ref: SecretKeyRef,
    pub password_secret_ref: SecretKeyRef,
}

/// A PEM CA bundle kept in one key of a Secret or of a ConfigMap, mounted read-only into every
/// pod; the operator sets the matching `CHAT_*_CA_FILE` to its path.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.secretKeyRef) != has(self.configMapKeyRef)").message("caBundle: set exactly one of secretKeyRef and configMapKeyRef"))]
pub struct CaBundleSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<ConfigMapKeyRef>,
}

/// A key of a ConfigMap in the ChatSystem's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// ConfigMap name.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub name: String,
    /// Key inside the ConfigMap's data.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// One environment variable for settings without a field of their own. Values are passed to
/// the binary as they are; it validates them at start-up (a bad one makes the pods crash-loop).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(RESERVED_ENV_RULE).message(RESERVED_ENV_MESSAGE),
    validation = Rule::new("!(has(self.value) && has(self.valueFrom))").message("env: set value or valueFrom, not both")
)]
pub struct EnvVarSpec {
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A Secret key, ConfigMap key or field of the pod, as in a container's `env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvVarSource>,
}

/// Variables the operator sets from spec fields. `env` cannot set them, so every setting has
/// exactly one place in the spec (and the operator's wiring, such as listen addresses, stays).
pub const RESERVED_ENV: [&str; 26] = [
    "DATABASE_URL",
    "REDIS_URL",
    "ELASTICSEARCH_URL",
    "CHAT_DATA_DIR",
    "CHAT_LISTEN",
    "CHAT_ADMIN_LISTEN",
    "LOG_FORMAT",
    "RUST_LOG",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "CHAT_DB_POOL",
    "CHAT_SHUTDOWN_GRACE_S",
    "CHAT_MAX_BODY_BYTES",
    "CHAT_TRUSTED_PROXY_HEADER",
    "CHAT_INDEXER_BATCH",
    "CHAT_INDEXER_FLUSH_MS",
    "CHAT_COUNTER_FLUSH_MS",
    "CHAT_QUEUE_CLAIM_IDLE_MS",
    "CHAT_QUEUE_MAX_ATTEMPTS",
    "CHAT_REDIS_PREFIX",
    "CHAT_SEARCH_INDEX",
    "CHAT_DATABASE_CA_FILE",
    "CHAT_REDIS_CA_FILE",
    "CHAT_ELASTICSEARCH_CA_FILE",
    "CHAT_ELASTICSEARCH_API_KEY",
    "CHAT_ELASTICSEARCH_USERNAME",
    "CHAT_ELASTICSEARCH_PASSWORD",
];
// The same list as CEL (a test checks they agree).
const RESERVED_ENV_RULE: &str = "!(self.name in ['DATABASE_URL', 'REDIS_URL', 'ELASTICSEARCH_URL', 'CHAT_DATA_DIR', 'CHAT_LISTEN', 'CHAT_ADMIN_LISTEN', 'LOG_FORMAT', 'RUST_LOG', 'OTEL_EXPORTER_OTLP_ENDPOINT', 'CHAT_DB_POOL', 'CHAT_SHUTDOWN_GRACE_S', 'CHAT_MAX_BODY_BYTES', 'CHAT_TRUSTED_PROXY_HEADER', 'CHAT_INDEXER_BATCH', 'CHAT_INDEXER_FLUSH_MS', 'CHAT_COUNTER_FLUSH_MS', 'CHAT_QUEUE_CLAIM_IDLE_MS', 'CHAT_QUEUE_MAX_ATTEMPTS', 'CHAT_REDIS_PREFIX', 'CHAT_SEARCH_INDEX', 'CHAT_DATABASE_CA_FILE', 'CHAT_REDIS_CA_FILE', 'CHAT_ELASTICSEARCH_CA_FILE', 'CHAT_ELASTICSEARCH_API_KEY', 'CHAT_ELASTICSEARCH_USERNAME', 'CHAT_ELASTICSEARCH_PASSWORD'])";
const RESERVED_ENV_MESSAGE: &str =
    "env cannot set a variable the operator manages; set the ChatSystem field for it (docs/crd-reference.md)";

/// The CEL rule's list, for the test that it matches [`RESERVED_ENV`].
pub fn reserved_env_rule() -> &'static str {
    RESERVED_ENV_RULE
}

/// A key of a Secret in the ChatSystem's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub name: String,
    /// Key inside the Secret's data.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationsSpec {
    /// Run `chat-system migrate` as a Job for every new image before rolling the Deployments.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Retries of a failing migrations Job before it is marked failed.
    #[serde(default = "default_backoff_limit")]
    #[schemars(range(min = 0, max = 20))]
    pub backoff_limit: i32,
    /// Longest time a migrations Job may run, in seconds.
    #[serde(default = "default_active_deadline")]
    #[schemars(range(min = 30))]
    pub active_deadline_seconds: i64,
}

impl Default for MigrationsSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            backoff_limit: default_backoff_limit(),
            active_deadline_seconds: default_active_deadline(),
        }
    }
}

/// Horizontal Pod Autoscaler (autoscaling/v2) on CPU utilisation.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("autoscaling.minReplicas must not exceed autoscaling.maxReplicas"))]
pub struct AutoscalingSpec {
    /// Create an HPA and hand the Deployment's `replicas` to it.
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 1))]
    pub min_replicas: i32,
    #[serde(default = "default_max_replicas")]
    #[schemars(range(min = 1))]
    pub max_replicas: i32,
    /// Average CPU utilisation (percent of the CPU request) the HPA aims for.
    #[serde(rename = "targetCPUUtilizationPercentage", default = "default_target_cpu")]
    #[schemars(range(min = 1, max = 1000))]
    pub target_cpu_utilization_percentage: i32,
}

impl Default for AutoscalingSpec {
    fn default() -> Self {
        Self {
            enabled: false,
            min_replicas: default_min_replicas(),
            max_replicas: default_max_replicas(),
            target_cpu_utilization_percentage: default_target_cpu(),
        }
    }
}

// The HPA scales on CPU utilisation, which is a percentage of the request: without a CPU request
// the HPA can never compute it and silently does nothing.
const CPU_REQUEST_RULE: &str = "!self.autoscaling.enabled || (has(self.resources) && has(self.resources.requests) && 'cpu' in self.resources.requests)";
const CPU_REQUEST_MESSAGE: &str =
    "autoscaling.enabled needs resources.requests.cpu (the HPA target is a percentage of it)";

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(CPU_REQUEST_RULE).message(CPU_REQUEST_MESSAGE))]
pub struct ApiSpec {
    /// Replicas when autoscaling is off (ignored, and left to the HPA, when it is on).
    #[serde(default = "default_api_replicas")]
    #[schemars(range(min = 0))]
    pub replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default)]
    pub autoscaling: AutoscalingSpec,
    #[serde(default)]
    pub service: ServiceSpec,
    #[serde(default)]
    pub pod_disruption_budget: PdbSpec,
    /// Largest message body in UTF-8 bytes, at most 1 MiB (`CHAT_MAX_BODY_BYTES`; binary default
    /// 65536).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1048576))]
    pub max_body_bytes: Option<i64>,
    /// Header carrying the client address set by the ingress or load balancer in front of the
    /// api, e.g. `X-Forwarded-For` (its right-most entry is used) (`CHAT_TRUSTED_PROXY_HEADER`).
    /// Unset: the TCP peer address, which behind a proxy makes the per-address limit on creating
    /// applications one bucket for everybody. Set it only when that proxy overwrites the header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"))]
    pub trusted_proxy_header: Option<String>,
    /// Extra environment of this component's pods, after `common.env` (an entry here replaces
    /// a `common.env` entry of the same name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub env: Vec<EnvVarSpec>,
}

impl Default for ApiSpec {
    fn default() -> Self {
        Self {
            replicas: default_api_replicas(),
            resources: None,
            autoscaling: AutoscalingSpec::default(),
            service: ServiceSpec::default(),
            pod_disruption_budget: PdbSpec::default(),
            max_body_bytes: None,
            trusted_proxy_header: None,
            env: Vec::new(),
        }
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(CPU_REQUEST_RULE).message(CPU_REQUEST_MESSAGE))]
pub struct IndexerSpec {
    #[serde(default = "default_worker_replicas")]
    #[schemars(range(min = 0))]
    pub replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default)]
    pub autoscaling: AutoscalingSpec,
    /// Documents per bulk request (`CHAT_INDEXER_BATCH`; binary default 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub batch_size: Option<i32>,
    /// Longest wait before a partial batch is flushed (`CHAT_INDEXER_FLUSH_MS`; binary default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 60000))]
    pub flush_interval_ms: Option<i64>,
    /// Extra environment of this component's pods, after `common.env` (an entry here replaces
    /// a `common.env` entry of the same name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub env: Vec<EnvVarSpec>,
}

impl Default for IndexerSpec {
    fn default() -> Self {
        Self {
            replicas: default_worker_replicas(),
            resources: None,
            autoscaling: AutoscalingSpec::default(),
            batch_size: None,
            flush_interval_ms: None,
            env: Vec::new(),
        }
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(CPU_REQUEST_RULE).message(CPU_REQUEST_MESSAGE))]
pub struct CounterSpec {
    #[serde(default = "default_worker_replicas")]
    #[schemars(range(min = 0))]
    pub replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default)]
    pub autoscaling: AutoscalingSpec,
    /// Interval between count flushes (`CHAT_COUNTER_FLUSH_MS`; binary default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600000))]
    pub flush_interval_ms: Option<i64>,
    /// Extra environment of this component's pods, after `common.env` (an entry here replaces
    /// a `common.env` entry of the same name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub env: Vec<EnvVarSpec>,
}

impl Default for CounterSpec {
    fn default() -> Self {
        Self {
            replicas: default_worker_replicas(),
            resources: None,
            autoscaling: AutoscalingSpec::default(),
            flush_interval_ms: None,
            env: Vec::new(),
        }
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.nodePort) || self.type != 'ClusterIP'").message("service.nodePort needs service.type NodePort or LoadBalancer"))]
pub struct ServiceSpec {
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    /// Service port in front of the API's container port 3000.
    #[serde(default = "default_service_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Fixed node port (NodePort and LoadBalancer only); unset lets Kubernetes choose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub node_port: Option<i32>,
}

impl Default for ServiceSpec {
    fn default() -> Self {
        Self {
            type_: ServiceType::default(),
            port: default_service_port(),
            node_port: None,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum ServiceType {
    #[default]
    ClusterIP,
    NodePort,
    LoadBalancer,
}

impl ServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PdbSpec {
    /// Create a PodDisruptionBudget for the api pods.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Api pods a voluntary disruption (drain, upgrade) may take down at once. At least 1, so
    /// a PDB can never block a node drain forever.
    #[serde(default = "default_one")]
    #[schemars(range(min = 1))]
    pub max_unavailable: i32,
}

impl Default for PdbSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            max_unavailable: 1,
        }
    }
}

/// Settings passed to every component as environment. Unset fields are not passed, so the binary's
/// defaults (see the contract) apply.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommonSpec {
    /// `RUST_LOG` filter, e.g. `info` or `chat_api=debug,info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub log_level: Option<String>,
    /// `LOG_FORMAT`; `json` when unset, because cluster log pipelines parse it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// Database connections per process (`CHAT_DB_POOL`; binary default 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub db_pool: Option<i32>,
    /// Drain time on SIGTERM (`CHAT_SHUTDOWN_GRACE_S`; binary default 20). The pods'
    /// `terminationGracePeriodSeconds` is this plus 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub shutdown_grace_seconds: Option<i64>,
    /// Idle time after which a worker takes over a dead consumer's entries
    /// (`CHAT_QUEUE_CLAIM_IDLE_MS`; binary default 30000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 86400000))]
    pub queue_claim_idle_ms: Option<i64>,
    /// Delivery attempts before an entry goes to the dead-letter stream
    /// (`CHAT_QUEUE_MAX_ATTEMPTS`; binary default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub queue_max_attempts: Option<i32>,
    /// OTLP endpoint for traces (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub otlp_endpoint: Option<String>,
    /// Extra environment of every pod, the migrations Job's included, for settings without a
    /// field (see the configuration table in the README). A component's own `env` entry of the
    /// same name wins. Variables a field sets are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub env: Vec<EnvVarSpec>,
}

impl CommonSpec {
    fn is_empty(&self) -> bool {
        self == &CommonSpec::default()
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// Observed state, written only by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatSystemStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing` and `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The image every component runs once the rollout is complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<MigrationStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<ComponentStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indexer: Option<ComponentStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter: Option<ComponentStatus>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    /// Pods the Deployment manages.
    pub replicas: i32,
    pub ready_replicas: i32,
    /// Pods already on the current pod template.
    pub updated_replicas: i32,
    /// The image the Deployment runs now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationStatus {
    /// Name of the migrations Job for the desired image.
    pub job_name: String,
    pub image: String,
    /// `Pending`, `Running`, `Succeeded` or `Failed`.
    pub phase: String,
}

fn default_true() -> bool {
    true
}
fn default_one() -> i32 {
    1
}
fn default_backoff_limit() -> i32 {
    3
}
fn default_active_deadline() -> i64 {
    600
}
fn default_min_replicas() -> i32 {
    1
}
fn default_max_replicas() -> i32 {
    5
}
fn default_target_cpu() -> i32 {
    80
}
fn default_api_replicas() -> i32 {
    2
}
fn default_worker_replicas() -> i32 {
    1
}
fn default_service_port() -> i32 {
    80
}

/// The CRD as YAML, exactly what `chat-operator crd` prints and the chart ships.
pub fn crd_yaml() -> String {
    use kube::CustomResourceExt;
    serde_norway::to_string(&ChatSystem::crd()).expect("CRD serialises to YAML")
}
