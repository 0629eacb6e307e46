//! Reconcile against a mocked API server: every request is asserted (method, path, query, body)
//! and answered, in order; a reconcile that stops short or makes an extra call fails the test.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chat_operator::build::migration_job;
use chat_operator::controller::{Context, reconcile};
use chat_operator::crd::ChatSystem;
use chat_operator::metrics::Metrics;
use common::*;
use kube::ResourceExt;
use serde_json::{Value, json};

const DEPLOY: &str = "/apis/apps/v1/namespaces/default/deployments";
const JOBS: &str = "/apis/batch/v1/namespaces/default/jobs";
const HPAS: &str = "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers";
const PDBS: &str = "/apis/policy/v1/namespaces/default/poddisruptionbudgets";
const SERVICE: &str = "/api/v1/namespaces/default/services/chat-api";

fn cs_with(f: impl FnOnce(&mut ChatSystem)) -> ChatSystem {
    let mut cs = fixture("minimal");
    f(&mut cs);
    cs
}

fn job_name(cs: &ChatSystem) -> String {
    migration_job(cs).unwrap().name_any()
}

/// Runs one reconcile of `cs` against `script`, which plays the API server.
async fn run<F, Fut>(cs: ChatSystem, script: F)
where
    F: FnOnce(ApiServer) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (client, server) = mock_client();
    let verifier = tokio::spawn(script(server));
    let ctx = Context::new(client, Metrics::default());
    let result = tokio::time::timeout(Duration::from_secs(10), reconcile(Arc::new(cs), ctx))
        .await
        .expect("reconcile timed out (an expected request was never answered)");
    result.expect("reconcile failed");
    tokio::time::timeout(Duration::from_secs(10), verifier)
        .await
        .expect("verifier timed out (an expected request never came)")
        .expect("verifier assertion failed");
}

async fn expect_deployment_applies(server: &mut ApiServer, image: &str) -> Vec<Value> {
    let mut bodies = Vec::new();
    for component in ["api", "indexer", "counter"] {
        let call = server.expect_apply(&format!("{DEPLOY}/chat-{component}")).await;
        assert_eq!(container(&call.body)["image"], image, "chat-{component} image");
        assert_eq!(container(&call.body)["args"], json!([component]));
        bodies.push(call.body.clone());
        call.echo();
    }
    bodies
}

