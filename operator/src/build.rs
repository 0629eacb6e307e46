//! Build: the desired objects, as a pure function of the ChatSystem and the observed facts it
//! needs (the migrations Job's phase, the image each Deployment runs now, what already exists).
//! No I/O here, so snapshot tests pin the whole desired state.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec, MetricTarget,
    ResourceMetricSource,
};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, KeyToPath, LocalObjectReference, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    SeccompProfile, SecretKeySelector, SecretVolumeSource, SecurityContext, Service, ServicePort,
    ServiceSpec as K8sServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use serde::Serialize;

use crate::Error;
use crate::crd::{CaBundleSpec, ChatSystem, ChatSystemSpec, EnvVarSpec, LogFormat, SecretKeyRef};
use crate::names::{self, CONTAINER, Component};
use crate::observe::{JobPhase, Observed};

pub const API_PORT: i32 = 3000;
pub const ADMIN_PORT: i32 = 9000;
/// `CHAT_DATA_DIR` inside the pods: an emptyDir, since the root filesystem is read-only.
pub const DATA_DIR: &str = "/var/lib/chat-system";
const RUN_AS: i64 = 10001;

/// Everything the operator wants in the cluster for one ChatSystem, in apply order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Desired {
    pub rollout: Rollout,
    /// The migrations Job for the desired image (when migrations are enabled). Applied only
    /// while it does not exist (`rollout.job_phase` is `None`): a Job's pod template is
    /// immutable, and other settings (log level, env) may have changed since under its name.
    pub job: Option<Job>,
    pub service: Option<Service>,
    /// Deployments not held back by a migrations Job that has not succeeded yet.
    pub deployments: Vec<Deployment>,
    pub hpas: Vec<HorizontalPodAutoscaler>,
    pub pdb: Option<PodDisruptionBudget>,
    /// `replicas` of these Deployments first moves to a handover manager, then the HPA takes it.
    pub handovers: Vec<Handover>,
    pub delete_hpas: Vec<String>,
    pub delete_pdbs: Vec<String>,
    pub delete_jobs: Vec<String>,
}

/// Where the image rollout stands.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rollout {
    pub desired_image: String,
    pub job_name: Option<String>,
    /// `None` when the Job does not exist yet (it is created by this reconcile).
    pub job_phase: Option<JobPhase>,
    /// Components that keep their current image (or are not created yet) until the Job succeeds.
    pub held_back: Vec<Component>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handover {
    pub deployment: String,
    pub replicas: i32,
}

impl Desired {
    /// The wanted objects as JSON, in apply order: what `chat-operator render` prints.
    pub fn objects(&self) -> Vec<serde_json::Value> {
        fn json<T: Serialize>(value: &T) -> serde_json::Value {
            serde_json::to_value(value).expect("k8s objects serialise")
        }
        let mut out = Vec::new();
        out.extend(self.job.iter().map(json));
        out.extend(self.service.iter().map(json));
        out.extend(self.deployments.iter().map(json));
        out.extend(self.hpas.iter().map(json));
        out.extend(self.pdb.iter().map(json));
        out
    }

    /// Multi-document YAML of [`Desired::objects`].
    pub fn to_yaml(&self) -> String {
        self.objects()
            .iter()
            .map(|o| {
                format!(
                    "---\n{}",
                    serde_norway::to_string(o).expect("JSON values serialise to YAML")
                )
            })
            .collect()
    }
}

