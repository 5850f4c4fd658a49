"""Which connections NetworkPolicies allow, evaluated over rendered objects: every source, every
destination and every port it listens on, in both directions (the source's egress, the destination's
ingress), with the semantics of networking.k8s.io/v1 (a pod no policy selects is open in that direction)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from tests.deploy.k8s_support import Obj, Rendering, pod_labels, selector_matches

NAMESPACE_LABEL = "kubernetes.io/metadata.name"
Port = tuple[int, str]  # (number, protocol)


@dataclass(frozen=True)
class Peer:
    """Something that connects or is connected to: a pod of ours, a pod elsewhere, or an address."""

    name: str
    ip: str
    namespace: str | None = None  # None: not a pod (an address outside the cluster)
    labels: dict[str, str] = field(default_factory=dict)
    listens: tuple[Port, ...] = ()
    ours: bool = False


# Outside deksdenflow's namespace: what the components' policies assume is there.
EXTERNAL = (
    Peer("ingress-nginx", "10.244.9.1", "ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"}),
    Peer("prometheus", "10.244.9.2", "monitoring", {"app.kubernetes.io/name": "prometheus"}),
    Peer("kube-dns", "10.244.9.3", "kube-system", {"k8s-app": "kube-dns"}, ((53, "UDP"), (53, "TCP"))),
    Peer("cnpg-operator", "10.244.9.4", "cnpg-system", {"app.kubernetes.io/name": "cloudnative-pg"}),
    # The model API, forges, git remotes, the Kubernetes API: addresses outside the cluster.
    Peer("internet", "203.0.113.10", listens=((443, "TCP"), (22, "TCP"), (80, "TCP"), (6443, "TCP"))),
    # A host on a private network (another tenant, a cloud metadata service): never reached.
    Peer("private-host", "10.20.30.40", listens=((443, "TCP"), (22, "TCP"), (5432, "TCP"))),
    Peer("metadata", "169.254.169.254", listens=((80, "TCP"),)),
)


def our_peers(rendering: Rendering, namespace: str) -> list[Peer]:
    """deksdenflow's pods (one per workload, named by component) and CloudNativePG's instances."""
    peers: list[Peer] = []
    for index, workload in enumerate(rendering.workloads()):
        labels = pod_labels(workload)
        ports = tuple(
            (p["containerPort"], p.get("protocol", "TCP"))
            for c in workload["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", [])
        )
        name = labels.get("app.kubernetes.io/component", workload["metadata"]["name"])
        peers.append(Peer(name, f"10.244.1.{index + 1}", namespace, labels, ports, ours=True))
    for cluster in rendering.of_kind("Cluster"):
        labels = {
            **cluster["spec"].get("inheritedMetadata", {}).get("labels", {}),
            "cnpg.io/cluster": cluster["metadata"]["name"],
        }
        peers.append(
            Peer("database", "10.244.2.1", namespace, labels, ((5432, "TCP"), (8000, "TCP")), ours=True)
        )
    return peers


def _port_matches(rule_ports: list[Obj] | None, port: Port) -> bool:
    if not rule_ports:
        return True
    return any(p.get("port") == port[0] and p.get("protocol", "TCP") == port[1] for p in rule_ports)


def _peer_matches(entries: list[Obj] | None, other: Peer, policy_namespace: str) -> bool:
    if entries is None:
        return True
    for entry in entries:
        if "ipBlock" in entry:
            block = entry["ipBlock"]
            ip = ipaddress.ip_address(other.ip)
            if ip in ipaddress.ip_network(block["cidr"]) and not any(
                ip in ipaddress.ip_network(e) for e in block.get("except", [])
            ):
                return True
            continue
        if other.namespace is None:
            continue
        if "namespaceSelector" in entry:
            ns_labels = {NAMESPACE_LABEL: other.namespace}
            if not selector_matches(entry["namespaceSelector"], ns_labels):
                continue
        elif other.namespace != policy_namespace:
            continue
        if "podSelector" in entry and not selector_matches(entry["podSelector"], other.labels):
            continue
        return True
    return False


def _allowed(policies: list[Obj], me: Peer, other: Peer, port: Port, direction: str, namespace: str) -> bool:
    """Does ``me``'s side allow the connection with ``other`` (egress: me → other; ingress: other → me)?"""
    if not me.ours:
        return True  # outside our namespace: not ours to restrict
    mine = [
        p
        for p in policies
        if selector_matches(p["spec"]["podSelector"], me.labels)
        and direction in p["spec"].get("policyTypes", ["Ingress"])
    ]
    if not mine:
        return True
    key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    for policy in mine:
        for rule in policy["spec"].get(key, []):
            if _port_matches(rule.get("ports"), port) and _peer_matches(
                rule.get(peers_key), other, namespace
            ):
                return True
    return False


def allowed_flows(rendering: Rendering, namespace: str) -> set[tuple[str, str, int, str]]:
    """Every (source, destination, port, protocol) the rendered NetworkPolicies let through."""
    policies = rendering.of_kind("NetworkPolicy")
    peers: list[Any] = [*our_peers(rendering, namespace), *EXTERNAL]
    flows = set()
    for src in peers:
        for dst in peers:
            if not (src.ours or dst.ours):
                continue
            for port in dst.listens:
                if _allowed(policies, src, dst, port, "Egress", namespace) and _allowed(
                    policies, dst, src, port, "Ingress", namespace
                ):
                    flows.add((src.name, dst.name, port[0], port[1]))
    return flows
