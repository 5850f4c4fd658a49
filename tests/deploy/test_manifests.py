"""deploy/k8s, offline: every overlay with every combination of its optional components is rendered with
the pinned kubectl, validated strictly against the Kubernetes API schemas (kubernetes-validate) and, for
custom resources, against the vendored CRD schemas; then the rules of the deployment are checked on the
rendered objects."""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import pytest
import yaml
from deksdenflow_codex_worker.settings import WorkerSettings
from deksdenflow_core.consumer_metrics import ConsumerGauges
from deksdenflow_core.settings import (
    ApiSettings,
    DatabaseSettings,
    EventStoreSettings,
    LogSettings,
)
from deksdenflow_git_ci_worker.settings import GitCiSettings
from deksdenflow_projector.settings import ProjectorSettings
from prometheus_client import CollectorRegistry
from pydantic_settings import BaseSettings

from tests.deploy import crd_schemas, prometheusrule
from tests.deploy.k8s_support import (
    K8S,
    Obj,
    Rendering,
    containers,
    env_of,
    pod_labels,
    pod_spec,
    render_all,
    selector_matches,
    walk,
)
from tests.deploy.netflows import allowed_flows

# kubernetes-validate reads its 1 MB definitions file again for every object: read each file once.
kubernetes_validate.utils.schema_contents = functools.cache(kubernetes_validate.utils.schema_contents)
# The oldest Kubernetes the manifests are meant for, and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.33.0", kubernetes_validate.latest_version())
CUSTOM_KINDS = frozenset({"Cluster", "ScaledObject", "ServiceMonitor", "PodMonitor", "PrometheusRule"})
OURS = ("api", "projector", "codex-worker", "git-ci-worker")


@pytest.fixture(scope="module")
def renderings() -> list[Rendering]:
    result, seconds = render_all()
    print(f"\nrendered {len(result)} combinations of overlays and components in {seconds:.2f}s")
    return result


def _namespace(rendering: Rendering) -> str:
    (namespace,) = rendering.of_kind("Namespace")
    name: str = namespace["metadata"]["name"]
    return name


def _deployment(rendering: Rendering, component: str) -> Obj:
    return rendering.get("Deployment", f"deksdenflow-{component}")


def _replicas(rendering: Rendering, workload: Obj) -> int:
    """What a workload runs at most: its replicas, or its ScaledObject's maximum."""
    for scaled in rendering.of_kind("ScaledObject"):
        if scaled["spec"]["scaleTargetRef"]["name"] == workload["metadata"]["name"]:
            return int(scaled["spec"]["maxReplicaCount"])
    return int(workload["spec"].get("replicas", 1))


# --- rendering and schemas ------------------------------------------------------------------------------


def test_every_combination_renders_and_passes_strict_schema_validation(renderings: list[Rendering]) -> None:
    started = time.perf_counter()
    # Most objects are the same in many combinations: each distinct one is validated once.
    distinct: dict[str, tuple[str, Obj]] = {}
    for rendering in renderings:
        assert rendering.objects, rendering.name
        for obj in rendering.objects:
            distinct.setdefault(json.dumps(obj, sort_keys=True), (rendering.name, obj))
    for where, obj in distinct.values():
        name = f"{where}: {obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in CUSTOM_KINDS:
            errors = crd_schemas.validate(obj)
            assert not errors, f"{name}: {errors}"
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                raise AssertionError(f"{name} (Kubernetes {version}): {exc}") from exc
    total = sum(len(r.objects) for r in renderings)
    print(f"validated {len(distinct)} distinct objects of {total} in {time.perf_counter() - started:.2f}s")


def test_custom_resources_are_checked_against_their_schemas_not_waved_through() -> None:
    """The vendored schemas reject what the operators would: an unknown field, a wrong type."""
    scaled = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "x"},
        "spec": {"scaleTargetRef": {"name": "x"}, "triggers": [], "minReplicas": 1},
    }
    assert crd_schemas.validate(scaled)
    cluster = {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {"name": "x"},
        "spec": {"instances": "three"},
    }
    assert crd_schemas.validate(cluster)
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "x"},
        "spec": {"selector": {}, "endpoints": [{"port": "http", "intervall": "30s"}]},
    }
    assert crd_schemas.validate(monitor)


