//! The controller: watches ChatSystems and what they own, and runs the reconcile pipeline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, instrument, warn};

use crate::crd::ChatSystem;
use crate::metrics::{ErrorLabels, Metrics};
use crate::names::{MANAGED_BY_LABEL, MANAGER};
use crate::status::{self, Inputs};
use crate::{Error, apply, build, observe, validate};

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Metrics,
    /// Consecutive failures per object, for the backoff; cleared by a success.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(client: Client, metrics: Metrics) -> Arc<Self> {
        let reporter = Reporter {
            controller: MANAGER.to_string(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Arc::new(Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            failures: Mutex::new(HashMap::new()),
        })
    }
}

/// Requeue intervals: a safety net only, since every owned object is watched.
const REQUEUE_SETTLED: Duration = Duration::from_secs(300);
const REQUEUE_PROGRESSING: Duration = Duration::from_secs(30);
const REQUEUE_INVALID: Duration = Duration::from_secs(60);

#[instrument(skip_all, fields(chatsystem = %cs.name_any(), namespace = cs.namespace().unwrap_or_default()))]
pub async fn reconcile(cs: Arc<ChatSystem>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics.reconciles.inc();
    let started = std::time::Instant::now();
    let result = reconcile_inner(&cs, &ctx).await;
    ctx.metrics.duration.observe(started.elapsed().as_secs_f64());
    if result.is_ok() {
        ctx.failures.lock().expect("failures lock").remove(&key(&cs));
    }
    result
}

async fn reconcile_inner(cs: &ChatSystem, ctx: &Context) -> Result<Action, Error> {
    let ns = cs.namespace().ok_or(Error::MissingNamespace)?;

    let observed = observe::observe(&ctx.client, cs).await?;
    let problems = validate::validate(cs, &observed);
    let desired = if cs.spec.paused {
        info!("spec.paused; nothing applied");
        None
    } else if problems.is_empty() {
        let desired = build::build(cs, &observed)?;
        apply::apply(&ctx.client, &ns, &desired).await?;
        Some(desired)
    } else {
        warn!(?problems, "invalid ChatSystem; nothing applied");
        None
    };

    let new_status = status::compute(&Inputs {
        cs,
        observed: &observed,
        desired: desired.as_ref(),
        problems: &problems,
        now: Timestamp::now(),
    });
    let reference = cs.object_ref(&());
    for event in status::events(cs.status.as_ref(), &new_status, &observed, desired.as_ref()) {
        // Events are for humans; failing to record one must not fail the reconcile.
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            warn!(error = %e, reason = %event.reason, "could not publish event");
        }
    }
    if cs.status.as_ref() != Some(&new_status) {
        let api: Api<ChatSystem> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = json!({
            "apiVersion": "chatsystem.dev/v1alpha1",
            "kind": "ChatSystem",
            "status": new_status,
        });
        api.patch_status(
            &cs.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    }

    let progressing = new_status
        .conditions
        .iter()
        .any(|c| c.type_ == status::PROGRESSING && c.status == "True");
    Ok(Action::requeue(if !problems.is_empty() {
        REQUEUE_INVALID
    } else if progressing {
        REQUEUE_PROGRESSING
    } else {
        REQUEUE_SETTLED
    }))
}

fn key(cs: &ChatSystem) -> String {
    format!("{}/{}", cs.namespace().unwrap_or_default(), cs.name_any())
}

/// Exponential backoff per object: 5 s, 10 s, 20 s … capped at 5 minutes.
pub fn backoff(failures: u32) -> Duration {
    let secs = 5u64.saturating_mul(1u64 << failures.saturating_sub(1).min(6));
    Duration::from_secs(secs.min(300))
}

pub fn error_policy(cs: Arc<ChatSystem>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .failures
        .get_or_create(&ErrorLabels {
            error: error.metric_label().to_string(),
        })
        .inc();
    let mut failures = ctx.failures.lock().expect("failures lock");
    let count = failures.entry(key(&cs)).or_insert(0);
    *count += 1;
    let delay = backoff(*count);
    warn!(chatsystem = %key(&cs), error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Runs the controller until `shutdown` resolves (SIGTERM, or leadership lost).
pub async fn run(
    client: Client,
    namespace: Option<String>,
    metrics: Metrics,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    fn api<K>(client: &Client, namespace: &Option<String>) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let owned = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGER}"));
    let ctx = Context::new(client.clone(), metrics);
    info!(
        namespace = namespace.as_deref().unwrap_or("<all>"),
        "starting controller"
    );
    Controller::new(
        api::<ChatSystem>(&client, &namespace),
        watcher::Config::default().any_semantic(),
    )
    .owns(api::<Deployment>(&client, &namespace), owned.clone())
    .owns(api::<Job>(&client, &namespace), owned.clone())
    .owns(api::<Service>(&client, &namespace), owned.clone())
    .owns(api::<HorizontalPodAutoscaler>(&client, &namespace), owned.clone())
    .owns(api::<PodDisruptionBudget>(&client, &namespace), owned)
    .graceful_shutdown_on(shutdown)
    .run(reconcile, error_policy, ctx)
    .for_each(|result| async move {
        if let Err(e) = result {
            warn!(error = %e, "controller stream error");
        }
    })
    .await;
    info!("controller stopped");
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(4), Duration::from_secs(40));
        assert_eq!(backoff(30), Duration::from_secs(300));
    }
}