#[tokio::test]
async fn first_reconcile_runs_migrations_before_creating_deployments() {
    let cs = fixture("minimal");
    let job = job_name(&cs);
    run(cs, |mut server| async move {
        server.serve_observe(&World::default()).await;
        let call = server.expect_apply(&format!("{JOBS}/{job}")).await;
        let pod = &call.body["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(pod["args"], json!(["migrate"]));
        assert_eq!(pod["image"], "ghcr.io/example/chat-system:1.0.0");
        assert_eq!(
            call.body["metadata"]["ownerReferences"][0]["uid"],
            "0b0b0b0b-1111-2222-3333-444444444444"
        );
        call.echo();
        let call = server.expect_apply(SERVICE).await;
        assert_eq!(call.body["spec"]["ports"][0]["targetPort"], "http");
        call.echo();
        // No Deployment yet: they would start against an unmigrated database.
        server.expect_apply(&format!("{PDBS}/chat-api")).await.echo();
        server.expect_event("MigrationStarted").await;
        let status = server.expect_status().await;
        assert_eq!(condition(&status, "Progressing")["status"], "True");
        assert_eq!(condition(&status, "Progressing")["reason"], "MigrationRunning");
        assert_eq!(condition(&status, "Ready")["status"], "False");
        assert_eq!(condition(&status, "Degraded")["status"], "False");
        assert_eq!(status["migration"]["phase"], "Pending");
        assert_eq!(status["observedGeneration"], 1);
        server.expect_no_more().await;
    })
    .await;
}

#[tokio::test]
async fn first_reconcile_without_migrations_creates_everything() {
    let cs = cs_with(|cs| cs.spec.migrations.enabled = false);
    run(cs, |mut server| async move {
        server.serve_observe(&World::default()).await;
        server.expect_apply(SERVICE).await.echo();
        let bodies = expect_deployment_applies(&mut server, "ghcr.io/example/chat-system:1.0.0").await;
        assert_eq!(bodies[0]["spec"]["replicas"], 2);
        assert_eq!(bodies[1]["spec"]["replicas"], 1);
        server.expect_apply(&format!("{PDBS}/chat-api")).await.echo();
        let event = server.expect_event("Created").await;
        assert!(event["note"].as_str().unwrap().contains("chat-counter"), "{event}");
        let status = server.expect_status().await;
        assert_eq!(condition(&status, "Ready")["reason"], "ComponentsNotReady");
        assert_eq!(condition(&status, "Progressing")["reason"], "RollingOut");
        server.expect_no_more().await;
    })
    .await;
}

#[tokio::test]
async fn image_change_applies_job_first_and_deployments_only_after_success() {
    let old_cs = fixture("minimal");
    let old_image = "ghcr.io/example/chat-system:1.0.0";
    let cs = cs_with(|cs| cs.spec.image.tag = "1.1.0".into());
    let new_job = job_name(&cs);
    let old_job = job_name(&old_cs);
    let running: Vec<Value> = ["api", "indexer", "counter"]
        .iter()
        .map(|c| deployment(c, old_image, 1, 1, true))
        .collect();

    // While the new Job has not succeeded, the Deployments are applied with the old image.
    let world = World {
        deployments: running.clone(),
        jobs: vec![job(&old_job, Some("Complete"))],
        pdbs: vec![named("PodDisruptionBudget", "policy/v1", "chat-api")],
        ..World::default()
    };
    run(cs.clone(), {
        let new_job = new_job.clone();
        |mut server| async move {
            server.serve_observe(&world).await;
            let call = server.expect_apply(&format!("{JOBS}/{new_job}")).await;
            assert_eq!(
                call.body["spec"]["template"]["spec"]["containers"][0]["image"],
                "ghcr.io/example/chat-system:1.1.0"
            );
            call.echo();
            server.expect_apply(SERVICE).await.echo();
            expect_deployment_applies(&mut server, old_image).await;
            server.expect_apply(&format!("{PDBS}/chat-api")).await.echo();
            server.expect_event("MigrationStarted").await;
            let status = server.expect_status().await;
            assert_eq!(condition(&status, "Progressing")["reason"], "MigrationRunning");
            assert_eq!(status["image"], old_image);
            server.expect_no_more().await;
        }
    })
    .await;

    // Once it succeeded, they roll to the new image, and the old Job is cleaned up.
    let world = World {
        deployments: running,
        jobs: vec![job(&old_job, Some("Complete")), job(&new_job, Some("Complete"))],
        pdbs: vec![named("PodDisruptionBudget", "policy/v1", "chat-api")],
        ..World::default()
    };
    run(cs, |mut server| async move {
        server.serve_observe(&world).await;
        // The Job exists: it is not applied again (its template is immutable).
        server.expect_apply(SERVICE).await.echo();
        expect_deployment_applies(&mut server, "ghcr.io/example/chat-system:1.1.0").await;
        server.expect_apply(&format!("{PDBS}/chat-api")).await.echo();
        let call = server.expect("DELETE", &format!("{JOBS}/{old_job}"), &[]).await;
        assert_eq!(call.body["propagationPolicy"], "Background");
        call.respond(200, job(&old_job, Some("Complete")));
        let event = server.expect_event("RollingOut").await;
        assert!(
            event["note"]
                .as_str()
                .unwrap()
                .contains("chat-api ghcr.io/example/chat-system:1.0.0 -> ghcr.io/example/chat-system:1.1.0"),
            "{event}"
        );
        let status = server.expect_status().await;
        assert_eq!(condition(&status, "Progressing")["reason"], "RollingOut");
        assert_eq!(status["migration"]["phase"], "Succeeded");
        server.expect_no_more().await;
    })
    .await;
}

#[tokio::test]
async fn failed_migration_keeps_old_image_and_sets_degraded() {
    let old_image = "ghcr.io/example/chat-system:1.0.0";
    let cs = cs_with(|cs| cs.spec.image.tag = "1.1.0".into());
    let new_job = job_name(&cs);
    let world = World {
        deployments: ["api", "indexer", "counter"]
            .iter()
            .map(|c| deployment(c, old_image, 1, 1, true))
            .collect(),
        jobs: vec![job(&new_job, Some("Failed"))],
        pdbs: vec![named("PodDisruptionBudget", "policy/v1", "chat-api")],
        ..World::default()
    };
    run(cs, |mut server| async move {
        server.serve_observe(&world).await;
        server.expect_apply(SERVICE).await.echo();
        expect_deployment_applies(&mut server, old_image).await;
        server.expect_apply(&format!("{PDBS}/chat-api")).await.echo();
        let event = server.expect_event("MigrationFailed").await;
        assert_eq!(event["type"], "Warning");
        let status = server.expect_status().await;
        let degraded = condition(&status, "Degraded");
        assert_eq!(degraded["status"], "True");
        assert_eq!(degraded["reason"], "MigrationFailed");
        assert!(degraded["message"].as_str().unwrap().contains(&new_job));
        assert_eq!(condition(&status, "Ready")["status"], "False");
        assert_eq!(status["migration"]["phase"], "Failed");
        assert_eq!(status["image"], old_image);
        server.expect_no_more().await;
    })
    .await;
}

#[tokio::test]
async fn autoscaling_switched_off_deletes_hpa_and_sets_replicas() {
    let image = "ghcr.io/example/chat-system:1.0.0";
    let cs = fixture("minimal");
    let job = job_name(&cs);
    let world = World {
        // The HPA had scaled api to 4; the Deployment's replicas belonged to it, not to us.
        deployments: vec![
            deployment("api", image, 4, 4, false),
            deployment("indexer", image, 1, 1, true),
            deployment("counter", image, 1, 1, true),
        ],
        jobs: vec![common::job(&job, Some("Complete"))],
        hpas: vec![named("HorizontalPodAutoscaler", "autoscaling/v2", "chat-api")],
        pdbs: vec![named("PodDisruptionBudget", "policy/v1", "chat-api")],
        ..World::default()
    };
    run(cs, |mut server| async move {
        server.serve_observe(&world).await;
        server.expect_apply(SERVICE).await.echo();
        let bodies = expect_deployment_applies(&mut server, image).await;
        assert_eq!(bodies[0]["spec"]["replicas"], 2, "api gets spec.api.replicas back");
        server.expect_apply(&format!("{PDBS}/chat-api")).await.echo();
        let call = server.expect("DELETE", &format!("{HPAS}/chat-api"), &[]).await;
        assert_eq!(call.body["propagationPolicy"], "Background");
        call.respond(200, named("HorizontalPodAutoscaler", "autoscaling/v2", "chat-api"));
        let status = server.expect_status().await;
        assert_eq!(
            condition(&status, "Ready")["status"],
            "False",
            "api runs 4 of 2 until scaled down"
        );
        server.expect_no_more().await;
    })
    .await;
}

#[tokio::test]
async fn autoscaling_switched_on_hands_replicas_over_without_reset() {
    let image = "ghcr.io/example/chat-system:1.0.0";
    let cs = cs_with(|cs| {
        cs.spec.api.autoscaling.enabled = true;
        cs.spec.api.autoscaling.min_replicas = 2;
        cs.spec.api.autoscaling.max_replicas = 8;
    });
    let job = job_name(&cs);
    let world = World {
        deployments: vec![
            deployment("api", image, 3, 3, true),
            deployment("indexer", image, 1, 1, true),
            deployment("counter", image, 1, 1, true),
        ],
        jobs: vec![common::job(&job, Some("Complete"))],
        pdbs: vec![named("PodDisruptionBudget", "policy/v1", "chat-api")],
        ..World::default()
    };
    run(cs, |mut server| async move {
        server.serve_observe(&world).await;
        // First a private manager takes `replicas` at its current value (no force) ...
        let call = server
            .expect("PATCH", &format!("{DEPLOY}/chat-api"), &[("fieldManager", "chat-operator-handover-to-hpa")])
            .await;
        assert_eq!(
            call.body,
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "chat-api"}, "spec": {"replicas": 3}})
        );
        call.respond(200, deployment("api", image, 3, 3, true));
        server.expect_apply(SERVICE).await.echo();
        // ... then our apply leaves the field out, so it is not reset to 1.
        let bodies = expect_deployment_applies(&mut server, image).await;
        assert!(bodies[0]["spec"].get("replicas").is_none(), "{}", bodies[0]["spec"]);
        assert_eq!(bodies[1]["spec"]["replicas"], 1);
        let call = server.expect_apply(&format!("{HPAS}/chat-api")).await;
        assert_eq!(call.body["spec"]["minReplicas"], 2);
        assert_eq!(call.body["spec"]["maxReplicas"], 8);
        assert_eq!(call.body["spec"]["scaleTargetRef"]["name"], "chat-api");
        call.echo();
        server.expect_apply(&format!("{PDBS}/chat-api")).await.echo();
        server.expect_event("AllComponentsReady").await;
        server.expect_status().await;
        server.expect_no_more().await;
    })
    .await;
}