def test_the_overlays_are_what_they_say(renderings: list[Rendering]) -> None:
    for rendering in renderings:
        config = rendering.get("ConfigMap", "deksdenflow-config")["data"]
        nats = rendering.get("StatefulSet", "deksdenflow-nats")
        if rendering.overlay == "dev":
            assert nats["spec"]["replicas"] == 1
            assert config["DEKSDENFLOW_STREAM_REPLICAS"] == "1"
            assert rendering.get("StatefulSet", "deksdenflow-postgres")["spec"]["replicas"] == 1
            assert not rendering.of_kind("Cluster")
            for workload in rendering.workloads():
                assert workload["spec"].get("replicas", 1) == 1, workload["metadata"]["name"]
        else:
            assert nats["spec"]["replicas"] == 3
            assert config["DEKSDENFLOW_STREAM_REPLICAS"] == "3"
            routes = rendering.get("ConfigMap", "deksdenflow-nats")["data"]["nats.conf"]
            assert len(re.findall(r"nats://deksdenflow-nats-\d\.deksdenflow-nats-cluster:6222", routes)) == 3
            (cluster,) = rendering.of_kind("Cluster")
            assert cluster["spec"]["instances"] == 3
            for component in ("api", "codex-worker", "git-ci-worker"):
                assert _replicas(rendering, _deployment(rendering, component)) > 1, component
        # One writer of the read model, never two at once (not even during an upgrade).
        projector = _deployment(rendering, "projector")
        assert projector["spec"]["replicas"] == 1
        assert projector["spec"]["strategy"]["type"] == "Recreate"


# --- every pod ------------------------------------------------------------------------------------------


def test_every_pod_runs_unprivileged_with_a_read_only_root(renderings: list[Rendering]) -> None:
    for rendering in renderings:
        for workload in rendering.workloads():
            name = f"{rendering.name}: {workload['metadata']['name']}"
            spec = pod_spec(workload)
            assert spec["securityContext"]["runAsNonRoot"] is True, name
            assert spec["securityContext"]["runAsUser"] > 0, name
            assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
            assert spec.get("automountServiceAccountToken") is False, name
            assert not spec.get("hostNetwork"), name
            assert not spec.get("hostPID"), name
            for container in containers(workload):
                context = container["securityContext"]
                assert context["allowPrivilegeEscalation"] is False, name
                assert context["capabilities"]["drop"] == ["ALL"], name
                assert "add" not in context["capabilities"], name
                assert context["readOnlyRootFilesystem"] is True, name
                assert not context.get("privileged"), name


def test_every_container_has_requests_and_limits(renderings: list[Rendering]) -> None:
    for rendering in renderings:
        for workload in rendering.workloads():
            for container in containers(workload):
                resources = container["resources"]
                name = f"{rendering.name}: {workload['metadata']['name']}/{container['name']}"
                assert {"cpu", "memory"} <= set(resources["requests"]), name
                assert {"cpu", "memory"} <= set(resources["limits"]), name


def test_images_are_pinned(renderings: list[Rendering]) -> None:
    for rendering in renderings:
        for workload in rendering.workloads():
            for container in containers(workload):
                image = container["image"]
                tag = image.rsplit("/", 1)[-1].partition(":")[2]
                assert tag, f"{rendering.name}: {image}"
                assert tag != "latest", f"{rendering.name}: {image}"


def test_probes_are_on_the_right_endpoints(renderings: list[Rendering]) -> None:
    """Liveness: the process answers. Readiness: what the service needs to do its work (README, Probes)."""
    expected = {
        "api": (8010, "/livez", "/readyz"),
        "projector": (8011, "/livez", "/health"),
        "codex-worker": (8012, "/health", "/health"),
        "git-ci-worker": (8013, "/health", "/health"),
    }
    for rendering in renderings:
        for component, (port, live, ready) in expected.items():
            (container,) = pod_spec(_deployment(rendering, component))["containers"]
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            for probe, path in (("startupProbe", live), ("livenessProbe", live), ("readinessProbe", ready)):
                get = container[probe]["httpGet"]
                assert get["path"] == path, (rendering.name, component, probe)
                assert ports[get["port"]] == port, (rendering.name, component, probe)
        for statefulset in rendering.of_kind("StatefulSet"):
            for container in pod_spec(statefulset)["containers"]:
                assert "livenessProbe" in container, statefulset["metadata"]["name"]
                assert "readinessProbe" in container, statefulset["metadata"]["name"]


