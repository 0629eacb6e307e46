//! Leader election against a mocked API server.

mod common;

use std::time::Duration;

use chat_operator::lease::{LeaseConfig, try_acquire};
use common::mock_client;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use serde_json::json;

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/ops/leases/chat-operator";

fn config() -> LeaseConfig {
    LeaseConfig {
        name: "chat-operator".into(),
        namespace: "ops".into(),
        identity: "pod-a".into(),
        duration: Duration::from_secs(15),
        renew_every: Duration::from_secs(4),
    }
}

#[tokio::test]
async fn creates_a_missing_lease_and_leads() {
    let (client, mut server) = mock_client();
    let verifier = tokio::spawn(async move {
        server.expect("GET", LEASE, &[]).await.not_found();
        let call = server
            .expect("POST", "/apis/coordination.k8s.io/v1/namespaces/ops/leases", &[])
            .await;
        assert_eq!(call.body["spec"]["holderIdentity"], "pod-a");
        assert_eq!(call.body["spec"]["leaseDurationSeconds"], 15);
        call.echo();
    });
    let api: Api<Lease> = Api::namespaced(client, "ops");
    assert!(try_acquire(&api, &config()).await.unwrap());
    verifier.await.unwrap();
}

#[tokio::test]
async fn waits_while_another_replica_holds_a_live_lease() {
    let (client, mut server) = mock_client();
    let verifier = tokio::spawn(async move {
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        server.expect("GET", LEASE, &[]).await.respond(
            200,
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                   "metadata": {"name": "chat-operator", "namespace": "ops", "resourceVersion": "7"},
                   "spec": {"holderIdentity": "pod-b", "leaseDurationSeconds": 15, "renewTime": now}}),
        );
        server.expect_no_more().await;
    });
    let api: Api<Lease> = Api::namespaced(client, "ops");
    assert!(!try_acquire(&api, &config()).await.unwrap());
    drop(api);
    verifier.await.unwrap();
}

#[tokio::test]
async fn takes_over_an_expired_lease_with_its_resource_version() {
    let (client, mut server) = mock_client();
    let verifier = tokio::spawn(async move {
        server.expect("GET", LEASE, &[]).await.respond(
            200,
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                   "metadata": {"name": "chat-operator", "namespace": "ops", "resourceVersion": "7"},
                   "spec": {"holderIdentity": "pod-b", "leaseDurationSeconds": 15,
                            "renewTime": "2020-01-01T00:00:00.000000Z", "leaseTransitions": 2}}),
        );
        // Optimistic concurrency: a racing replica's write makes this one fail with 409.
        let call = server.expect("PUT", LEASE, &[]).await;
        assert_eq!(call.body["metadata"]["resourceVersion"], "7");
        assert_eq!(call.body["spec"]["holderIdentity"], "pod-a");
        assert_eq!(call.body["spec"]["leaseTransitions"], 3);
        call.respond(
            409,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409, "message": "conflict"}),
        );
    });
    let api: Api<Lease> = Api::namespaced(client, "ops");
    assert!(!try_acquire(&api, &config()).await.unwrap(), "lost the race");
    verifier.await.unwrap();
}
