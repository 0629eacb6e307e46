"""Lint charts/chat-system with the real helm engine (helm-sdkpy), once per values variant, so
every template branch executes. Needs Python >= 3.12; operator/test.sh decides whether it runs."""

import asyncio
import copy
import pathlib
import shutil
import sys
import tempfile

import helm_sdkpy
import yaml

SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}

VARIANTS = {
    "defaults": {},
    "sample+namespaced": {"sample": {"enabled": True}, "watchNamespace": "chat", "replicaCount": 2},
    "no-leader-election": {"leaderElection": {"enabled": False}, "imagePullSecrets": [{"name": "regcred"}],
                           "nodeSelector": {"kubernetes.io/os": "linux"}, "podAnnotations": {"a": "b"}},
    "invalid-values-must-fail": {"replicaCount": "two"},
}


def merge(base, override):
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def lint(chart: pathlib.Path, override: dict) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        copy_dir = pathlib.Path(tmp) / chart.name
        shutil.copytree(chart, copy_dir)
        values = yaml.safe_load((chart / "values.yaml").read_text())
        (copy_dir / "values.yaml").write_text(yaml.safe_dump(merge(values, override)))
        result = asyncio.run(helm_sdkpy.Lint(helm_sdkpy.Configuration()).run(str(copy_dir)))
    return [f"{SEVERITY.get(m['Severity'], m['Severity'])} {m['Path']}" for m in result.get("Messages") or []
            if m["Severity"] >= 2]


def main() -> int:
    chart = pathlib.Path(sys.argv[1]).resolve()
    failed = False
    for name, override in VARIANTS.items():
        problems = lint(chart, override)
        errors = [p for p in problems if p.startswith("ERROR")]
        expect_failure = name.endswith("must-fail")
        ok = bool(errors) if expect_failure else not errors
        print(f"  helm lint [{name}]: {'ok' if ok else 'FAILED'} {'; '.join(problems)}")
        failed |= not ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