def test_services_listen_where_their_probes_and_services_look(renderings: list[Rendering]) -> None:
    """The image defaults bind to 127.0.0.1: every service is told to listen on all interfaces."""
    hosts = {
        "api": "DEKSDENFLOW_API_HOST",
        "projector": "DEKSDENFLOW_PROJECTOR_HOST",
        "codex-worker": "DEKSDENFLOW_CODEX_WORKER_HOST",
        "git-ci-worker": "DEKSDENFLOW_GIT_CI_WORKER_HOST",
    }
    for rendering in renderings:
        for component, variable in hosts.items():
            (container,) = pod_spec(_deployment(rendering, component))["containers"]
            assert env_of(container)[variable]["value"] == "0.0.0.0"  # noqa: S104


# --- secrets and settings ---------------------------------------------------------------------------------


def _env_entries(rendering: Rendering) -> Iterator[tuple[str, Obj]]:
    for workload in rendering.workloads():
        for container in containers(workload):
            for entry in container.get("env", []):
                yield f"{workload['metadata']['name']}/{container['name']}", entry


SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|_KEY$|API_KEY|PRIVATE", re.IGNORECASE)


def test_secrets_only_come_from_kubernetes_secrets(renderings: list[Rendering]) -> None:
    for rendering in renderings:
        assert not rendering.of_kind("Secret"), f"{rendering.name}: a Secret's values are not for git"
        for where, entry in _env_entries(rendering):
            if SECRET_NAME.search(entry["name"]):
                assert "secretKeyRef" in entry.get("valueFrom", {}), (rendering.name, where, entry["name"])
            value = entry.get("value", "")
            # A URL with a login takes its password from a variable filled from a Secret.
            for password in re.findall(r"://[^:/@\s]+:([^@\s]+)@", value):
                assert re.fullmatch(r"\$\([A-Z_]+\)", password), (rendering.name, where, entry["name"])


def _settings_variables() -> set[str]:
    """Every environment variable a deksdenflow service reads, from the settings classes themselves."""
    classes: list[type[BaseSettings]] = [
        ApiSettings,
        EventStoreSettings,
        DatabaseSettings,
        LogSettings,
        ProjectorSettings,
        WorkerSettings,
        GitCiSettings,
    ]
    names: set[str] = set()
    for cls in classes:
        prefix = str(cls.model_config.get("env_prefix", ""))
        for field_name, info in cls.model_fields.items():
            names.add(f"{prefix}{field_name}".upper())
            alias: Any = info.validation_alias
            for choice in getattr(alias, "choices", [alias] if isinstance(alias, str) else []):
                names.add(str(choice).upper())
    return names


def test_every_deksdenflow_variable_is_a_real_setting(renderings: list[Rendering]) -> None:
    known = _settings_variables() | {"DEKSDENFLOW_HEALTHCHECK_URL"}  # the image's HEALTHCHECK's own
    for rendering in renderings:
        names = {entry["name"] for _, entry in _env_entries(rendering)}
        for configmap in rendering.of_kind("ConfigMap"):
            names |= {k for k in configmap.get("data", {}) if k.startswith("DEKSDENFLOW_")}
        unknown = {n for n in names if n.startswith("DEKSDENFLOW_")} - known
        assert not unknown, f"{rendering.name}: not a deksdenflow setting: {sorted(unknown)}"


