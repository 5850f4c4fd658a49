"""The vendored CRD schemas (tests/deploy/schemas, with their sources in its README) as JSON Schema, with
the semantics of Kubernetes' strict field validation: an object with ``properties`` takes no other field,
and a subtree marked ``x-deksdenflow-pruned`` (not copied in) accepts nothing."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator

SCHEMAS = Path(__file__).parent / "schemas"


def _strict(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    if node.get("x-deksdenflow-pruned"):
        return False
    out = {k: _strict(v) for k, v in node.items() if not k.startswith("x-")}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


@cache
def _validators() -> dict[tuple[str, str], Draft7Validator]:
    validators = {}
    for path in sorted(SCHEMAS.glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        schema = _strict(document["openAPIV3Schema"])
        Draft7Validator.check_schema(schema)
        validators[(document["apiVersion"], document["kind"])] = Draft7Validator(schema)
    return validators


def validate(obj: dict[str, Any]) -> list[str]:
    """The schema errors of a custom resource (a kind without a vendored schema is an error too)."""
    validator = _validators().get((obj["apiVersion"], obj["kind"]))
    if validator is None:
        return [f"no vendored schema for {obj['apiVersion']} {obj['kind']}"]
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]
