//! Observe: read what the cluster has now. With `apply.rs`, the only module that talks to the API
//! server; it reduces what it reads to the plain facts `validate`, `build` and `status` need.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{ListParams, ObjectMeta};
use kube::{Api, Client, Resource, ResourceExt};

use crate::Error;
use crate::crd::{ChatSystem, SourceKind};
use crate::names::{self, COMPONENT_LABEL, CONTAINER, Component};

/// Everything the operator knows about the cluster for one ChatSystem.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// Referenced Secrets and ConfigMaps: `None` when missing, else each key with a SHA-256
    /// fingerprint of its value (values themselves are never kept).
    pub sources: BTreeMap<(SourceKind, String), Option<BTreeMap<String, String>>>,
    pub deployments: BTreeMap<Component, ObservedDeployment>,
    /// Owned migrations Jobs by name.
    pub jobs: BTreeMap<String, JobPhase>,
    /// Why a component's rollout is stuck (a pod that cannot start, a passed progress deadline),
    /// as `(reason, message)`; components with nothing wrong are absent.
    pub stuck: BTreeMap<Component, Vec<(String, String)>>,
    /// Names of owned HPAs and PDBs, to delete those no longer wanted.
    pub hpas: BTreeSet<String>,
    pub pdbs: BTreeSet<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedDeployment {
    /// Image of the `chat-system` container.
    pub image: Option<String>,
    pub spec_replicas: Option<i32>,
    /// Whether our apply manager owns `spec.replicas` (it must hand it over before an HPA takes it).
    pub replicas_owned_by_us: bool,
    pub generation: Option<i64>,
    pub observed_generation: Option<i64>,
    pub replicas: i32,
    pub ready_replicas: i32,
    pub updated_replicas: i32,
    pub available_replicas: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobPhase {
    Running,
    Succeeded,
    Failed,
}

impl JobPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            JobPhase::Running => "Running",
            JobPhase::Succeeded => "Succeeded",
            JobPhase::Failed => "Failed",
        }
    }
}

pub async fn observe(client: &Client, cs: &ChatSystem) -> Result<Observed, Error> {
    let ns = cs.namespace().ok_or(Error::MissingNamespace)?;
    let list = ListParams::default().labels(&names::instance_selector(cs));
    let mut observed = Observed::default();

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let wanted: BTreeSet<(SourceKind, String)> = cs.spec.references().into_iter().map(|r| (r.kind, r.name)).collect();
    for (kind, name) in wanted {
        let fingerprints = match kind {
            SourceKind::Secret => secrets.get_opt(&name).await?.map(|s| {
                s.data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, fingerprint(&v.0)))
                    .collect()
            }),
            SourceKind::ConfigMap => config_maps.get_opt(&name).await?.map(|c| {
                let text = c
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, fingerprint(v.as_bytes())));
                let binary = c
                    .binary_data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, fingerprint(&v.0)));
                text.chain(binary).collect()
            }),
        };
        observed.sources.insert((kind, name), fingerprints);
    }

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    for d in deployments.list(&list).await? {
        if !owned_by(&d.metadata, cs) {
            continue;
        }
        let Some(component) = d.labels().get(COMPONENT_LABEL).and_then(|c| Component::from_label(c)) else {
            continue;
        };
        if let Some(stuck) = progress_deadline_exceeded(&d) {
            observed.stuck.entry(component).or_default().push(stuck);
        }
        observed.deployments.insert(component, observe_deployment(&d));
    }

    // Pods carry the instance labels of their template; they are owned by ReplicaSets, so the
    // labels (with the managed-by label only we set) are what ties them to this ChatSystem.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    for pod in pods.list(&list).await? {
        let Some(component) = pod.labels().get(COMPONENT_LABEL).and_then(|c| Component::from_label(c)) else {
            continue;
        };
        for stuck in stuck_containers(&pod) {
            observed.stuck.entry(component).or_default().push(stuck);
        }
    }

    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    for job in jobs.list(&list).await? {
        if owned_by(&job.metadata, cs) {
            observed.jobs.insert(job.name_any(), job_phase(&job));
        }
    }

    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), &ns);
    for hpa in hpas.list(&list).await? {
        if owned_by(&hpa.metadata, cs) {
            observed.hpas.insert(hpa.name_any());
        }
    }

    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &ns);
    for pdb in pdbs.list(&list).await? {
        if owned_by(&pdb.metadata, cs) {
            observed.pdbs.insert(pdb.name_any());
        }
    }
    Ok(observed)
}