def test_secrets_referenced_are_the_ones_the_readme_documents(renderings: list[Rendering]) -> None:
    documented = set(
        re.findall(r"^\| `([a-z0-9-]+)` \| `([a-z0-9-]+)` \|", (K8S / "README.md").read_text(), re.M)
    )
    assert documented
    referenced: set[tuple[str, str]] = set()
    for rendering in renderings:
        for path, node in walk(list(rendering.objects)):
            if path.endswith(".secretKeyRef"):
                referenced.add((node["name"], node["key"]))
            elif path.endswith(".passwordSecret"):
                referenced.add((node["name"], "password"))
    # CloudNativePG makes deksdenflow-db-app itself in prod; dev's is made by hand: both are listed.
    assert referenced == documented
    readme = (K8S / "README.md").read_text()
    for rendering in renderings:
        for path, node in walk(list(rendering.objects)):
            if path.endswith(".volumes") or not path.endswith(".secret"):
                continue
            assert f"| `{node['secretName']}` | (volume) |" in readme, node["secretName"]
        for ingress in rendering.of_kind("Ingress"):
            for tls in ingress["spec"].get("tls", []):
                assert f"| `{tls['secretName']}` | (Ingress) |" in readme, tls["secretName"]


# --- shutdown, migration, disruption, ingress --------------------------------------------------------------


def test_a_codex_worker_has_the_time_to_hand_back_its_job(renderings: list[Rendering]) -> None:
    for rendering in renderings:
        deployment = _deployment(rendering, "codex-worker")
        (container,) = pod_spec(deployment)["containers"]
        agent_timeout = float(
            env_of(container).get("DEKSDENFLOW_AGENT_TIMEOUT_SECONDS", {}).get("value")
            or WorkerSettings.model_fields["agent_timeout_seconds"].default
        )
        # The agent call, then recording the result, pushing and acking.
        assert pod_spec(deployment)["terminationGracePeriodSeconds"] >= agent_timeout + 120
        assert pod_spec(_deployment(rendering, "git-ci-worker"))["terminationGracePeriodSeconds"] >= 300
        assert pod_spec(_deployment(rendering, "api"))["terminationGracePeriodSeconds"] > 10


def test_the_migration_is_a_job_the_projector_waits_for(renderings: list[Rendering]) -> None:
    for rendering in renderings:
        job = rendering.get("Job", "deksdenflow-migrate")
        (migrate,) = pod_spec(job)["containers"]
        assert migrate["command"] == ["deksdenflow-projector", "migrate"]
        projector = _deployment(rendering, "projector")
        (wait,) = pod_spec(projector)["initContainers"]
        assert "deksdenflow-projector migrate --check" in " ".join(wait["command"])
        (run,) = pod_spec(projector)["containers"]
        # The same release on both sides, and the same database.
        assert migrate["image"] == wait["image"] == run["image"]
        assert env_of(migrate)["DEKSDENFLOW_DB_URL"] == env_of(wait)["DEKSDENFLOW_DB_URL"]
        assert env_of(migrate)["DEKSDENFLOW_DB_URL"] == env_of(run)["DEKSDENFLOW_DB_URL"]


def test_disruption_budgets_cover_every_scaled_workload_and_block_no_drain(
    renderings: list[Rendering],
) -> None:
    for rendering in renderings:
        budgets = rendering.of_kind("PodDisruptionBudget")
        workloads = rendering.of_kind("Deployment", "StatefulSet")
        for workload in workloads:
            covering = [b for b in budgets if selector_matches(b["spec"]["selector"], pod_labels(workload))]
            assert len(covering) <= 1, workload["metadata"]["name"]
            if _replicas(rendering, workload) > 1:
                assert covering, f"{rendering.name}: {workload['metadata']['name']} has no budget"
            for budget in covering:
                # One at a time, and never a budget that a single replica cannot satisfy.
                assert budget["spec"].get("maxUnavailable") == 1, budget["metadata"]["name"]
                assert "minAvailable" not in budget["spec"]
        for budget in budgets:
            assert any(selector_matches(budget["spec"]["selector"], pod_labels(w)) for w in workloads)


