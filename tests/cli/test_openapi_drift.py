"""The client's endpoints (``deksdenflow_cli.api``) against the API's OpenAPI document: every path and
method it calls exists, and every field it sends or reads is in the schema, so the two cannot drift."""

from __future__ import annotations

from typing import Any

from deksdenflow_api.app import create_app
from deksdenflow_api.auth import TOKEN_PREFIX
from deksdenflow_cli import projects, protocols
from deksdenflow_cli.api import ENDPOINTS, PROTOCOL_ACTIONS, STEP_ACTIONS
from deksdenflow_cli.client import PROJECT_TOKEN_PREFIX
from deksdenflow_cli.output import COMPUTED
from deksdenflow_core.settings import ApiSettings, DatabaseSettings, EventStoreSettings


def _openapi() -> dict[str, Any]:
    app = create_app(ApiSettings(), event_store=EventStoreSettings(), database=DatabaseSettings())
    return app.openapi()


def _schema(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_every_endpoint_and_field_of_the_client_is_in_the_api() -> None:
    doc = _openapi()
    for name, endpoint in ENDPOINTS.items():
        operation = doc["paths"].get(endpoint.path, {}).get(endpoint.method.lower())
        assert operation is not None, f"{name}: {endpoint.method} {endpoint.path} is not in the API"
        if endpoint.request:
            body = _schema(doc, operation["requestBody"]["content"]["application/json"]["schema"])
            # a body of several kinds (oneOf): a field of any of them
            variants = [_schema(doc, v) for v in body.get("oneOf", [body])]
            missing = set(endpoint.request) - {p for v in variants for p in v["properties"]}
            assert not missing, f"{name} sends fields the API does not take: {missing}"
        if endpoint.response:
            ok = next(v for k, v in operation["responses"].items() if k.startswith("2"))
            schema = _schema(doc, ok["content"]["application/json"]["schema"])
            if endpoint.listing:
                schema = _schema(doc, schema["properties"]["data"]["items"])
            missing = set(endpoint.response) - set(schema["properties"])
            assert not missing, f"{name} reads fields the API does not answer with: {missing}"


def test_the_client_knows_every_action_of_the_api() -> None:
    doc = _openapi()

    def actions(path: str) -> set[str]:
        parameters = doc["paths"][path]["post"]["parameters"]
        action = next(p for p in parameters if p["name"] == "action")
        return set(_schema(doc, action["schema"])["enum"])

    assert actions("/protocols/{protocol_run_id}/actions/{action}") == set(PROTOCOL_ACTIONS)
    assert actions("/steps/{step_run_id}/actions/{action}") == set(STEP_ACTIONS)


def _has_path(doc: dict[str, Any], schema: dict[str, Any], path: str) -> bool:
    for part in path.split("."):
        schema = _schema(doc, schema)
        options = schema.get("anyOf", [schema])
        found = [
            _schema(doc, o)["properties"][part]
            for o in options
            if part in _schema(doc, o).get("properties", {})
        ]
        if not found:
            return False
        schema = found[0]
    return True


def test_every_column_the_tables_show_is_a_field_of_the_api() -> None:
    doc = _openapi()
    schemas = doc["components"]["schemas"]
    tables = {
        "ProjectPublic": projects.PROJECT_COLUMNS,
        "ProtocolPublic": protocols.PROTOCOL_COLUMNS + protocols.PROTOCOL_DETAIL,
        "StepPublic": protocols.STEP_COLUMNS,
        "ActionResult": protocols.ACTION_COLUMNS,
        "EventPublic": protocols.EVENT_COLUMNS,
        "QaReportPublic": protocols.QA_COLUMNS,
    }
    for name, columns in tables.items():
        missing = [c for c in columns if c not in COMPUTED and not _has_path(doc, schemas[name], c)]
        assert not missing, f"the {name} table shows fields the API does not have: {missing}"


def test_project_tokens_are_told_apart_by_the_api_s_own_prefix() -> None:
    assert PROJECT_TOKEN_PREFIX == TOKEN_PREFIX