#[tokio::test]
async fn status_follows_deployment_readiness() {
    let image = "ghcr.io/example/chat-system:1.0.0";
    let cs = fixture("minimal");
    let job = job_name(&cs);
    for (api_ready, ready) in [(1, false), (2, true)] {
        let world = World {
            deployments: vec![
                deployment("api", image, 2, api_ready, true),
                deployment("indexer", image, 1, 1, true),
                deployment("counter", image, 1, 1, true),
            ],
            jobs: vec![common::job(&job, Some("Complete"))],
            pdbs: vec![named("PodDisruptionBudget", "policy/v1", "chat-api")],
            ..World::default()
        };
        run(cs.clone(), |mut server| async move {
            server.serve_observe(&world).await;
            server.expect_apply(SERVICE).await.echo();
            expect_deployment_applies(&mut server, image).await;
            server.expect_apply(&format!("{PDBS}/chat-api")).await.echo();
            if ready {
                let event = server.expect_event("AllComponentsReady").await;
                assert_eq!(event["type"], "Normal");
            }
            let status = server.expect_status().await;
            assert_eq!(status["api"]["readyReplicas"], api_ready);
            assert_eq!(status["api"]["replicas"], 2);
            assert_eq!(status["indexer"]["readyReplicas"], 1);
            assert_eq!(status["image"], image);
            let ready_condition = condition(&status, "Ready");
            if ready {
                assert_eq!(ready_condition["status"], "True");
                assert_eq!(condition(&status, "Progressing")["status"], "False");
            } else {
                assert_eq!(ready_condition["status"], "False");
                assert_eq!(ready_condition["reason"], "ComponentsNotReady");
                assert_eq!(ready_condition["message"], "api 1/2 ready, 2 updated");
                assert_eq!(condition(&status, "Progressing")["status"], "True");
            }
            server.expect_no_more().await;
        })
        .await;
    }
}