pub fn build(cs: &ChatSystem, observed: &Observed) -> Result<Desired, Error> {
    let spec = &cs.spec;
    let image = spec.image.reference();
    let mut desired = Desired {
        rollout: Rollout {
            desired_image: image.clone(),
            ..Rollout::default()
        },
        ..Desired::default()
    };

    let job_succeeded = if spec.migrations.enabled {
        let job = migration_job(cs)?;
        let name = job.name_any();
        let phase = observed.jobs.get(&name).copied();
        desired.rollout.job_name = Some(name.clone());
        desired.rollout.job_phase = phase;
        // Older Jobs are history until the new one has succeeded; after that they are clutter.
        if phase == Some(JobPhase::Succeeded) {
            desired.delete_jobs = observed.jobs.keys().filter(|n| **n != name).cloned().collect();
        }
        desired.job = Some(job);
        phase == Some(JobPhase::Succeeded)
    } else {
        desired.delete_jobs = observed.jobs.keys().cloned().collect();
        true
    };

    desired.service = Some(api_service(cs));
    // Not on the migrations Job: its name follows its template, and a new Secret value is no
    // reason to run migrations again.
    let hash = config_hash(cs, observed);

    for component in Component::ALL {
        let current = observed.deployments.get(&component);
        let current_image = current.and_then(|d| d.image.clone());
        // A Deployment rolls to a new image only once that image's migrations succeeded; until
        // then it keeps the image it runs now (and other changes still apply), or, on a first
        // install, is not created at all.
        let image = if job_succeeded || current_image.as_deref() == Some(image.as_str()) {
            image.clone()
        } else {
            desired.rollout.held_back.push(component);
            match current_image {
                Some(running) => running,
                None => continue,
            }
        };
        let scaling = component.autoscaling(spec);
        desired.deployments.push(deployment(cs, component, &image, &hash)?);
        if scaling.enabled {
            desired.hpas.push(hpa(cs, component)?);
            if let Some(current) = current.filter(|d| d.replicas_owned_by_us) {
                desired.handovers.push(Handover {
                    deployment: component.object_name(cs),
                    // The Deployment's default, if it somehow has none.
                    replicas: current.spec_replicas.unwrap_or(1),
                });
            }
        }
    }

    if spec.api.pod_disruption_budget.enabled {
        desired.pdb = Some(api_pdb(cs));
    }

    let wanted_hpas: Vec<String> = desired.hpas.iter().map(ResourceExt::name_any).collect();
    desired.delete_hpas = observed
        .hpas
        .iter()
        .filter(|n| !wanted_hpas.contains(n))
        .cloned()
        .collect();
    let wanted_pdb = desired.pdb.as_ref().map(ResourceExt::name_any);
    desired.delete_pdbs = observed
        .pdbs
        .iter()
        .filter(|n| Some(*n) != wanted_pdb.as_ref())
        .cloned()
        .collect();
    Ok(desired)
}

/// The tag of an image reference, for the version label (`repo:tag`, a registry port aside).
fn version_of(image: &str) -> &str {
    match image.rsplit_once(':') {
        Some((_, tag)) if !tag.contains('/') => tag,
        _ => "",
    }
}

fn meta(cs: &ChatSystem, name: String, component: &str) -> ObjectMeta {
    meta_at(cs, name, component, &cs.spec.image.tag)
}

/// Metadata labelled with the version actually deployed, which lags the spec while a Deployment
/// is held back for migrations (a new label alone would restart its pods for nothing).
fn meta_at(cs: &ChatSystem, name: String, component: &str, version: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: cs.namespace(),
        labels: Some(names::labels(cs, component, version)),
        // Without a uid (a ChatSystem read from a file) there is nothing valid to point at.
        owner_references: cs.controller_owner_ref(&()).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

fn secret_env(name: &str, secret: &SecretKeyRef) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.name.clone(),
                key: secret.key.clone(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn env(name: &str, value: impl ToString) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        ..EnvVar::default()
    }
}

