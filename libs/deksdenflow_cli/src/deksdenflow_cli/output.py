"""Data on stdout in the chosen format; everything for people (errors, progress) goes to stderr.

``table`` sizes itself to the terminal and is coloured only on a TTY without ``NO_COLOR`` (rich checks
both); ``json`` prints the object (or the list) as the API gave it, ``jsonl`` one object per line,
``yaml`` a YAML document, ``name`` one id per line. ``--field a.b`` (repeatable) selects dotted paths:
one field prints bare values (like ``jq -r``; not for yaml), several an object per item (or the table's
columns).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from deksdenflow_cli.why import why

FORMATS = ("table", "json", "jsonl", "yaml", "name")
# Columns made from others (``--field why`` as well as in tables); the API's own fields come first.
COMPUTED = {"why": why}


def stdout_console() -> Console:
    # Off a terminal rich would assume 80 columns and fold long ids; a pipe gets whole lines.
    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 250
    return Console(file=sys.stdout, highlight=False, soft_wrap=False, width=width)


def pick(item: Any, path: str) -> Any:
    """The value at a dotted path (``usage.cost_micro_usd``, ``questions.0.key``); None when absent."""
    if isinstance(item, dict) and path in COMPUTED and path not in item:
        return COMPUTED[path](item)
    value = item
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return (
            ", ".join(_cell(v) for v in value)
            if value and not isinstance(value[0], dict)
            else str(len(value))
        )
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def render(
    data: Any,
    output: str,
    *,
    columns: Sequence[str],
    fields: Sequence[str] = (),
    many: bool = False,
) -> None:
    """Print ``data`` (an object, or with ``many`` a list of them) on stdout."""
    items: list[Any] = list(data) if many else [data]
    if fields:
        if len(fields) == 1 and output in ("table", "json", "jsonl"):
            for item in items:
                value = pick(item, fields[0])
                print(value if isinstance(value, str) else json.dumps(value))
            return
        items = [{f: pick(item, f) for f in fields} for item in items]
        data = items if many else items[0]
        columns = fields
    if output == "json":
        print(json.dumps(data, indent=2, default=str))
    elif output == "jsonl":
        for item in items:
            print(json.dumps(item, separators=(",", ":"), default=str))
    elif output == "yaml":
        print(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), end="")
    elif output == "name":
        for item in items:
            print(item.get("id") or item.get("name") or item.get("position") or "")
    elif many:
        table = Table(box=None, pad_edge=False, header_style="bold")
        for column in columns:
            table.add_column(column.upper().replace("_", " "), overflow="fold")
        for item in items:
            table.add_row(*(_cell(pick(item, c)) for c in columns))
        stdout_console().print(table)
    else:
        table = Table(box=None, pad_edge=False, show_header=False)
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for column in columns:
            table.add_row(column, _cell(pick(data, column)))
        stdout_console().print(table)
