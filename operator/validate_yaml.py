"""Parse and validate every YAML file the repository ships; run by operator/test.sh.

Two passes, so a broken file fails with its own parse error before any schema noise:

1. Parse every file with a strict loader (PyYAML's safe loader plus: duplicate keys are errors, as
   they are for kubectl). Files listed with --parse-only stop here (Helm's Chart.yaml and
   values.yaml, docker-compose.yml, kind's cluster config: none of them is a Kubernetes object).
2. Validate every document of the other files for each --k8s version, strictly (unknown fields
   are errors): built-in kinds with kubernetes-validate's schemas, custom resources with the
   openAPIV3Schema of a CRD given by --crd. A kind with no schema is an error, not the warning
   kubernetes-validate prints, so a typo in apiVersion cannot pass unchecked.

Usage: validate_yaml.py --k8s 1.33.0 [--k8s ...] [--crd CRD.yaml ...] [--parse-only FILE ...] FILE...
"""

import argparse
import copy
import sys

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError


class StrictLoader(yaml.SafeLoader):
    """Safe loader that refuses duplicate mapping keys (PyYAML keeps the last one silently)."""


def _mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        # `<<` merge keys may be repeated and overridden; YAML defines that.
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def parse(path):
    with open(path, encoding="utf-8") as f:
        return [doc for doc in yaml.load_all(f, Loader=StrictLoader) if doc is not None]


def strict(schema):
    """A CRD's structural schema as JSON Schema that, like the API server, rejects unknown fields."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if not isinstance(node, dict):
            return
        if node.get("type") == "object" and "properties" in node:
            if "additionalProperties" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
                node["additionalProperties"] = False
        for key in ("properties", "patternProperties"):
            for child in node.get(key, {}).values():
                walk(child)
        for key in ("items", "additionalProperties"):
            walk(node.get(key))
        for key in ("allOf", "anyOf", "oneOf"):
            for child in node.get(key, []):
                walk(child)

    walk(schema)
    # Every object carries these; the API server adds them to each CRD's schema itself.
    for field, sub in (("apiVersion", {"type": "string"}), ("kind", {"type": "string"}), ("metadata", {"type": "object"})):
        schema.setdefault("properties", {}).setdefault(field, sub)
    return schema


def crd_schemas(paths):
    schemas = {}
    for path in paths:
        for crd in parse(path):
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                api_version = f"{group}/{version['name']}"
                schemas[(api_version, kind)] = strict(version["schema"]["openAPIV3Schema"])
    return schemas


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--k8s", action="append", required=True)
    parser.add_argument("--crd", action="append", default=[])
    parser.add_argument("--parse-only", action="append", default=[])
    parser.add_argument("files", nargs="*")
    args = parser.parse_args()

    parsed, failures = {}, 0
    for path in args.parse_only + args.files:
        try:
            parsed[path] = parse(path)
        except (OSError, yaml.YAMLError) as e:
            print(f"  PARSE ERROR {path}: {e}")
            failures += 1
    if failures:
        print(f"  {failures} file(s) are not valid YAML; nothing validated")
        return 1
    print(f"  parsed {len(parsed)} files ({sum(len(d) for d in parsed.values())} documents)")

    custom = crd_schemas(args.crd)
    for version in args.k8s:
        checked = 0
        for path in args.files:
            for doc in parsed[path]:
                if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
                    print(f"  ERROR {path}: a document without apiVersion and kind")
                    failures += 1
                    continue
                name = f"{path}: {doc['kind']} {doc.get('metadata', {}).get('name', '?')}"
                schema = custom.get((doc["apiVersion"], doc["kind"]))
                try:
                    if schema is not None:
                        jsonschema.Draft202012Validator(schema).validate(doc)
                    else:
                        kubernetes_validate.validate(doc, version, strict=True)
                    checked += 1
                except (ValidationError, jsonschema.ValidationError) as e:
                    where = ".".join(str(p) for p in e.path)
                    print(f"  ERROR {name} ({version}): {where}: {e.message}")
                    failures += 1
                except SchemaNotFoundError as e:
                    print(f"  ERROR {name}: {e.message}")
                    failures += 1
        print(f"  {version}: {checked} objects valid (strict)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