/// Environment of one role, names from the container contract. Tuning knobs the spec leaves unset
/// are not passed, so the binary's own defaults apply.
fn role_env(cs: &ChatSystem, role: &str) -> Vec<EnvVar> {
    let spec = &cs.spec;
    let common = &spec.common;
    let mut vars = vec![
        secret_env("DATABASE_URL", &spec.database.url_secret_ref),
        secret_env("REDIS_URL", &spec.redis.url_secret_ref),
        secret_env("ELASTICSEARCH_URL", &spec.elasticsearch.url_secret_ref),
        env(
            "CHAT_REDIS_PREFIX",
            spec.redis
                .key_prefix
                .clone()
                .unwrap_or_else(|| names::default_redis_prefix(cs)),
        ),
        env(
            "CHAT_SEARCH_INDEX",
            spec.elasticsearch
                .index
                .clone()
                .unwrap_or_else(|| names::default_search_index(cs)),
        ),
        env("CHAT_DATA_DIR", DATA_DIR),
        env("LOG_FORMAT", common.log_format.unwrap_or(LogFormat::Json).as_str()),
    ];
    for bundle in ca_bundles(spec) {
        vars.push(env(bundle.env, format!("{}/{CA_FILE}", bundle.dir())));
    }
    let es = &spec.elasticsearch;
    if let Some(r) = &es.api_key_secret_ref {
        vars.push(secret_env("CHAT_ELASTICSEARCH_API_KEY", r));
    }
    if let Some(auth) = &es.basic_auth {
        vars.push(secret_env("CHAT_ELASTICSEARCH_USERNAME", &auth.username_secret_ref));
        vars.push(secret_env("CHAT_ELASTICSEARCH_PASSWORD", &auth.password_secret_ref));
    }
    let mut optional = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            vars.push(env(name, value));
        }
    };
    optional("RUST_LOG", common.log_level.clone());
    optional("OTEL_EXPORTER_OTLP_ENDPOINT", common.otlp_endpoint.clone());
    optional("CHAT_DB_POOL", common.db_pool.map(|v| v.to_string()));
    if role == "migrate" {
        vars.extend(passthrough_env(&common.env, &[]));
        return vars;
    }
    optional(
        "CHAT_SHUTDOWN_GRACE_S",
        common.shutdown_grace_seconds.map(|v| v.to_string()),
    );
    match role {
        "api" => {
            optional("CHAT_MAX_BODY_BYTES", spec.api.max_body_bytes.map(|v| v.to_string()));
            optional("CHAT_TRUSTED_PROXY_HEADER", spec.api.trusted_proxy_header.clone());
        }
        "indexer" => {
            optional("CHAT_INDEXER_BATCH", spec.indexer.batch_size.map(|v| v.to_string()));
            optional(
                "CHAT_INDEXER_FLUSH_MS",
                spec.indexer.flush_interval_ms.map(|v| v.to_string()),
            );
        }
        _ => {
            optional(
                "CHAT_COUNTER_FLUSH_MS",
                spec.counter.flush_interval_ms.map(|v| v.to_string()),
            );
        }
    }
    if role != "api" {
        optional(
            "CHAT_QUEUE_CLAIM_IDLE_MS",
            common.queue_claim_idle_ms.map(|v| v.to_string()),
        );
        optional(
            "CHAT_QUEUE_MAX_ATTEMPTS",
            common.queue_max_attempts.map(|v| v.to_string()),
        );
    }
    vars.push(env("CHAT_ADMIN_LISTEN", format!("0.0.0.0:{ADMIN_PORT}")));
    if role == "api" {
        vars.push(env("CHAT_LISTEN", format!("0.0.0.0:{API_PORT}")));
    }
    let own = match role {
        "api" => &spec.api.env,
        "indexer" => &spec.indexer.env,
        _ => &spec.counter.env,
    };
    vars.extend(passthrough_env(&common.env, own));
    vars
}

/// `common.env` then the component's `env`, a component entry replacing the common one of the
/// same name (in its place, so the order stays readable). Reserved names never get here:
/// validation refuses them before anything is built.
fn passthrough_env(common: &[EnvVarSpec], own: &[EnvVarSpec]) -> Vec<EnvVar> {
    let to_env = |e: &EnvVarSpec| EnvVar {
        name: e.name.clone(),
        value: e.value.clone(),
        value_from: e.value_from.clone(),
    };
    let mut out: Vec<EnvVar> = common
        .iter()
        .map(|c| own.iter().rev().find(|o| o.name == c.name).unwrap_or(c))
        .map(to_env)
        .collect();
    out.extend(
        own.iter()
            .filter(|o| !common.iter().any(|c| c.name == o.name))
            .map(to_env),
    );
    out
}

/// File name of every mounted CA bundle, inside its own directory.
const CA_FILE: &str = "ca.crt";
/// Parent of the CA bundle directories.
pub const CA_DIR: &str = "/etc/chat-system/ca";

/// A CA bundle the spec asks for, with where it is mounted.
struct MountedCa<'a> {
    /// `database`, `redis` or `elasticsearch`: the directory and the volume name's suffix.
    service: &'static str,
    env: &'static str,
    bundle: &'a CaBundleSpec,
}

impl MountedCa<'_> {
    fn dir(&self) -> String {
        format!("{CA_DIR}/{}", self.service)
    }

    fn volume_name(&self) -> String {
        format!("ca-{}", self.service)
    }

    fn volume(&self) -> Volume {
        let items = |key: &str| {
            Some(vec![KeyToPath {
                key: key.to_string(),
                path: CA_FILE.to_string(),
                ..KeyToPath::default()
            }])
        };
        let mut volume = Volume {
            name: self.volume_name(),
            ..Volume::default()
        };
        // Validation guarantees exactly one of the two.
        if let Some(r) = &self.bundle.secret_key_ref {
            volume.secret = Some(SecretVolumeSource {
                secret_name: Some(r.name.clone()),
                items: items(&r.key),
                optional: Some(false),
                ..SecretVolumeSource::default()
            });
        } else if let Some(r) = &self.bundle.config_map_key_ref {
            volume.config_map = Some(ConfigMapVolumeSource {
                name: r.name.clone(),
                items: items(&r.key),
                optional: Some(false),
                ..ConfigMapVolumeSource::default()
            });
        }
        volume
    }
}

