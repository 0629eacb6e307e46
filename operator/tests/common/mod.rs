//! Shared by the integration tests: fixtures, and a mocked API server (the controller-rs
//! `ApiServerVerifier` pattern) that asserts every request and answers it.
#![allow(dead_code)]

use std::collections::BTreeMap;

use chat_operator::crd::ChatSystem;
use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

pub fn fixture(name: &str) -> ChatSystem {
    let path = format!("{}/tests/fixtures/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// One request the operator made, decoded for assertions.
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub body: Value,
    respond: tower_test::mock::SendResponse<Response<Body>>,
}

impl Call {
    pub fn respond(self, status: u16, body: Value) {
        self.respond.send_response(
            Response::builder()
                .status(status)
                .body(Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap(),
        );
    }

    /// Answers a write with the object it carried, as the API server would.
    pub fn echo(self) {
        let body = self.body.clone();
        self.respond(200, body);
    }

    pub fn not_found(self) {
        self.respond(
            404,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
        );
    }
}

pub struct ApiServer {
    handle: Handle,
}

pub fn mock_client() -> (Client, ApiServer) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), ApiServer { handle })
}

fn decode(component: &str) -> String {
    let bytes = component.replace('+', " ").into_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

pub const SELECTOR: &str =
    "app.kubernetes.io/name=chat-system,app.kubernetes.io/instance=chat,app.kubernetes.io/managed-by=chat-operator";

impl ApiServer {
    pub async fn next(&mut self) -> Call {
        let (request, respond) = self
            .handle
            .next_request()
            .await
            .expect("the operator made no further request");
        let method = request.method().to_string();
        let path = request.uri().path().to_string();
        let query = request
            .uri()
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect();
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        Call {
            method,
            path,
            query,
            body,
            respond,
        }
    }

    /// The next request must be `method path` with exactly `query`.
    pub async fn expect(&mut self, method: &str, path: &str, query: &[(&str, &str)]) -> Call {
        let call = self.next().await;
        assert_eq!(
            (call.method.as_str(), call.path.as_str()),
            (method, path),
            "unexpected request {} {} {:?}",
            call.method,
            call.path,
            call.query
        );
        let want: BTreeMap<String, String> = query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(call.query, want, "query of {method} {path}");
        call
    }

    /// A server-side apply by the operator's field manager.
    pub async fn expect_apply(&mut self, path: &str) -> Call {
        let call = self
            .expect("PATCH", path, &[("fieldManager", "chat-operator"), ("force", "true")])
            .await;
        assert!(call.body.is_object(), "apply body of {path}");
        call
    }

    /// The observe step: the Secret, then the owned objects by label.
    pub async fn serve_observe(&mut self, world: &World) {
        let ns = "/api/v1/namespaces/default";
        let call = self.expect("GET", &format!("{ns}/secrets/chat-secrets"), &[]).await;
        if world.secret_missing {
            call.not_found();
        } else {
            let data = world.secret_data.clone().unwrap_or_else(
                || json!({"database-url": "bXlzcWw6Ly8=", "redis-url": "cmVkaXM6Ly8=", "elasticsearch-url": "aHR0cDovLw=="}),
            );
            call.respond(
                200,
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "chat-secrets", "namespace": "default"},
                       "data": data}),
            );
        }
        // Then each referenced ConfigMap, by name.
        for (name, data) in &world.config_maps {
            let call = self.expect("GET", &format!("{ns}/configmaps/{name}"), &[]).await;
            match data {
                None => call.not_found(),
                Some(data) => call.respond(
                    200,
                    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"},
                           "data": data}),
                ),
            }
        }
        let sel = [("labelSelector", SELECTOR)];
        for (path, kind, items) in [
            (
                "/apis/apps/v1/namespaces/default/deployments",
                "DeploymentList",
                &world.deployments,
            ),
            ("/api/v1/namespaces/default/pods", "PodList", &world.pods),
            ("/apis/batch/v1/namespaces/default/jobs", "JobList", &world.jobs),
            (
                "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers",
                "HorizontalPodAutoscalerList",
                &world.hpas,
            ),
            (
                "/apis/policy/v1/namespaces/default/poddisruptionbudgets",
                "PodDisruptionBudgetList",
                &world.pdbs,
            ),
        ] {
            self.expect("GET", path, &sel).await.respond(
                200,
                json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items}),
            );
        }
    }

    /// An Event about the ChatSystem with this reason.
    pub async fn expect_event(&mut self, reason: &str) -> Value {
        let call = self
            .expect("POST", "/apis/events.k8s.io/v1/namespaces/default/events", &[])
            .await;
        assert_eq!(call.body["reason"], reason, "event {}", call.body);
        assert_eq!(call.body["regarding"]["kind"], "ChatSystem");
        assert_eq!(call.body["regarding"]["name"], "chat");
        let body = call.body.clone();
        call.echo();
        body
    }

    /// The status patch; returns the status sent.
    pub async fn expect_status(&mut self) -> Value {
        let call = self
            .expect_apply("/apis/chatsystem.dev/v1alpha1/namespaces/default/chatsystems/chat/status")
            .await;
        let status = call.body["status"].clone();
        let mut cs = to_json(&fixture("minimal"));
        cs["status"] = status.clone();
        call.respond(200, cs);
        status
    }

    pub async fn expect_no_more(mut self) {
        if let Some((request, _)) = self.handle.next_request().await {
            panic!("unexpected extra request {} {}", request.method(), request.uri());
        }
    }
}

