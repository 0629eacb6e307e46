#!/usr/bin/env bash
# Local Kubernetes for chat-system on kind (needs Docker, kind, kubectl and helm).
#
#   scripts/kind-e2e.sh up     create the cluster, build and load both images, install MySQL,
#                              Redis and Elasticsearch (scripts/kind/dev-dependencies.yaml), the
#                              chart, and the sample ChatSystem              (make kind-up)
#   scripts/kind-e2e.sh e2e    wait for the ChatSystem to be Ready, port-forward the api, create
#                              an application, a chat and a message, and find it by search (make e2e)
#   scripts/kind-e2e.sh all    up, then e2e (the default)
#   scripts/kind-e2e.sh down   delete the cluster
#
# Settings (env): CLUSTER (chat-system), NAMESPACE (chat), TAG (dev), LOCAL_PORT (8080),
# READY_TIMEOUT (600s).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER="${CLUSTER:-chat-system}"
NAMESPACE="${NAMESPACE:-chat}"
TAG="${TAG:-dev}"
LOCAL_PORT="${LOCAL_PORT:-8080}"
READY_TIMEOUT="${READY_TIMEOUT:-600s}"
CONTEXT="kind-$CLUSTER"

log() { printf '==> %s\n' "$*"; }
die() { printf 'kind-e2e: %s\n' "$*" >&2; exit 1; }
kc() { kubectl --context "$CONTEXT" "$@"; }

need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || die "$tool is required (see docs/kubernetes.md)"
    done
}

up() {
    need docker kind kubectl helm
    if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
        log "kind cluster $CLUSTER exists"
    else
        log "creating kind cluster $CLUSTER"
        kind create cluster --name "$CLUSTER" --config "$ROOT/kind-config.yaml" --wait 120s
    fi

    log "building images chat-system:$TAG and chat-operator:$TAG"
    docker build -t "chat-system:$TAG" -f "$ROOT/Dockerfile" "$ROOT"
    docker build -t "chat-operator:$TAG" -f "$ROOT/operator/Dockerfile" "$ROOT/operator"
    kind load docker-image --name "$CLUSTER" "chat-system:$TAG" "chat-operator:$TAG"

    log "installing MySQL, Redis and Elasticsearch (development only) in $NAMESPACE"
    kc create namespace "$NAMESPACE" --dry-run=client -o yaml | kc apply -f -
    kc -n "$NAMESPACE" apply -f "$ROOT/scripts/kind/dev-dependencies.yaml"
    kc -n "$NAMESPACE" rollout status deployment/mysql deployment/redis deployment/elasticsearch --timeout=600s

    log "installing the chart (operator, CRD, sample ChatSystem)"
    helm upgrade --install chat-system "$ROOT/charts/chat-system" \
        --kube-context "$CONTEXT" --namespace "$NAMESPACE" --wait \
        --set image.repository=chat-operator --set image.tag="$TAG" --set image.pullPolicy=Never \
        --set sample.enabled=true --set sample.image.repository=chat-system \
        --set sample.image.tag="$TAG" --set sample.image.pullPolicy=Never
    log "done: kubectl --context $CONTEXT -n $NAMESPACE get chatsystems"
}

# The value of a top-level string or number field of a one-line JSON object.
json_field() {
    sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"\{0,1\}\([^\",}]*\).*/\1/p" | head -n 1
}

e2e() {
    need kubectl curl
    log "waiting for ChatSystem chat to be Ready"
    if ! kc -n "$NAMESPACE" wait chatsystem/chat --for=condition=Ready --timeout="$READY_TIMEOUT"; then
        kc -n "$NAMESPACE" describe chatsystem/chat || true
        kc -n "$NAMESPACE" get pods,jobs || true
        die "ChatSystem chat did not become Ready"
    fi
    kc -n "$NAMESPACE" get chatsystem/chat -o wide

    log "port-forwarding svc/chat-api to localhost:$LOCAL_PORT"
    kc -n "$NAMESPACE" port-forward svc/chat-api "$LOCAL_PORT:80" >/dev/null 2>&1 &
    local forward=$!
    trap 'kill "$forward" 2>/dev/null || true' EXIT
    local base="http://127.0.0.1:$LOCAL_PORT" i
    for i in $(seq 1 30); do
        curl -fsS "$base/up" >/dev/null 2>&1 && break
        [[ $i -eq 30 ]] && die "the api did not answer on $base/up"
        sleep 1
    done

    log "create an application, a chat and a message"
    local app token chat number message
    app="$(curl -fsS -X POST "$base/chat_applications" -H 'Content-Type: application/json' -d '{"name":"kind-e2e"}')"
    token="$(json_field token <<<"$app")"
    [[ -n "$token" ]] || die "no token in $app"
    chat="$(curl -fsS -X POST "$base/chat_applications/$token/chats")"
    number="$(json_field number <<<"$chat")"
    [[ -n "$number" ]] || die "no chat number in $chat"
    message="$(curl -fsS -X POST "$base/chat_applications/$token/chats/$number/messages" \
        -H 'Content-Type: application/json' -d '{"body":"hello from kind"}')"
    [[ -n "$(json_field number <<<"$message")" ]] || die "no message number in $message"

    log "search for it (indexing is asynchronous)"
    local found=""
    for i in $(seq 1 60); do
        if curl -fsS "$base/chat_applications/$token/chats/$number/messages/search?q=hello" | grep -q 'hello from kind'; then
            found=yes
            break
        fi
        sleep 1
    done
    [[ -n "$found" ]] || die "the message was not found by search within 60 s"
    log "e2e passed: application $token, chat $number, message found by search"
}

down() {
    need kind
    kind delete cluster --name "$CLUSTER"
}

case "${1:-all}" in
    up) up ;;
    e2e) e2e ;;
    all) up; e2e ;;
    down) down ;;
    *) die "usage: $0 [up|e2e|all|down]" ;;
esac