#[tokio::test]
async fn missing_secret_is_reported_and_nothing_is_applied() {
    let world = World {
        secret_missing: true,
        ..World::default()
    };
    run(fixture("minimal"), |mut server| async move {
        server.serve_observe(&world).await;
        let event = server.expect_event("InvalidSpec").await;
        assert_eq!(event["type"], "Warning");
        let status = server.expect_status().await;
        let degraded = condition(&status, "Degraded");
        assert_eq!(degraded["status"], "True");
        assert!(
            degraded["message"]
                .as_str()
                .unwrap()
                .contains("Secret \"chat-secrets\" not found")
        );
        server.expect_no_more().await;
    })
    .await;
}

/// A World where everything exists and runs `image`.
fn settled(cs: &ChatSystem, image: &str) -> World {
    World {
        deployments: ["api", "indexer", "counter"]
            .iter()
            .map(|c| deployment(c, image, if *c == "api" { 2 } else { 1 }, 1, true))
            .collect(),
        jobs: vec![common::job(&job_name(cs), Some("Complete"))],
        pdbs: vec![named("PodDisruptionBudget", "policy/v1", "chat-api")],
        ..World::default()
    }
}

/// One reconcile of `cs` in `world`; answers the config-hash annotation of each Deployment.
async fn config_hashes(cs: ChatSystem, world: World) -> Vec<Value> {
    let hashes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = hashes.clone();
    run(cs, |mut server| async move {
        server.serve_observe(&world).await;
        server.expect_apply(SERVICE).await.echo();
        for body in expect_deployment_applies(&mut server, "ghcr.io/example/chat-system:1.0.0").await {
            let annotations = &body["spec"]["template"]["metadata"]["annotations"];
            seen.lock()
                .unwrap()
                .push(annotations["chatsystem.dev/config-hash"].clone());
        }
        server.expect_apply(&format!("{PDBS}/chat-api")).await.echo();
        // Whatever the status says, it is patched once; events are not under test here.
        loop {
            let call = server.next().await;
            if call.path.ends_with("/status") {
                let mut cs = to_json(&fixture("minimal"));
                cs["status"] = call.body["status"].clone();
                call.respond(200, cs);
                break;
            }
            call.echo();
        }
        server.expect_no_more().await;
    })
    .await;
    hashes.lock().unwrap().clone()
}