/// What the mocked cluster holds.
#[derive(Default)]
pub struct World {
    pub secret_missing: bool,
    /// The `chat-secrets` data (base64 values); the three URL keys when `None`.
    pub secret_data: Option<Value>,
    /// Referenced ConfigMaps in the order observe reads them (by name), `None` when missing.
    pub config_maps: Vec<(String, Option<Value>)>,
    pub deployments: Vec<Value>,
    pub pods: Vec<Value>,
    pub jobs: Vec<Value>,
    pub hpas: Vec<Value>,
    pub pdbs: Vec<Value>,
}

pub fn owner() -> Value {
    json!([{"apiVersion": "chatsystem.dev/v1alpha1", "kind": "ChatSystem", "name": "chat",
            "uid": "0b0b0b0b-1111-2222-3333-444444444444", "controller": true}])
}

/// An owned Deployment running `image`, with `ready` of `replicas` pods ready.
pub fn deployment(component: &str, image: &str, replicas: i32, ready: i32, replicas_owned_by_us: bool) -> Value {
    let mut fields = json!({"f:spec": {"f:template": {}}});
    if replicas_owned_by_us {
        fields["f:spec"]["f:replicas"] = json!({});
    }
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": format!("chat-{component}"), "namespace": "default", "generation": 2,
            "labels": {"app.kubernetes.io/component": component, "app.kubernetes.io/instance": "chat",
                       "app.kubernetes.io/name": "chat-system", "app.kubernetes.io/managed-by": "chat-operator"},
            "ownerReferences": owner(),
            "managedFields": [{"manager": "chat-operator", "operation": "Apply", "apiVersion": "apps/v1",
                               "fieldsType": "FieldsV1", "fieldsV1": fields}]},
        "spec": {"replicas": replicas,
                 "selector": {"matchLabels": {"app.kubernetes.io/component": component}},
                 "template": {"spec": {"containers": [{"name": "chat-system", "image": image}]}}},
        "status": {"observedGeneration": 2, "replicas": replicas, "readyReplicas": ready,
                   "updatedReplicas": replicas, "availableReplicas": ready}
    })
}

pub fn job(name: &str, condition: Option<&str>) -> Value {
    let conditions: Vec<Value> = condition
        .map(|c| json!({"type": c, "status": "True"}))
        .into_iter()
        .collect();
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": "default", "ownerReferences": owner(),
                     "labels": {"app.kubernetes.io/component": "migrate"}},
        "spec": {"template": {"spec": {"containers": [{"name": "chat-system"}]}}},
        "status": {"conditions": conditions}
    })
}

pub fn named(kind: &str, api_version: &str, name: &str) -> Value {
    json!({"apiVersion": api_version, "kind": kind,
           "metadata": {"name": name, "namespace": "default", "ownerReferences": owner()},
           "spec": {"maxReplicas": 3, "scaleTargetRef": {"kind": "Deployment", "name": name}}})
}

/// The container of a Deployment apply body.
pub fn container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

pub fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

/// A pod of `component` whose container waits with `reason` (none: running).
pub fn pod(component: &str, name: &str, reason: Option<&str>) -> Value {
    let state = match reason {
        Some(reason) => json!({"waiting": {"reason": reason, "message": format!("{reason} detail")}}),
        None => json!({"running": {}}),
    };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default",
            "labels": {"app.kubernetes.io/component": component, "app.kubernetes.io/instance": "chat",
                       "app.kubernetes.io/name": "chat-system", "app.kubernetes.io/managed-by": "chat-operator"}},
        "spec": {"containers": [{"name": "chat-system"}]},
        "status": {"containerStatuses": [{"name": "chat-system", "image": "x", "imageID": "", "ready": false,
                                          "restartCount": 5, "state": state}]}
    })
}
