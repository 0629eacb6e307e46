//! Apply: make the cluster match `Desired` with server-side apply under one field manager, and
//! delete what is no longer wanted.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::Error;
use crate::build::Desired;
use crate::names::{HANDOVER_MANAGER, MANAGER};

pub async fn apply(client: &Client, ns: &str, desired: &Desired) -> Result<(), Error> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    // The documented SSA handoff to an HPA: a private manager takes `replicas` at its current
    // value (no force: a conflict means the HPA already owns it), so when our apply drops the
    // field below, nobody's ownership lapses and the Deployment is not reset to 1 replica.
    for handover in &desired.handovers {
        let patch = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": { "name": handover.deployment },
            "spec": { "replicas": handover.replicas },
        });
        match deployments
            .patch(
                &handover.deployment,
                &PatchParams::apply(HANDOVER_MANAGER),
                &Patch::Apply(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }

    if let Some(job) = desired.job.as_ref().filter(|_| desired.rollout.job_phase.is_none()) {
        apply_one(client, ns, job).await?;
    }
    if let Some(service) = &desired.service {
        apply_one(client, ns, service).await?;
    }
    for deployment in &desired.deployments {
        apply_one(client, ns, deployment).await?;
    }
    for hpa in &desired.hpas {
        apply_one(client, ns, hpa).await?;
    }
    if let Some(pdb) = &desired.pdb {
        apply_one(client, ns, pdb).await?;
    }

    delete_all::<HorizontalPodAutoscaler>(client, ns, &desired.delete_hpas).await?;
    delete_all::<PodDisruptionBudget>(client, ns, &desired.delete_pdbs).await?;
    delete_all::<Job>(client, ns, &desired.delete_jobs).await?;
    Ok(())
}

async fn apply_one<K>(client: &Client, ns: &str, object: &K) -> Result<(), Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    api.patch(
        &object.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(object),
    )
    .await?;
    Ok(())
}

async fn delete_all<K>(client: &Client, ns: &str, names: &[String]) -> Result<(), Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + Debug + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    // Background propagation so a Job's pods go with it.
    let params = DeleteParams::background();
    for name in names {
        match api.delete(name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