def test_the_ingress_keeps_event_streams_open(renderings: list[Rendering]) -> None:
    for rendering in renderings:
        ingress = rendering.get("Ingress", "deksdenflow-api")
        annotations = ingress["metadata"]["annotations"]
        assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
        # Longer than the API's SSE keep-alive many times over.
        keepalive = ApiSettings.model_fields["sse_keepalive_seconds"].default
        for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
            assert int(annotations[f"nginx.ingress.kubernetes.io/{timeout}"]) >= 10 * keepalive
        (rule,) = ingress["spec"]["rules"]
        (path,) = rule["http"]["paths"]
        service = rendering.get("Service", path["backend"]["service"]["name"])
        assert selector_matches(
            {"matchLabels": service["spec"]["selector"]}, pod_labels(_deployment(rendering, "api"))
        )


# --- optional components ----------------------------------------------------------------------------------


def _consumer_gauges() -> dict[str, tuple[str, ...]]:
    """The consumer metrics the projector samples (name → label names), from the gauges themselves."""
    registry = CollectorRegistry()
    ConsumerGauges(registry)
    gauges: dict[str, tuple[str, ...]] = {}
    for family in registry.collect():
        collector = registry._names_to_collectors[family.name]  # the Gauge that made the family
        gauges[family.name] = tuple(getattr(collector, "_labelnames", ()))
    return gauges


def test_keda_scales_workers_on_our_backlog_metric(renderings: list[Rendering]) -> None:
    for rendering in renderings:
        scaled = rendering.of_kind("ScaledObject")
        if "keda" not in rendering.components:
            assert not scaled
            continue
        targets = {s["spec"]["scaleTargetRef"]["name"] for s in scaled}
        assert targets == {"deksdenflow-codex-worker", "deksdenflow-git-ci-worker"}
        for s in scaled:
            deployment = rendering.get("Deployment", s["spec"]["scaleTargetRef"]["name"])
            assert "replicas" not in deployment["spec"]  # the HPA owns it
            assert s["spec"]["minReplicaCount"] >= 1
            assert s["spec"]["maxReplicaCount"] > s["spec"]["minReplicaCount"]
            assert s["spec"]["cooldownPeriod"] >= 300
            (trigger,) = s["spec"]["triggers"]
            assert trigger["type"] == "prometheus"
            durable = "codex_worker" if "codex" in deployment["metadata"]["name"] else "git_ci_worker"
            query = trigger["metadata"]["query"]
            assert f'consumer="{durable}"' in query
            # Every metric the query reads is one deksdenflow exports, with the label it filters on.
            exported = _consumer_gauges()
            named = set(re.findall(r"\b(deksdenflow_\w+)\{", query))
            assert named, query
            assert named <= set(exported), named - set(exported)
            for name in named:
                assert "consumer" in exported[name], name


def test_opentelemetry_is_wired_with_the_standard_variables(renderings: list[Rendering]) -> None:
    for rendering in renderings:
        for component in OURS:
            (container,) = pod_spec(_deployment(rendering, component))["containers"]
            env = env_of(container)
            if "opentelemetry" not in rendering.components:
                assert not any(name.startswith("OTEL_") for name in env)
                continue
            # The services' own default names (what `make run` reports too).
            assert env["OTEL_SERVICE_NAME"]["value"] == f"deksdenflow-{component.replace('-', '_')}"
            assert {"configMapRef": {"name": "deksdenflow-otel"}} in container["envFrom"]
        if "opentelemetry" in rendering.components:
            config = rendering.get("ConfigMap", "deksdenflow-otel")["data"]
            assert config["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http")
            assert "tracecontext" in config["OTEL_PROPAGATORS"]


def test_prometheus_scrapes_every_service(renderings: list[Rendering]) -> None:
    for rendering in renderings:
        if "prometheus-operator" not in rendering.components:
            assert not rendering.of_kind("ServiceMonitor", "PodMonitor")
            continue
        for component in OURS:
            deployment = _deployment(rendering, component)
            scraped = False
            for monitor in rendering.of_kind("ServiceMonitor"):
                for service in rendering.of_kind("Service"):
                    selects_service = selector_matches(
                        monitor["spec"]["selector"], service["metadata"].get("labels", {})
                    )
                    service_selects_pods = selector_matches(
                        {"matchLabels": service["spec"]["selector"]}, pod_labels(deployment)
                    )
                    scraped = scraped or (selects_service and service_selects_pods)
            for monitor in rendering.of_kind("PodMonitor"):
                if selector_matches(monitor["spec"]["selector"], pod_labels(deployment)):
                    (container,) = pod_spec(deployment)["containers"]
                    names = {p["name"] for p in container["ports"]}
                    assert {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]} <= names
                    scraped = True
            assert scraped, f"{rendering.name}: {component} is not scraped"


