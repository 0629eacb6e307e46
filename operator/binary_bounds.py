"""The CRD and the chat-system binary agree at every bound; run by operator/test.sh.

For each row of operator/tests/binary_bounds.json, every boundary value and the value one past it
(plus the listed accepted and rejected examples) is put to both sides:

- the binary: `chat-system migrate` with the setting in its environment and an in-memory SQLite
  database, so it parses and validates its settings, applies the migrations in memory and exits.
  Accepted means exit 0; rejected means exit 2 with a one-line message naming the setting.
- the CRD: the field's schema in the ChatSystem CRD (JSON Schema validation of the value).

Both must give the answer the table states. Deterministic (no network, no shared state) and fast.

Usage: binary_bounds.py CHAT_SYSTEM_BINARY CRD.yaml TABLE.json
"""

import json
import os
import subprocess
import sys
import tempfile

import jsonschema
import yaml


def cases(row):
    if "min" in row:
        yield row["min"], True
        yield row["max"], True
        yield row["min"] - 1, False
        yield row["max"] + 1, False
    for value in row.get("enum", []) + row.get("accept", []):
        yield value, True
    for value in row.get("reject", []):
        yield value, False


def binary_accepts(binary, env, value, data_dir):
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": "sqlite::memory:",
        "CHAT_DATA_DIR": data_dir,
        "RUST_LOG": "error",
        env: str(value),
    }
    result = subprocess.run([binary, "migrate"], env=environment, capture_output=True, text=True, timeout=60)
    lines = result.stderr.strip().splitlines()
    if result.returncode == 0:
        return True, ""
    if result.returncode == 2 and len(lines) == 1 and env in lines[0]:
        return False, lines[0]
    raise SystemExit(f"  {env}={value!r}: unexpected exit {result.returncode}: {result.stderr.strip()}")


def main():
    binary, crd_path, table_path = sys.argv[1:4]
    with open(crd_path, encoding="utf-8") as f:
        crd = yaml.safe_load(f)
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    with open(table_path, encoding="utf-8") as f:
        table = json.load(f)["settings"]

    failures, checked = 0, 0
    with tempfile.TemporaryDirectory() as data_dir:
        for row in table:
            schema = spec
            for part in row["field"].split("."):
                schema = schema["properties"][part]
            for value, want in cases(row):
                crd_ok = jsonschema.Draft202012Validator(schema).is_valid(value)
                binary_ok, message = binary_accepts(binary, row["env"], value, data_dir)
                checked += 1
                if crd_ok != want or binary_ok != want:
                    failures += 1
                    print(
                        f"  MISMATCH {row['field']} / {row['env']}={value!r}: table says "
                        f"{'accept' if want else 'reject'}, CRD {'accepts' if crd_ok else 'rejects'}, "
                        f"binary {'accepts' if binary_ok else 'rejects'} {message}"
                    )
    print(f"  {checked} values of {len(table)} settings: CRD and binary agree with the table"
          if not failures else f"  {failures} of {checked} values disagree")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
