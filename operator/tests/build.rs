//! Snapshot and property tests of the pure build step.

mod common;

use chat_operator::build::{build, observed_after_migration};
use chat_operator::observe::Observed;
use common::fixture;
use serde_json::Value;

fn render(name: &str) -> (String, Vec<Value>) {
    let cs = fixture(name);
    let desired = build(&cs, &observed_after_migration(&cs).unwrap()).unwrap();
    (desired.to_yaml(), desired.objects())
}

#[test]
fn snapshot_minimal() {
    insta::assert_snapshot!("minimal", render("minimal").0);
}

#[test]
fn snapshot_full() {
    insta::assert_snapshot!("full", render("full").0);
}

#[test]
fn first_install_with_migrations_holds_back_every_deployment() {
    let cs = fixture("minimal");
    let desired = build(&cs, &Observed::default()).unwrap();
    assert!(desired.job.is_some());
    assert!(desired.deployments.is_empty());
    assert_eq!(desired.rollout.held_back.len(), 3);
}

#[test]
fn every_object_is_owned_labelled_and_hardened() {
    for name in ["minimal", "full"] {
        let (_, objects) = render(name);
        assert_eq!(objects.len(), if name == "full" { 8 } else { 6 }, "{name}");
        for o in &objects {
            let meta = &o["metadata"];
            assert_eq!(meta["ownerReferences"][0]["kind"], "ChatSystem");
            assert_eq!(meta["ownerReferences"][0]["controller"], true);
            assert_eq!(meta["labels"]["app.kubernetes.io/managed-by"], "chat-operator");
            let Some(pod) = o["spec"]["template"]["spec"].as_object() else {
                continue;
            };
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
            assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
            assert_eq!(pod["automountServiceAccountToken"], false);
            let c = &pod["containers"][0];
            assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
            assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
            assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
            // Connection URLs only ever come from Secrets.
            for env in c["env"].as_array().unwrap() {
                if env["name"].as_str().unwrap().ends_with("_URL") {
                    assert!(env.get("value").is_none(), "{env}");
                    assert!(env["valueFrom"]["secretKeyRef"].is_object(), "{env}");
                }
            }
            if o["kind"] == "Deployment" {
                assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/up");
                assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
                assert_eq!(c["livenessProbe"]["httpGet"]["port"], "admin");
                let ann = &o["spec"]["template"]["metadata"]["annotations"];
                assert_eq!(ann["prometheus.io/scrape"], "true");
                assert_eq!(ann["prometheus.io/port"], "9000");
            }
        }
    }
}

#[test]
fn autoscaled_deployments_leave_replicas_to_the_hpa() {
    let (_, objects) = render("full");
    let deployment = |n: &str| {
        objects
            .iter()
            .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == n)
            .unwrap()
    };
    assert!(deployment("chat-api")["spec"].get("replicas").is_none());
    assert!(deployment("chat-indexer")["spec"].get("replicas").is_none());
    assert_eq!(deployment("chat-counter")["spec"]["replicas"], 2);
    let hpas: Vec<_> = objects
        .iter()
        .filter(|o| o["kind"] == "HorizontalPodAutoscaler")
        .collect();
    assert_eq!(hpas.len(), 2);
}

#[test]
fn render_without_uid_has_no_owner_reference() {
    let mut cs = fixture("minimal");
    cs.metadata.uid = None;
    let desired = build(&cs, &observed_after_migration(&cs).unwrap()).unwrap();
    assert!(
        desired
            .objects()
            .iter()
            .all(|o| o["metadata"].get("ownerReferences").is_none())
    );
}