# --- network policies --------------------------------------------------------------------------------------

DNS = {("kube-dns", 53, "UDP"), ("kube-dns", 53, "TCP")}
CLIENT_FLOWS = {
    ("ingress-nginx", "api", 8010, "TCP"),
    ("prometheus", "api", 8010, "TCP"),
    ("prometheus", "projector", 8011, "TCP"),
    ("prometheus", "codex-worker", 8012, "TCP"),
    ("prometheus", "git-ci-worker", 8013, "TCP"),
    ("api", "nats", 4222, "TCP"),
    ("api", "database", 5432, "TCP"),
    ("projector", "nats", 4222, "TCP"),
    ("projector", "database", 5432, "TCP"),
    ("migrate", "database", 5432, "TCP"),
    ("codex-worker", "nats", 4222, "TCP"),
    ("codex-worker", "internet", 443, "TCP"),
    ("codex-worker", "internet", 22, "TCP"),
    ("git-ci-worker", "nats", 4222, "TCP"),
    ("git-ci-worker", "database", 5432, "TCP"),
    ("git-ci-worker", "internet", 443, "TCP"),
    ("git-ci-worker", "internet", 22, "TCP"),
}
PROD_FLOWS = {
    # The NATS cluster's routes (a single dev server listens on none).
    ("nats", "nats", 6222, "TCP"),
    # CloudNativePG.
    ("cnpg-operator", "database", 8000, "TCP"),
    ("cnpg-operator", "database", 5432, "TCP"),
    ("database", "database", 5432, "TCP"),
    # The Kubernetes API server: its address is the cluster's (often a private one), so the rule is
    # limited by port only, and any address answers on those ports (README: narrow it to yours).
    ("database", "internet", 443, "TCP"),
    ("database", "internet", 6443, "TCP"),
    ("database", "private-host", 443, "TCP"),
}


def test_network_policies_allow_exactly_the_flows_needed(renderings: list[Rendering]) -> None:
    for rendering in renderings:
        if "network-policies" not in rendering.components:
            continue
        pods = {"api", "projector", "migrate", "codex-worker", "git-ci-worker", "nats", "database"}
        expected = CLIENT_FLOWS | {(pod, dst, port, proto) for pod in pods for dst, port, proto in DNS}
        if rendering.overlay == "prod":
            expected |= PROD_FLOWS
        flows = allowed_flows(rendering, _namespace(rendering))
        assert flows == expected, (
            f"{rendering.name}: allowed but not needed {sorted(flows - expected)}; "
            f"needed but denied {sorted(expected - flows)}"
        )


def test_clients_reach_the_database_whatever_the_components(renderings: list[Rendering]) -> None:
    """The prod overlay's CloudNativePG policy isolates the instances even without the component."""
    for rendering in renderings:
        flows = allowed_flows(rendering, _namespace(rendering))
        for client in ("api", "projector", "migrate", "git-ci-worker"):
            assert (client, "database", 5432, "TCP") in flows, (rendering.name, client)


def test_the_alert_rules_ship_as_a_prometheus_rule_equal_to_deploy_observability(
    renderings: list[Rendering],
) -> None:
    assert prometheusrule.RULE.read_text() == prometheusrule.render(), "python -m tests.deploy.prometheusrule"
    alerts = yaml.safe_load(prometheusrule.ALERTS.read_text())["groups"]
    for rendering in renderings:
        rules = rendering.of_kind("PrometheusRule")
        if "prometheus-operator" not in rendering.components:
            assert not rules
            continue
        (rule,) = rules
        assert rule["spec"]["groups"] == alerts
