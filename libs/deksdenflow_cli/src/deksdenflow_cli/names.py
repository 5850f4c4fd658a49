"""Names as well as ids: ``demo`` (a project), ``demo/0001-add-login`` (a protocol, by its name, slug or
number within the project), ``demo/0001-add-login/2`` (a step, by index or name within the protocol)."""

from __future__ import annotations

from typing import Any

from deksdenflow_cli.client import Client
from deksdenflow_cli.exits import NOT_FOUND, USAGE, CliError

_PAGE = 500


def _one(matches: list[dict[str, Any]], what: str, ref: str) -> dict[str, Any]:
    if not matches:
        raise CliError(NOT_FOUND, f"no {what} {ref!r}")
    if len(matches) > 1:
        ids = ", ".join(m["id"] for m in matches)
        raise CliError(USAGE, f"{what} {ref!r} is ambiguous ({ids}): use its id")
    return matches[0]


def project(client: Client, ref: str) -> dict[str, Any]:
    """The project whose id or (unique) name is ``ref``."""
    found: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = client.call("project.list", params={"limit": _PAGE, "offset": offset})["data"]
        found += [p for p in page if ref in (p["id"], p["name"])]
        if len(page) < _PAGE:
            break
        offset += _PAGE
    by_id = [p for p in found if p["id"] == ref]
    return by_id[0] if by_id else _one(found, "project", ref)


def project_id(client: Client, ref: str) -> str:
    return str(project(client, ref)["id"])


def protocol(client: Client, ref: str) -> dict[str, Any]:
    """The protocol run ``PROJECT/NAME`` (name, slug, number or id within the project) or with id ``ref``."""
    if "/" not in ref:
        result: dict[str, Any] = client.call("protocol.get", protocol_run_id=ref)
        return result
    project_ref, name = ref.split("/", 1)
    pid = project_id(client, project_ref)
    found: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = client.call("protocol.list", project_id=pid, params={"limit": _PAGE, "offset": offset})["data"]
        found += [
            p
            for p in page
            if name in (p["id"], p["protocol_name"], p["slug"])
            or (name.isdigit() and int(name) == p["number"])
        ]
        if len(page) < _PAGE:
            break
        offset += _PAGE
    return _one(found, "protocol", ref)


def protocol_id(client: Client, ref: str) -> str:
    return ref if "/" not in ref else str(protocol(client, ref)["id"])


def step_id(client: Client, ref: str) -> str:
    """A step id, or ``PROJECT/PROTOCOL/STEP`` with the step's index or name."""
    if ref.count("/") < 2:
        return ref
    protocol_ref, step = ref.rsplit("/", 1)
    steps = client.call("step.list", protocol_run_id=protocol_id(client, protocol_ref))["data"]
    matches = [s for s in steps if step in (s["id"], s["step_name"]) or step == str(s["step_index"])]
    return str(_one(matches, "step", ref)["id"])
