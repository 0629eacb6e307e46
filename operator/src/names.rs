//! Names and labels of the objects the operator owns, in one place so observe, build and apply
//! can never disagree about them.

use std::collections::BTreeMap;

use crate::crd::{AutoscalingSpec, ChatSystem, ChatSystemSpec};
use k8s_openapi::api::core::v1::ResourceRequirements;

/// Field manager for every server-side apply; one manager so ownership is easy to read.
pub const MANAGER: &str = "chat-operator";
/// Field manager that briefly owns a Deployment's `replicas` while it is handed to the HPA.
pub const HANDOVER_MANAGER: &str = "chat-operator-handover-to-hpa";
/// Name of the data-plane container, also used to find the image a Deployment runs now.
pub const CONTAINER: &str = "chat-system";

pub const NAME_LABEL: &str = "app.kubernetes.io/name";
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";
pub const VERSION_LABEL: &str = "app.kubernetes.io/version";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    Api,
    Indexer,
    Counter,
}

impl Component {
    pub const ALL: [Component; 3] = [Component::Api, Component::Indexer, Component::Counter];

    /// Both the `chat-system` subcommand and the name suffix.
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Api => "api",
            Component::Indexer => "indexer",
            Component::Counter => "counter",
        }
    }

    pub fn from_label(value: &str) -> Option<Component> {
        Component::ALL.into_iter().find(|c| c.as_str() == value)
    }

    pub fn replicas(self, spec: &ChatSystemSpec) -> i32 {
        match self {
            Component::Api => spec.api.replicas,
            Component::Indexer => spec.indexer.replicas,
            Component::Counter => spec.counter.replicas,
        }
    }

    pub fn autoscaling(self, spec: &ChatSystemSpec) -> &AutoscalingSpec {
        match self {
            Component::Api => &spec.api.autoscaling,
            Component::Indexer => &spec.indexer.autoscaling,
            Component::Counter => &spec.counter.autoscaling,
        }
    }

    pub fn resources(self, spec: &ChatSystemSpec) -> Option<&ResourceRequirements> {
        match self {
            Component::Api => spec.api.resources.as_ref(),
            Component::Indexer => spec.indexer.resources.as_ref(),
            Component::Counter => spec.counter.resources.as_ref(),
        }
    }

    /// Name of the component's Deployment, HPA, PDB and (api) Service.
    pub fn object_name(self, cs: &ChatSystem) -> String {
        format!("{}-{}", cs_name(cs), self.as_str())
    }
}

pub fn cs_name(cs: &ChatSystem) -> &str {
    cs.metadata.name.as_deref().unwrap_or("chat")
}

fn cs_namespace(cs: &ChatSystem) -> &str {
    cs.metadata.namespace.as_deref().unwrap_or("default")
}

/// `CHAT_REDIS_PREFIX` when `redis.keyPrefix` is unset. Namespaces and ChatSystem names never
/// contain `:`, so two ChatSystems can never derive the same prefix (nor one a prefix of another's).
pub fn default_redis_prefix(cs: &ChatSystem) -> String {
    format!("chat:{}:{}:", cs_namespace(cs), cs_name(cs))
}

/// `CHAT_SEARCH_INDEX` when `elasticsearch.index` is unset: unique for the same reason, with `_`
/// (which neither namespaces nor names contain) as the separator, all lowercase as Elasticsearch
/// requires.
pub fn default_search_index(cs: &ChatSystem) -> String {
    format!("chat_messages_{}_{}", cs_namespace(cs), cs_name(cs))
}

/// Labels that select exactly the objects one ChatSystem owns (stable across image versions).
pub fn instance_selector(cs: &ChatSystem) -> String {
    format!(
        "{NAME_LABEL}=chat-system,{INSTANCE_LABEL}={},{MANAGED_BY_LABEL}={MANAGER}",
        cs_name(cs)
    )
}

/// Pod selector of one component; never includes the version, which changes on upgrades.
pub fn selector_labels(cs: &ChatSystem, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME_LABEL.to_string(), "chat-system".to_string()),
        (INSTANCE_LABEL.to_string(), cs_name(cs).to_string()),
        (COMPONENT_LABEL.to_string(), component.to_string()),
    ])
}

/// Labels on every owned object and pod.
pub fn labels(cs: &ChatSystem, component: &str, tag: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(cs, component);
    labels.insert(MANAGED_BY_LABEL.to_string(), MANAGER.to_string());
    labels.insert(PART_OF_LABEL.to_string(), "chat-system".to_string());
    // A tag that is not a valid label value (too long, or not starting and ending alphanumeric)
    // is simply not recorded here.
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if tag.len() <= 63 && alnum(tag.chars().next()) && alnum(tag.chars().last()) {
        labels.insert(VERSION_LABEL.to_string(), tag.to_string());
    }
    labels
}

/// Name of the migrations Job for one migration set (image and target database): a new image
/// gets a new Job, anything else keeps the one that ran.
pub fn migration_job_name(cs: &ChatSystem, migration_set: &str) -> String {
    format!("{}-migrate-{:08x}", cs_name(cs), fnv1a32(migration_set.as_bytes()))
}

// A stable hash (unlike std's, which may change between Rust releases): names must survive an
// operator upgrade, or every upgrade would re-run migrations.
fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in bytes {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_is_stable() {
        // Known FNV-1a test vectors; a change here would rename every migrations Job.
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }
}
