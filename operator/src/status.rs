//! Status: the ChatSystem's status and the Events worth emitting, computed (purely) from what was
//! observed, what validation found and what build decided.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::{Event, EventType};

use crate::build::Desired;
use crate::crd::{ChatSystem, ChatSystemStatus, ComponentStatus, MigrationStatus};
use crate::names::Component;
use crate::observe::{JobPhase, Observed, ObservedDeployment};

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";

/// What the status is computed from.
pub struct Inputs<'a> {
    pub cs: &'a ChatSystem,
    pub observed: &'a Observed,
    /// `None` when validation failed and nothing was built.
    pub desired: Option<&'a Desired>,
    pub problems: &'a [String],
    pub now: Timestamp,
}

pub fn compute(inputs: &Inputs) -> ChatSystemStatus {
    let Inputs {
        cs,
        observed,
        desired,
        problems,
        ..
    } = inputs;
    let image = cs.spec.image.reference();
    let component_status = |c: Component| observed.deployments.get(&c).map(component);

    let migration = desired.and_then(|d| {
        d.rollout.job_name.as_ref().map(|job_name| MigrationStatus {
            job_name: job_name.clone(),
            image: image.clone(),
            phase: d.rollout.job_phase.map_or("Pending", JobPhase::as_str).to_string(),
        })
    });
    let job_phase = desired.and_then(|d| d.rollout.job_phase);

    let not_ready: Vec<String> = Component::ALL
        .into_iter()
        .filter_map(|c| match observed.deployments.get(&c) {
            None => Some(format!("{} not created yet", c.as_str())),
            Some(d) => {
                // With an HPA the wanted count is whatever it set; otherwise the spec's.
                let wanted = if c.autoscaling(&cs.spec).enabled {
                    d.spec_replicas.unwrap_or(1)
                } else {
                    c.replicas(&cs.spec)
                };
                (!deployment_done(d, &image, wanted)).then(|| {
                    format!(
                        "{} {}/{} ready, {} updated",
                        c.as_str(),
                        d.ready_replicas,
                        wanted,
                        d.updated_replicas
                    )
                })
            }
        })
        .collect();

    let (degraded, progressing, ready) = if !problems.is_empty() {
        let message = problems.join("; ");
        (
            (true, "InvalidSpec", message.clone()),
            (
                false,
                "InvalidSpec",
                "nothing is applied until the spec is fixed".to_string(),
            ),
            (false, "InvalidSpec", message),
        )
    } else if cs.spec.paused {
        let message = "spec.paused is true: nothing is applied until it is false".to_string();
        let ready = if not_ready.is_empty() {
            (true, "AllComponentsReady", format!("all components run {image}"))
        } else {
            (false, "ComponentsNotReady", not_ready.join(", "))
        };
        ((false, "AsExpected", String::new()), (false, "Paused", message), ready)
    } else if job_phase == Some(JobPhase::Failed) {
        let job = migration.as_ref().map(|m| m.job_name.as_str()).unwrap_or_default();
        let message =
            format!("migrations Job {job} failed; the previous image keeps running (delete the Job to retry)");
        (
            (true, "MigrationFailed", message.clone()),
            (false, "MigrationFailed", message.clone()),
            (false, "MigrationFailed", message),
        )
    } else if desired.is_some_and(|d| !d.rollout.held_back.is_empty()) {
        let message = format!("waiting for migrations Job for {image}");
        (
            (false, "AsExpected", String::new()),
            (true, "MigrationRunning", message.clone()),
            (false, "MigrationRunning", message),
        )
    } else if !not_ready.is_empty() {
        let message = not_ready.join(", ");
        (
            (false, "AsExpected", String::new()),
            (true, "RollingOut", message.clone()),
            (false, "ComponentsNotReady", message),
        )
    } else {
        (
            (false, "AsExpected", String::new()),
            (false, "Complete", format!("all components run {image}")),
            (true, "AllComponentsReady", format!("all components run {image}")),
        )
    };

    // A rollout that cannot finish on its own is Degraded, whatever else is going on (an invalid
    // spec or a failed migration already is, with its own reason).
    let stuck: Vec<&(String, String)> = observed.stuck.values().flatten().collect();
    let degraded = match stuck.first() {
        Some((reason, _)) if !degraded.0 => {
            let message = stuck.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>().join("; ");
            (true, reason.as_str(), message)
        }
        _ => degraded,
    };

    let old = cs.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    let conditions = [(READY, ready), (PROGRESSING, progressing), (DEGRADED, degraded)]
        .into_iter()
        .map(|(type_, (status, reason, message))| condition(inputs, old, type_, status, reason, message))
        .collect();

    let images: Vec<Option<&String>> = Component::ALL
        .iter()
        .map(|c| observed.deployments.get(c).and_then(|d| d.image.as_ref()))
        .collect();
    let running = images[0]
        .filter(|first| images.iter().all(|i| i == &Some(*first)))
        .cloned();

    ChatSystemStatus {
        observed_generation: cs.metadata.generation,
        conditions,
        image: running,
        migration,
        api: component_status(Component::Api),
        indexer: component_status(Component::Indexer),
        counter: component_status(Component::Counter),
    }
}

