"""The API's response models against the read model's declaration: every column the declaration makes
public is a field of its model, of the column's type (``X | None`` when the column may be NULL), and
every field of the model is such a column or one the API adds itself."""

from __future__ import annotations

import types
from datetime import datetime
from typing import Any, Union, get_args, get_origin

import pytest
from deksdenflow_api.schemas import EventPublic, ProjectPublic, ProtocolPublic, StepPublic, UsagePublic
from deksdenflow_core.readmodel.columns import Column, Sql, Table
from deksdenflow_core.readmodel.tables import EVENTS, PROJECTS, PROTOCOL_RUNS, STEP_RUNS
from pydantic import BaseModel

_PYTHON: dict[Sql, tuple[type, ...]] = {
    Sql.TEXT: (str,),
    Sql.INT4: (int,),
    Sql.INT8: (int,),
    Sql.BOOL: (bool,),
    Sql.TIMESTAMPTZ: (datetime,),
    Sql.JSONB: (dict, list),
}

# (model, its table, the model's fields that are no column of that table: nested or read from the state)
CASES: list[tuple[type[BaseModel], Table[Any], set[str]]] = [
    (ProjectPublic, PROJECTS, {"default_engines", "forge_repo", "ci_policy", "run_policy", "fallbacks"}),
    (ProtocolPublic, PROTOCOL_RUNS, {"usage"}),
    (UsagePublic, PROTOCOL_RUNS, set()),
    (StepPublic, STEP_RUNS, set()),
    (EventPublic, EVENTS, set()),
]


def _shape(annotation: Any) -> tuple[type, bool]:
    """``str | None`` → ``(str, True)``; ``dict[str, Any]`` → ``(dict, False)``."""
    optional = False
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        optional = len(args) < len(get_args(annotation))
        (annotation,) = args
    return get_origin(annotation) or annotation, optional


def _public(model: type[BaseModel], table: Table[Any]) -> list[Column[Any]]:
    """The table's public columns the model shows (a protocol's usage columns are in UsagePublic)."""
    usage = set(UsagePublic.model_fields)
    if table is PROTOCOL_RUNS:
        return [c for c in table.public if (c.name in usage) == (model is UsagePublic)]
    return list(table.public)


@pytest.mark.parametrize(("model", "table", "added"), CASES, ids=[m.__name__ for m, _, _ in CASES])
def test_every_public_column_is_a_field_of_its_response_model_and_nothing_else_is(
    model: type[BaseModel], table: Table[Any], added: set[str]
) -> None:
    columns = _public(model, table)
    assert sorted(set(model.model_fields) - added - {c.name for c in columns}) == [], "fields with no column"
    for column in columns:
        assert column.name in model.model_fields, f"{table.name}.{column.name} is public: add it to {model}"
        kind, optional = _shape(model.model_fields[column.name].annotation)
        nested = column.sql is Sql.JSONB and isinstance(kind, type) and issubclass(kind, BaseModel)
        assert kind in _PYTHON[column.sql] or nested, (column.name, kind)
        assert optional == column.nullable, f"{column.name}: nullable column ⇔ optional field"
