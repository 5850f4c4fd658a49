"""The kit a read table is declared with: each column once, with its SQL type and how it is read.

A :class:`Table` lists its :class:`Column` s; each column says its name, its SQL type, whether it may be
NULL, how its value is read from what the projector folded (the table's *source*: an aggregate's state,
a step, an event), whether a later write of the same row updates it, and whether the API shows it. The
projector builds its rows from the readers, the API its column lists and bodies from the same columns,
and a test holds the declaration against the schema the Alembic migrations make.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

Source = TypeVar("Source")


class Sql(StrEnum):
    """A column's SQL type, spelt as PostgreSQL names an array element type (``$1::int8[]``)."""

    TEXT = "text"
    INT4 = "int4"
    INT8 = "int8"
    BOOL = "bool"
    JSONB = "jsonb"
    TIMESTAMPTZ = "timestamptz"


@dataclass(frozen=True)  # no slots: ``Column[X](...)`` sets ``__orig_class__``, which slots would refuse
class Column(Generic[Source]):
    """One column of a read table.

    ``read`` gives the value as it is sent to PostgreSQL (a ``jsonb`` value as JSON text in ``bytes``);
    ``None`` means the row's source does not write it (another statement does, or its default stands).
    ``fixed``: written when the row is inserted, left as it is by later writes of the same row.
    ``public``: part of what the API shows of the row.
    """

    name: str
    sql: Sql
    read: Callable[[Source], Any] | None
    nullable: bool = False
    fixed: bool = False
    public: bool = False


@dataclass(frozen=True)
class Table(Generic[Source]):
    """A read table: its columns in order, its key, and whether a row once written ever changes.

    ``append_only``: a row, once inserted, is never rewritten from its source (a redelivered source is
    ignored); otherwise a later write updates every written column that is not ``fixed``.
    """

    name: str
    key: str
    columns: tuple[Column[Source], ...]
    append_only: bool = False
    _row: Callable[[Source], tuple[Any, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names) or self.key not in names:
            raise ValueError(f"table {self.name}: column names must be unique and include the key")
        object.__setattr__(self, "_row", _row_function([c.read for c in self.written if c.read]))

    @property
    def written(self) -> tuple[Column[Source], ...]:
        """The columns the source writes, in the order of :meth:`row`."""
        return tuple(c for c in self.columns if c.read is not None)

    @property
    def updated(self) -> tuple[str, ...]:
        """The columns a later write of the same row sets again (none for an append-only table)."""
        if self.append_only:
            return ()
        return tuple(c.name for c in self.written if not c.fixed and c.name != self.key)

    @property
    def public(self) -> tuple[Column[Source], ...]:
        """The columns the API shows."""
        return tuple(c for c in self.columns if c.public)

    def column(self, name: str) -> Column[Source]:
        """The column called ``name`` (``KeyError`` if there is none)."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name}")

    def row(self, source: Source) -> tuple[Any, ...]:
        """The values of the :attr:`written` columns for ``source``, as they are sent to PostgreSQL."""
        return self._row(source)

    def read_back(self, source: Source, columns: Iterable[Column[Source]]) -> dict[str, Any]:
        """``columns`` of ``source``'s row as a reader of the table gets them back (``jsonb`` decoded):
        the row a write answers with before the read model has it."""
        values: dict[str, Any] = {}
        for c in columns:
            if c.read is None:
                raise ValueError(f"{self.name}.{c.name} is not read from the table's source")
            value = c.read(source)
            values[c.name] = json.loads(value) if c.sql is Sql.JSONB and value is not None else value
        return values


def _row_function(readers: list[Callable[[Any], Any]]) -> Callable[[Any], tuple[Any, ...]]:
    """``lambda source: (read0(source), read1(source), ...)`` for these readers, written out as one function.

    The projector builds a row for every event it applies; a loop over the readers cost a quarter of it.
    The source text is made of fixed names only (``read0`` ...); the readers are its globals.
    """
    names = [f"read{i}" for i in range(len(readers))]
    text = f"def row(source):\n    return ({''.join(f'{name}(source), ' for name in names)})\n"
    namespace: dict[str, Any] = dict(zip(names, readers, strict=True))
    exec(text, namespace)  # noqa: S102  # the text above, of fixed names: nothing outside goes into it
    row: Callable[[Any], tuple[Any, ...]] = namespace["row"]
    return row


def column_list(columns: Iterable[Column[Any]]) -> str:
    """``a, b, c``: the columns' names for a ``SELECT`` or ``INSERT`` list."""
    return ", ".join(c.name for c in columns)