#[tokio::test]
async fn pods_roll_when_a_referenced_value_changes_and_only_then() {
    let cs = fixture("minimal");
    let image = "ghcr.io/example/chat-system:1.0.0";
    let urls =
        json!({"database-url": "bXlzcWw6Ly8=", "redis-url": "cmVkaXM6Ly8=", "elasticsearch-url": "aHR0cDovLw=="});
    let with_data = |data: Value| World {
        secret_data: Some(data),
        ..settled(&cs, image)
    };
    let before = config_hashes(cs.clone(), with_data(urls.clone())).await;
    assert_eq!(before.len(), 3);
    assert!(
        before
            .iter()
            .all(|h| h == &before[0] && h.as_str().unwrap().len() == 64),
        "{before:?}"
    );

    // Another key of the same Secret changes: nothing the pods read, no roll.
    let mut unrelated = urls.clone();
    unrelated["something-else"] = json!("eA==");
    assert_eq!(config_hashes(cs.clone(), with_data(unrelated)).await, before);

    // The database URL changes: every pod reads it, every Deployment rolls.
    let mut changed = urls;
    changed["database-url"] = json!("bXlzcWw6Ly9uZXc=");
    let after = config_hashes(cs.clone(), with_data(changed)).await;
    assert!(after.iter().all(|h| h != &before[0]), "{after:?}");
}

#[tokio::test]
async fn a_ca_bundle_configmap_is_read_checked_and_part_of_the_hash() {
    let image = "ghcr.io/example/chat-system:1.0.0";
    let cs = cs_with(|cs| {
        cs.spec.redis.ca_bundle = Some(chat_operator::crd::CaBundleSpec {
            secret_key_ref: None,
            config_map_key_ref: Some(chat_operator::crd::ConfigMapKeyRef {
                name: "redis-ca".into(),
                key: "ca.pem".into(),
            }),
        });
    });
    let world = |data: Option<Value>| World {
        config_maps: vec![("redis-ca".to_string(), data)],
        ..settled(&cs, image)
    };
    let one = config_hashes(
        cs.clone(),
        world(Some(json!({"ca.pem": "-----BEGIN CERTIFICATE-----A"}))),
    )
    .await;
    let two = config_hashes(
        cs.clone(),
        world(Some(json!({"ca.pem": "-----BEGIN CERTIFICATE-----B"}))),
    )
    .await;
    assert_ne!(one, two, "a rotated CA bundle rolls the pods");

    // Missing key: reported, nothing applied.
    let missing = world(Some(json!({"other": "x"})));
    run(cs, |mut server| async move {
        server.serve_observe(&missing).await;
        server.expect_event("InvalidSpec").await;
        let status = server.expect_status().await;
        assert_eq!(
            condition(&status, "Degraded")["message"],
            "redis.caBundle: ConfigMap \"redis-ca\" has no key \"ca.pem\""
        );
        server.expect_no_more().await;
    })
    .await;
}

#[tokio::test]
async fn paused_applies_and_deletes_nothing_but_reports_status() {
    let image = "ghcr.io/example/chat-system:1.0.0";
    // A new image and autoscaling off with an HPA present: unpaused, this would create a Job,
    // roll nothing yet and delete the HPA.
    let cs = cs_with(|cs| {
        cs.spec.paused = true;
        cs.spec.image.tag = "1.1.0".into();
    });
    let world = World {
        hpas: vec![named("HorizontalPodAutoscaler", "autoscaling/v2", "chat-api")],
        ..settled(&fixture("minimal"), image)
    };
    run(cs, |mut server| async move {
        server.serve_observe(&world).await;
        let status = server.expect_status().await;
        let progressing = condition(&status, "Progressing");
        assert_eq!(progressing["status"], "False");
        assert_eq!(progressing["reason"], "Paused");
        assert_eq!(condition(&status, "Degraded")["status"], "False");
        assert_eq!(status["image"], image, "still reports what runs");
        assert!(status.get("migration").is_none());
        server.expect_no_more().await;
    })
    .await;
}

#[tokio::test]
async fn env_overriding_an_operator_variable_is_refused_before_anything_is_applied() {
    let cs = cs_with(|cs| {
        cs.spec.indexer.env = vec![chat_operator::crd::EnvVarSpec {
            name: "CHAT_INDEXER_BATCH".into(),
            value: Some("7".into()),
            value_from: None,
        }];
    });
    let world = settled(&cs, "ghcr.io/example/chat-system:1.0.0");
    run(cs, |mut server| async move {
        server.serve_observe(&world).await;
        server.expect_event("InvalidSpec").await;
        let status = server.expect_status().await;
        assert_eq!(
            condition(&status, "Degraded")["message"],
            "indexer.env: CHAT_INDEXER_BATCH is set by the operator from a ChatSystem field; set that field instead"
        );
        server.expect_no_more().await;
    })
    .await;
}