/// SHA-256 of one value, hex. Only ever combined with the others into the pods' hash annotation.
pub fn fingerprint(value: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, value).as_ref())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// Labels can be copied by anyone; the owner reference's uid says the object is really ours.
fn owned_by(meta: &ObjectMeta, cs: &ChatSystem) -> bool {
    let uid = cs.meta().uid.as_deref();
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| Some(o.uid.as_str()) == uid && o.kind == "ChatSystem")
}

pub fn observe_deployment(d: &Deployment) -> ObservedDeployment {
    let image = d
        .spec
        .template
        .spec
        .as_ref()
        .and_then(|p| p.containers.iter().find(|c| c.name == CONTAINER))
        .and_then(|c| c.image.clone());
    let status = d.status.clone().unwrap_or_default();
    ObservedDeployment {
        image,
        spec_replicas: d.spec.replicas,
        replicas_owned_by_us: manager_owns_replicas(&d.metadata, names::MANAGER),
        generation: d.metadata.generation,
        observed_generation: status.observed_generation,
        replicas: status.replicas.unwrap_or(0),
        ready_replicas: status.ready_replicas.unwrap_or(0),
        updated_replicas: status.updated_replicas.unwrap_or(0),
        available_replicas: status.available_replicas.unwrap_or(0),
    }
}

/// Whether `manager`'s apply entry in `managedFields` lists `spec.replicas`.
pub fn manager_owns_replicas(meta: &ObjectMeta, manager: &str) -> bool {
    meta.managed_fields.iter().flatten().any(|mf| {
        mf.manager.as_deref() == Some(manager)
            && mf.operation.as_deref() == Some("Apply")
            && mf
                .fields_v1
                .as_ref()
                .and_then(|f| f.0.get("f:spec"))
                .and_then(|s| s.get("f:replicas"))
                .is_some()
    })
}

/// Container waiting reasons that do not fix themselves: the rollout cannot finish until someone
/// changes the image, the spec or what the pods depend on.
pub const STUCK_REASONS: [&str; 5] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
];

/// The Deployment controller gave up waiting for progress (`progressDeadlineSeconds`).
pub fn progress_deadline_exceeded(d: &Deployment) -> Option<(String, String)> {
    let conditions = d.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .find(|c| {
            c.type_.as_deref() == Some("Progressing")
                && c.status.as_deref() == Some("False")
                && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        })
        .map(|c| {
            let message = c.message.clone().unwrap_or_default();
            (
                "ProgressDeadlineExceeded".to_string(),
                format!("Deployment {}: {message}", d.name_any()),
            )
        })
}

/// Containers of `pod` waiting for one of [`STUCK_REASONS`].
pub fn stuck_containers(pod: &Pod) -> Vec<(String, String)> {
    let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.as_ref());
    statuses
        .into_iter()
        .flatten()
        .filter_map(|cs| {
            let waiting = cs.state.as_ref()?.waiting.as_ref()?;
            let reason = waiting.reason.as_deref().filter(|r| STUCK_REASONS.contains(r))?;
            let detail = waiting.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
            Some((reason.to_string(), format!("pod {} {reason}{detail}", pod.name_any())))
        })
        .collect()
}

pub fn job_phase(job: &Job) -> JobPhase {
    let status = job.status.clone().unwrap_or_default();
    let condition = |type_: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == type_ && c.status == "True")
    };
    if condition("Complete") || condition("SuccessCriteriaMet") {
        JobPhase::Succeeded
    } else if condition("Failed") || condition("FailureTarget") {
        JobPhase::Failed
    } else {
        JobPhase::Running
    }
}
