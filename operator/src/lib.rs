//! chat-operator: reconciles `ChatSystem` resources into the chat-system data plane.
//!
//! One reconcile is a pipeline (see `controller::reconcile`):
//! observe → validate → build → apply → update status.
//! Only `observe` and `apply` (and the status patch) talk to the API server; `validate`, `build`
//! and `status` are pure and carry most of the tests.

pub mod apply;
pub mod build;
pub mod controller;
pub mod crd;
pub mod lease;
pub mod metrics;
pub mod names;
pub mod observe;
pub mod status;
pub mod validate;

/// Every way a reconcile (or the process) can fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("serialising an object: {0}")]
    Json(#[from] serde_json::Error),
    #[error("reading YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
    #[error("the ChatSystem has no namespace")]
    MissingNamespace,
    #[error("lost the leader Lease {0}")]
    LeaseLost(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Short label for the failures metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Json(_) => "json",
            Error::Yaml(_) => "yaml",
            Error::MissingNamespace => "namespace",
            Error::LeaseLost(_) => "lease",
            Error::Io(_) => "io",
        }
    }
}
