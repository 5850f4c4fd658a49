"""deploy/observability: the alert rules pass their promtool unit tests, and every query of the rules and
of the Grafana dashboard names metrics the services export, grouped by labels those metrics have.

The exported names and labels are read from the services' own registries (what ``/metrics`` serves)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deksdenflow_api.middleware import ApiMetrics
from deksdenflow_codex_worker.metrics import WorkerMetrics
from deksdenflow_git_ci_worker.metrics import GitCiMetrics
from deksdenflow_projector.service import Metrics as ProjectorMetrics
from prometheus_client import CollectorRegistry

HERE = Path(__file__).resolve().parents[2] / "deploy" / "observability"
_NAME = re.compile(r"\bdeksdenflow_[a-z0-9_]+\b")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
_SELECTOR_LABELS = re.compile(r"\{([^}]*)\}")
# Labels Prometheus itself adds, or that histograms carry.
_ALWAYS = {"le", "instance", "job"}


def _exported() -> dict[str, set[str]]:
    """Every name a service exposes (``x_total``, ``x_bucket``…) → its labels."""
    registries: list[CollectorRegistry] = [
        ApiMetrics().registry,
        ProjectorMetrics().registry,
        WorkerMetrics().registry,
        GitCiMetrics().registry,
    ]
    names: dict[str, set[str]] = {}
    for registry in registries:
        for name, collector in registry._names_to_collectors.items():
            names.setdefault(name, set()).update(getattr(collector, "_labelnames", ()))
    return names


EXPORTED = _exported()


def _dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads((HERE / "grafana-dashboard.json").read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            queries.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    return queries


def _alert_queries() -> list[tuple[str, str]]:
    rules = yaml.safe_load((HERE / "alerts.yaml").read_text())
    return [(f"alert {r['alert']}", r["expr"]) for group in rules["groups"] for r in group["rules"]]


def _problems(expr: str) -> list[str]:
    """What is wrong with one query: no metric of ours, a metric nobody exports, a label none of its
    metrics has."""
    names = set(_NAME.findall(expr))
    if not names:
        return ["names no deksdenflow metric"]
    problems = [f"{n} is not exported" for n in sorted(names) if n not in EXPORTED]
    labels = set().union(*(EXPORTED.get(n, set()) for n in names)) | _ALWAYS
    used = {label.strip() for group in _GROUPING.findall(expr) for label in group.split(",") if label.strip()}
    for selector in _SELECTOR_LABELS.findall(expr):
        used |= {m.split("=")[0].strip().rstrip("!~") for m in selector.split(",") if m.strip()}
    problems += [f"label {label!r} is on none of {sorted(names)}" for label in sorted(used - labels)]
    return problems


def test_the_registries_are_read() -> None:
    assert "deksdenflow_consumer_pending_messages" in EXPORTED
    assert EXPORTED["deksdenflow_agent_cost_usd_total"] == {"phase", "model"}
    assert _problems("sum(rate(deksdenflow_nothing_total[5m]))") == [
        "deksdenflow_nothing_total is not exported"
    ]
    assert _problems("sum by (project) (deksdenflow_api_sse_clients)") == [
        "label 'project' is on none of ['deksdenflow_api_sse_clients']"
    ]
    assert _problems("up") == ["names no deksdenflow metric"]


@pytest.mark.parametrize(("where", "expr"), _dashboard_queries() + _alert_queries())
def test_every_query_names_exported_metrics_and_labels(where: str, expr: str) -> None:
    assert _problems(expr) == [], where


def test_the_dashboard_is_a_grafana_dashboard() -> None:
    dashboard: dict[str, Any] = json.loads((HERE / "grafana-dashboard.json").read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"]
    assert dashboard["schemaVersion"] >= 36
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]
    graphs = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert all(p["targets"] and p["datasource"]["uid"] == "${datasource}" for p in graphs)
    # What the issue asks to see is there.
    exprs = " ".join(expr for _, expr in _dashboard_queries())
    for name in (
        "deksdenflow_consumer_pending_messages",
        "deksdenflow_consumer_ack_pending_messages",
        "deksdenflow_consumer_redelivered_messages",
        "deksdenflow_worker_jobs_total",
        "deksdenflow_worker_job_seconds_bucket",
        "deksdenflow_agent_cost_usd_total",
        "deksdenflow_tokens_total",
        "deksdenflow_qa_verdicts_total",
        "deksdenflow_agent_errors_total",
        "deksdenflow_webhooks_total",
        "deksdenflow_api_sse_clients",
        "deksdenflow_budget_warnings_total",
    ):
        assert name in exprs, name


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: make test installs Debian's prometheus package"
    return subprocess.run(
        [promtool, *args], cwd=HERE, capture_output=True, text=True, check=False, timeout=120
    )


def test_the_alert_rules_are_valid_and_pass_their_unit_tests() -> None:
    checked = _promtool("check", "rules", "alerts.yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = _promtool("test", "rules", "alerts.test.yaml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
    # Every alert has at least one test that expects it to fire.
    tests = yaml.safe_load((HERE / "alerts.test.yaml").read_text())
    fired = {
        case["alertname"]
        for t in tests["tests"]
        for case in t.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    alerts = {where.removeprefix("alert ") for where, _ in _alert_queries()}
    assert alerts == fired, alerts ^ fired