/// A Deployment is done when it wants `wanted` pods, its controller has seen the latest spec, it
/// runs `image`, and every wanted pod is updated and ready with no old pod left.
fn deployment_done(d: &ObservedDeployment, image: &str, wanted: i32) -> bool {
    d.spec_replicas == Some(wanted)
        && d.image.as_deref() == Some(image)
        && d.observed_generation >= d.generation
        && d.updated_replicas >= wanted
        && d.ready_replicas >= wanted
        && d.replicas == wanted
}

fn component(d: &ObservedDeployment) -> ComponentStatus {
    ComponentStatus {
        replicas: d.replicas,
        ready_replicas: d.ready_replicas,
        updated_replicas: d.updated_replicas,
        image: d.image.clone(),
    }
}

// lastTransitionTime moves only when the status flips, as the Condition convention asks.
fn condition(
    inputs: &Inputs,
    old: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_string();
    let last_transition_time = old
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(inputs.now));
    Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message,
        observed_generation: inputs.cs.metadata.generation,
        last_transition_time,
    }
}

fn is_true(conditions: &[Condition], type_: &str) -> Option<bool> {
    conditions.iter().find(|c| c.type_ == type_).map(|c| c.status == "True")
}

/// Events for the transitions a human would want to see in `kubectl describe`.
pub fn events(
    old: Option<&ChatSystemStatus>,
    new: &ChatSystemStatus,
    observed: &Observed,
    desired: Option<&Desired>,
) -> Vec<Event> {
    let mut events = Vec::new();
    let old_conditions = old.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let find = |type_: &str| new.conditions.iter().find(|c| c.type_ == type_);

    if let Some(d) = desired {
        if let Some(job) = d.job.as_ref().filter(|_| d.rollout.job_phase.is_none()) {
            let name = job.metadata.name.clone().unwrap_or_default();
            events.push(event(
                EventType::Normal,
                "MigrationStarted",
                "Migrate",
                format!("created migrations Job {name} for {}", d.rollout.desired_image),
            ));
        }
        // One event per kind of change: the recorder folds same-reason events into a series.
        let mut created = Vec::new();
        let mut rolled = Vec::new();
        for deployment in &d.deployments {
            let name = deployment.metadata.name.clone().unwrap_or_default();
            let image = deployment
                .spec
                .template
                .spec
                .as_ref()
                .and_then(|p| p.containers.first())
                .and_then(|c| c.image.clone())
                .unwrap_or_default();
            let component = Component::ALL
                .into_iter()
                .find(|c| name.ends_with(&format!("-{}", c.as_str())));
            match component
                .and_then(|c| observed.deployments.get(&c))
                .and_then(|o| o.image.clone())
            {
                None => created.push(format!("{name} ({image})")),
                Some(current) if current != image => rolled.push(format!("{name} {current} -> {image}")),
                Some(_) => {}
            }
        }
        if !created.is_empty() {
            let note = format!("created Deployments {}", created.join(", "));
            events.push(event(EventType::Normal, "Created", "Create", note));
        }
        if !rolled.is_empty() {
            let note = format!("rolling out {}", rolled.join(", "));
            events.push(event(EventType::Normal, "RollingOut", "Rollout", note));
        }
    }

    for (type_, want, kind) in [(READY, true, EventType::Normal), (DEGRADED, true, EventType::Warning)] {
        let Some(c) = find(type_) else { continue };
        let now = c.status == "True";
        if now == want && is_true(old_conditions, type_) != Some(true) {
            events.push(event(kind, &c.reason, "Reconcile", c.message.clone()));
        }
    }
    events
}

fn event(type_: EventType, reason: &str, action: &str, note: String) -> Event {
    Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: action.to_string(),
        secondary: None,
    }
}
