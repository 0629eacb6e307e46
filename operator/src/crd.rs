//! The `ChatSystem` custom resource (`chatsystem.dev/v1alpha1`).
//!
//! The Rust types are the source of truth: `chat-operator crd` prints the CRD generated from them,
//! and `operator/test.sh` fails when the chart's copy drifts. Schema defaults are written as serde
//! defaults so the API server (structural defaulting) and the operator (deserialising) agree.
//! Cross-field rules live in the CRD as CEL (`x-kubernetes-validations`); what CEL cannot see
//! (Secrets, for instance) is checked in `validate.rs`.

use k8s_openapi::api::core::v1::ResourceRequirements;
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
    pub database: ConnectionSpec,
    /// Redis connection (`REDIS_URL`): numbering, queue and fan-out across replicas.
    pub redis: ConnectionSpec,
    /// Elasticsearch connection (`ELASTICSEARCH_URL`): pods keep no local search index.
    pub elasticsearch: ConnectionSpec,
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

/// A backing service, reachable through a URL kept in a Secret (never in the spec).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionSpec {
    pub url_secret_ref: SecretKeyRef,
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
    /// Largest message body in UTF-8 bytes (`CHAT_MAX_BODY_BYTES`; binary default 65536).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_body_bytes: Option<i64>,
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
    /// Longest wait before a partial batch is flushed (`CHAT_INDEXER_FLUSH_MS`; default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub flush_interval_ms: Option<i64>,
}

impl Default for IndexerSpec {
    fn default() -> Self {
        Self {
            replicas: default_worker_replicas(),
            resources: None,
            autoscaling: AutoscalingSpec::default(),
            batch_size: None,
            flush_interval_ms: None,
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
    #[schemars(range(min = 1))]
    pub flush_interval_ms: Option<i64>,
}

impl Default for CounterSpec {
    fn default() -> Self {
        Self {
            replicas: default_worker_replicas(),
            resources: None,
            autoscaling: AutoscalingSpec::default(),
            flush_interval_ms: None,
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
    #[schemars(range(min = 1))]
    pub queue_claim_idle_ms: Option<i64>,
    /// Delivery attempts before an entry goes to the dead-letter stream
    /// (`CHAT_QUEUE_MAX_ATTEMPTS`; binary default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub queue_max_attempts: Option<i32>,
    /// OTLP endpoint for traces (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub otlp_endpoint: Option<String>,
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
