//! Validate: what the CRD schema cannot check. The CEL rules are repeated here because a CRD can be
//! installed on a cluster that does not enforce them (or edited by hand); Secrets are only visible
//! to the operator. Problems are reported in the Degraded condition, and nothing is applied.

use crate::crd::{ChatSystem, MAX_NAME_LEN};
use crate::names::{Component, cs_name};
use crate::observe::Observed;

pub fn validate(cs: &ChatSystem, observed: &Observed) -> Vec<String> {
    let mut problems = Vec::new();
    let spec = &cs.spec;

    let name = cs_name(cs);
    if name.len() > MAX_NAME_LEN {
        problems.push(format!("metadata.name is longer than {MAX_NAME_LEN} characters"));
    }

    for component in Component::ALL {
        let scaling = component.autoscaling(spec);
        if scaling.enabled && scaling.min_replicas > scaling.max_replicas {
            problems.push(format!(
                "{}.autoscaling.minReplicas ({}) exceeds maxReplicas ({})",
                component.as_str(),
                scaling.min_replicas,
                scaling.max_replicas
            ));
        }
        if component.replicas(spec) < 0 {
            problems.push(format!("{}.replicas must not be negative", component.as_str()));
        }
    }

    for (field, conn) in [
        ("database", &spec.database),
        ("redis", &spec.redis),
        ("elasticsearch", &spec.elasticsearch),
    ] {
        let r = &conn.url_secret_ref;
        match observed.secrets.get(&r.name) {
            Some(Some(keys)) if keys.contains(&r.key) => {}
            Some(Some(_)) => problems.push(format!(
                "{field}.urlSecretRef: Secret {:?} has no key {:?}",
                r.name, r.key
            )),
            _ => problems.push(format!("{field}.urlSecretRef: Secret {:?} not found", r.name)),
        }
    }
    problems
}