/// One reconcile of the settled minimal ChatSystem in `world`; answers the status and the
/// reasons of the Events published.
async fn status_in(world: World) -> (Value, Vec<String>) {
    let cs = fixture("minimal");
    let out = Arc::new(std::sync::Mutex::new((Value::Null, Vec::new())));
    let seen = out.clone();
    run(cs, |mut server| async move {
        server.serve_observe(&world).await;
        server.expect_apply(SERVICE).await.echo();
        expect_deployment_applies(&mut server, "ghcr.io/example/chat-system:1.0.0").await;
        server.expect_apply(&format!("{PDBS}/chat-api")).await.echo();
        loop {
            let call = server.next().await;
            if call.path.ends_with("/status") {
                let mut cs = to_json(&fixture("minimal"));
                cs["status"] = call.body["status"].clone();
                seen.lock().unwrap().0 = call.body["status"].clone();
                call.respond(200, cs);
                break;
            }
            seen.lock()
                .unwrap()
                .1
                .push(call.body["reason"].as_str().unwrap_or_default().to_string());
            call.echo();
        }
        server.expect_no_more().await;
    })
    .await;
    out.lock().unwrap().clone()
}

#[tokio::test]
async fn stuck_pods_set_degraded_with_their_reason() {
    let image = "ghcr.io/example/chat-system:1.0.0";
    for (reason, component) in [
        ("CrashLoopBackOff", "api"),
        ("ImagePullBackOff", "indexer"),
        ("ErrImagePull", "counter"),
    ] {
        let world = World {
            pods: vec![
                pod("api", "chat-api-ok", None),
                pod(component, &format!("chat-{component}-bad"), Some(reason)),
            ],
            ..settled(&fixture("minimal"), image)
        };
        let (status, events) = status_in(world).await;
        let degraded = condition(&status, "Degraded");
        assert_eq!(degraded["status"], "True", "{reason}");
        assert_eq!(degraded["reason"], reason);
        assert_eq!(
            degraded["message"],
            format!("pod chat-{component}-bad {reason}: {reason} detail")
        );
        assert!(events.contains(&reason.to_string()), "{events:?}");
    }
    // A pod that is merely starting is not stuck.
    let world = World {
        pods: vec![pod("api", "chat-api-new", Some("ContainerCreating"))],
        ..settled(&fixture("minimal"), image)
    };
    let (status, _) = status_in(world).await;
    assert_eq!(condition(&status, "Degraded")["status"], "False");
}

#[tokio::test]
async fn a_passed_progress_deadline_sets_degraded() {
    let image = "ghcr.io/example/chat-system:1.0.0";
    let mut world = settled(&fixture("minimal"), image);
    world.deployments[0]["status"]["conditions"] = json!([{
        "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
        "message": "ReplicaSet \"chat-api-5d\" has timed out progressing."
    }]);
    let (status, events) = status_in(world).await;
    let degraded = condition(&status, "Degraded");
    assert_eq!(degraded["status"], "True");
    assert_eq!(degraded["reason"], "ProgressDeadlineExceeded");
    assert_eq!(
        degraded["message"],
        "Deployment chat-api: ReplicaSet \"chat-api-5d\" has timed out progressing."
    );
    assert_eq!(events, ["ProgressDeadlineExceeded"]);
}

#[tokio::test]
async fn an_existing_migrations_job_is_never_re_applied() {
    // A new log level changes the pod template but not the migration set: same Job, which
    // exists and has succeeded, so it is neither applied (its template is immutable) nor re-run.
    let cs = cs_with(|cs| cs.spec.common.log_level = Some("debug".into()));
    assert_eq!(job_name(&cs), job_name(&fixture("minimal")));
    let world = settled(&cs, "ghcr.io/example/chat-system:1.0.0");
    run(cs, |mut server| async move {
        server.serve_observe(&world).await;
        server.expect_apply(SERVICE).await.echo();
        let bodies = expect_deployment_applies(&mut server, "ghcr.io/example/chat-system:1.0.0").await;
        assert_eq!(
            container(&bodies[0])["env"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["name"] == "RUST_LOG")
                .count(),
            1
        );
        server.expect_apply(&format!("{PDBS}/chat-api")).await.echo();
        server.expect_status().await;
        server.expect_no_more().await;
    })
    .await;
}