fn ca_bundles(spec: &ChatSystemSpec) -> Vec<MountedCa<'_>> {
    [
        ("database", "CHAT_DATABASE_CA_FILE", &spec.database.ca_bundle),
        ("redis", "CHAT_REDIS_CA_FILE", &spec.redis.ca_bundle),
        (
            "elasticsearch",
            "CHAT_ELASTICSEARCH_CA_FILE",
            &spec.elasticsearch.ca_bundle,
        ),
    ]
    .into_iter()
    .filter_map(|(service, env, bundle)| bundle.as_ref().map(|bundle| MountedCa { service, env, bundle }))
    .collect()
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String("admin".to_string()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

/// Pod-template annotation holding [`config_hash`]: a change rolls the Deployment's pods.
pub const CONFIG_HASH_ANNOTATION: &str = "chatsystem.dev/config-hash";

/// One SHA-256 over every referenced Secret and ConfigMap key's value fingerprint (as observe
/// read them), so the pods roll when a value they read changes, and only then: other keys of the
/// same Secret, or its metadata, do not count. A reference observe found no value for counts as
/// absent, which is a change too once it appears.
pub fn config_hash(cs: &ChatSystem, observed: &Observed) -> String {
    let mut text = String::new();
    for r in cs.spec.references() {
        let value = observed
            .sources
            .get(&(r.kind, r.name.clone()))
            .and_then(|keys| keys.as_ref())
            .and_then(|keys| keys.get(&r.key))
            .map_or("absent", String::as_str);
        // Names and keys cannot contain a newline or a space, so this framing is unambiguous.
        text.push_str(&format!("{} {} {} {value}\n", r.kind.as_str(), r.name, r.key));
    }
    crate::observe::fingerprint(text.as_bytes())
}

fn pod_template(cs: &ChatSystem, role: &str, image: &str, long_running: bool) -> PodTemplateSpec {
    let spec = &cs.spec;
    let mut ports = vec![ContainerPort {
        name: Some("admin".to_string()),
        container_port: ADMIN_PORT,
        protocol: Some("TCP".to_string()),
        ..ContainerPort::default()
    }];
    if role == "api" {
        ports.insert(
            0,
            ContainerPort {
                name: Some("http".to_string()),
                container_port: API_PORT,
                protocol: Some("TCP".to_string()),
                ..ContainerPort::default()
            },
        );
    }
    let resources = Component::from_label(role).and_then(|c| c.resources(spec)).cloned();
    let mut mounts = vec![
        VolumeMount {
            name: "data".to_string(),
            mount_path: DATA_DIR.to_string(),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: "tmp".to_string(),
            mount_path: "/tmp".to_string(),
            ..VolumeMount::default()
        },
    ];
    let mut volumes = vec![
        Volume {
            name: "data".to_string(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
        Volume {
            name: "tmp".to_string(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ];
    for ca in ca_bundles(spec) {
        mounts.push(VolumeMount {
            name: ca.volume_name(),
            mount_path: ca.dir(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
        volumes.push(ca.volume());
    }
    let container = Container {
        name: CONTAINER.to_string(),
        image: Some(image.to_string()),
        image_pull_policy: Some(spec.image.pull_policy.as_str().to_string()),
        args: Some(vec![role.to_string()]),
        env: Some(role_env(cs, role)),
        ports: long_running.then_some(ports),
        resources,
        // Slow first starts (cold database pool) get a minute before liveness counts.
        startup_probe: long_running.then(|| http_probe("/up", 2, 30)),
        liveness_probe: long_running.then(|| http_probe("/up", 10, 3)),
        readiness_probe: long_running.then(|| http_probe("/readyz", 5, 3)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_string()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(mounts),
        ..Container::default()
    };
    let annotations = long_running.then(|| {
        BTreeMap::from([
            ("prometheus.io/scrape".to_string(), "true".to_string()),
            ("prometheus.io/port".to_string(), ADMIN_PORT.to_string()),
            ("prometheus.io/path".to_string(), "/metrics".to_string()),
        ])
    });
    let grace = spec.common.shutdown_grace_seconds.unwrap_or(20) + 10;
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(names::labels(cs, role, version_of(image))),
            annotations,
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container],
            restart_policy: (!long_running).then(|| "Never".to_string()),
            termination_grace_period_seconds: long_running.then_some(grace),
            // The data plane never calls the Kubernetes API.
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            image_pull_secrets: (!spec.image_pull_secrets.is_empty()).then(|| {
                spec.image_pull_secrets
                    .iter()
                    .map(|name| LocalObjectReference { name: name.clone() })
                    .collect()
            }),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(RUN_AS),
                run_as_group: Some(RUN_AS),
                fs_group: Some(RUN_AS),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_string(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            volumes: Some(volumes),
            ..PodSpec::default()
        }),
    }
}

/// What decides which migrations run where: the image (its migrations) and the database it
/// migrates. Nothing else names the Job, so a new log level or env entry does not run the
/// migrations again.
fn migration_set(cs: &ChatSystem) -> String {
    let db = &cs.spec.database.url_secret_ref;
    format!("{}\n{}\n{}", cs.spec.image.reference(), db.name, db.key)
}

pub fn migration_job(cs: &ChatSystem) -> Result<Job, Error> {
    let spec = &cs.spec;
    let job_spec = JobSpec {
        backoff_limit: Some(spec.migrations.backoff_limit),
        active_deadline_seconds: Some(spec.migrations.active_deadline_seconds),
        template: pod_template(cs, "migrate", &spec.image.reference(), false),
        ..JobSpec::default()
    };
    Ok(Job {
        metadata: meta(cs, names::migration_job_name(cs, &migration_set(cs)), "migrate"),
        spec: Some(job_spec),
        status: None,
    })
}

fn deployment(cs: &ChatSystem, component: Component, image: &str, config_hash: &str) -> Result<Deployment, Error> {
    let spec = &cs.spec;
    let role = component.as_str();
    // With an HPA the field is left out of the applied object, so the HPA owns it; see
    // `Handover` for how ownership moves without a reset to 1.
    let replicas = (!component.autoscaling(spec).enabled).then(|| component.replicas(spec));
    Ok(Deployment {
        metadata: meta_at(cs, component.object_name(cs), role, version_of(image)),
        spec: DeploymentSpec {
            replicas,
            revision_history_limit: Some(5),
            selector: LabelSelector {
                match_labels: Some(names::selector_labels(cs, role)),
                ..LabelSelector::default()
            },
            // Never below the wanted capacity during a rollout: new pods first, then old ones go.
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_string()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::String("25%".to_string())),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template: {
                let mut template = pod_template(cs, role, image, true);
                if let Some(annotations) = template.metadata.as_mut().and_then(|m| m.annotations.as_mut()) {
                    annotations.insert(CONFIG_HASH_ANNOTATION.to_string(), config_hash.to_string());
                }
                template
            },
            ..DeploymentSpec::default()
        },
        status: None,
    })
}

fn api_service(cs: &ChatSystem) -> Service {
    let svc = &cs.spec.api.service;
    Service {
        metadata: meta(cs, Component::Api.object_name(cs), "api"),
        spec: Some(K8sServiceSpec {
            type_: Some(svc.type_.as_str().to_string()),
            selector: Some(names::selector_labels(cs, "api")),
            ports: Some(vec![ServicePort {
                name: Some("http".to_string()),
                port: svc.port,
                target_port: Some(IntOrString::String("http".to_string())),
                node_port: svc.node_port,
                protocol: Some("TCP".to_string()),
                ..ServicePort::default()
            }]),
            ..K8sServiceSpec::default()
        }),
        status: None,
    }
}

fn hpa(cs: &ChatSystem, component: Component) -> Result<HorizontalPodAutoscaler, Error> {
    let scaling = component.autoscaling(&cs.spec);
    Ok(HorizontalPodAutoscaler {
        metadata: meta(cs, component.object_name(cs), component.as_str()),
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".to_string()),
                kind: "Deployment".to_string(),
                name: component.object_name(cs),
            },
            min_replicas: Some(scaling.min_replicas),
            max_replicas: scaling.max_replicas,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".to_string(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".to_string(),
                    target: MetricTarget {
                        type_: "Utilization".to_string(),
                        average_utilization: Some(scaling.target_cpu_utilization_percentage),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            ..HorizontalPodAutoscalerSpec::default()
        },
        status: None,
    })
}

fn api_pdb(cs: &ChatSystem) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(cs, Component::Api.object_name(cs), "api"),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(cs.spec.api.pod_disruption_budget.max_unavailable)),
            selector: Some(LabelSelector {
                match_labels: Some(names::selector_labels(cs, "api")),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    }
}

/// The state `render` shows: the migrations Job as if it had succeeded, so the Deployments it
/// gates appear with the desired image.
pub fn observed_after_migration(cs: &ChatSystem) -> Result<Observed, Error> {
    let mut observed = Observed::default();
    if cs.spec.migrations.enabled {
        observed.jobs.insert(migration_job(cs)?.name_any(), JobPhase::Succeeded);
    }
    Ok(observed)
}
