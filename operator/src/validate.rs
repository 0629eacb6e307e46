//! Validate: what the CRD schema cannot check. The CEL rules are repeated here because a CRD can be
//! installed on a cluster that does not enforce them (or edited by hand); Secrets are only visible
//! to the operator. Problems are reported in the Degraded condition, and nothing is applied.

use std::collections::BTreeSet;

use crate::crd::{ChatSystem, MAX_NAME_LEN, RESERVED_ENV};
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

    for (field, list) in [
        ("common.env", &spec.common.env),
        ("api.env", &spec.api.env),
        ("indexer.env", &spec.indexer.env),
        ("counter.env", &spec.counter.env),
    ] {
        let mut seen = BTreeSet::new();
        for e in list {
            if RESERVED_ENV.contains(&e.name.as_str()) {
                problems.push(format!(
                    "{field}: {} is set by the operator from a ChatSystem field; set that field instead",
                    e.name
                ));
            }
            if !seen.insert(e.name.as_str()) {
                problems.push(format!("{field}: {} is listed twice", e.name));
            }
            if e.value.is_some() && e.value_from.is_some() {
                problems.push(format!("{field}: {} sets both value and valueFrom", e.name));
            }
        }
    }

    for r in spec.references() {
        let kind = r.kind.as_str();
        match observed.sources.get(&(r.kind, r.name.clone())) {
            Some(Some(keys)) if keys.contains_key(&r.key) => {}
            _ if r.optional => {}
            Some(Some(_)) => problems.push(format!("{}: {kind} {:?} has no key {:?}", r.field, r.name, r.key)),
            _ => problems.push(format!("{}: {kind} {:?} not found", r.field, r.name)),
        }
    }
    let es = &spec.elasticsearch;
    if es.api_key_secret_ref.is_some() && es.basic_auth.is_some() {
        problems.push("elasticsearch: set apiKeySecretRef or basicAuth, not both".to_string());
    }
    for (field, bundle) in [
        ("database", &spec.database.ca_bundle),
        ("redis", &spec.redis.ca_bundle),
        ("elasticsearch", &es.ca_bundle),
    ] {
        if let Some(b) = bundle
            && b.secret_key_ref.is_some() == b.config_map_key_ref.is_some()
        {
            problems.push(format!(
                "{field}.caBundle: set exactly one of secretKeyRef and configMapKeyRef"
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{EnvVarSpec, SourceKind};
    use std::collections::BTreeMap;

    fn cs() -> ChatSystem {
        let text = include_str!("../tests/fixtures/minimal.yaml");
        serde_norway::from_str(text).unwrap()
    }

    fn observed() -> Observed {
        let keys = ["database-url", "redis-url", "elasticsearch-url"].map(|k| (k.to_string(), "f".to_string()));
        Observed {
            sources: BTreeMap::from([(
                (SourceKind::Secret, "chat-secrets".to_string()),
                Some(keys.into_iter().collect()),
            )]),
            ..Observed::default()
        }
    }

    fn var(name: &str) -> EnvVarSpec {
        EnvVarSpec {
            name: name.into(),
            value: Some("1".into()),
            value_from: None,
        }
    }

    // The CRD's CEL rule refuses these too; this is for clusters that do not enforce it.
    #[test]
    fn env_may_not_override_the_operator_nor_repeat_a_name() {
        assert_eq!(validate(&cs(), &observed()), Vec::<String>::new());
        let mut bad = cs();
        bad.spec.api.env = vec![var("CHAT_LISTEN")];
        bad.spec.common.env = vec![var("CHAT_TOKEN_GRACE_S"), var("CHAT_TOKEN_GRACE_S")];
        assert_eq!(
            validate(&bad, &observed()),
            [
                "common.env: CHAT_TOKEN_GRACE_S is listed twice",
                "api.env: CHAT_LISTEN is set by the operator from a ChatSystem field; set that field instead",
            ]
        );
    }
}
