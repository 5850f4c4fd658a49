"""The PrometheusRule of the prometheus-operator component, made from deploy/observability/alerts.yaml:
``python -m tests.deploy.prometheusrule`` writes it, ``tests/deploy`` holds the two equal."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "observability" / "alerts.yaml"
RULE = ROOT / "deploy" / "k8s" / "components" / "prometheus-operator" / "prometheusrule.yaml"
HEADER = (
    "# The alert rules of deploy/observability/alerts.yaml as a Prometheus Operator PrometheusRule.\n"
    "# Generated from that file: tests/deploy holds the two equal (edit alerts.yaml, then regenerate with\n"
    "# python -m tests.deploy.prometheusrule).\n"
)


def render() -> str:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "deksdenflow", "labels": {"app.kubernetes.io/part-of": "deksdenflow"}},
        "spec": {"groups": groups},
    }
    return HEADER + yaml.safe_dump(rule, sort_keys=False, width=110, allow_unicode=True)


if __name__ == "__main__":
    RULE.write_text(render())
