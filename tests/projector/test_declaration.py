"""The read model's declaration (``deksdenflow_core.readmodel.tables``) against the schema the Alembic
migrations make: the projector writes, and the API reads, by the declaration only."""

from __future__ import annotations

import asyncpg
from deksdenflow_core.readmodel import SCHEMA
from deksdenflow_core.readmodel.columns import Column, Sql, Table
from deksdenflow_core.readmodel.tables import TABLES

# information_schema.columns.data_type of each declared type
_DATA_TYPE = {
    Sql.TEXT: "text",
    Sql.INT4: "integer",
    Sql.INT8: "bigint",
    Sql.BOOL: "boolean",
    Sql.JSONB: "jsonb",
    Sql.TIMESTAMPTZ: "timestamp with time zone",
}


async def test_the_declared_tables_are_the_migrated_schema(read_db: asyncpg.Pool) -> None:
    async with read_db.acquire() as conn:
        columns = await conn.fetch(
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = $1",
            SCHEMA,
        )
        keys = await conn.fetch(
            "SELECT tc.table_name, array_agg(k.column_name::text ORDER BY k.ordinal_position) AS columns "
            "FROM information_schema.table_constraints tc JOIN information_schema.key_column_usage k "
            "  ON k.constraint_name = tc.constraint_name AND k.table_schema = tc.table_schema "
            "WHERE tc.table_schema = $1 AND tc.constraint_type = 'PRIMARY KEY' GROUP BY tc.table_name",
            SCHEMA,
        )
    migrated = {
        (r["table_name"], r["column_name"]): (r["data_type"], r["is_nullable"] == "YES")
        for r in columns
        if r["table_name"] != "alembic_version"
    }
    declared = {(t.name, c.name): (_DATA_TYPE[c.sql], c.nullable) for t in TABLES for c in t.columns}
    assert sorted(declared.keys() - migrated.keys()) == [], "declared, but no migration makes them"
    assert sorted(migrated.keys() - declared.keys()) == [], "migrated, but not declared"
    differs = {k: (v, migrated[k]) for k, v in declared.items() if migrated[k] != v}
    assert differs == {}, "(declared, migrated) type and nullability differ"
    primary = {r["table_name"]: r["columns"] for r in keys if r["table_name"] != "alembic_version"}
    assert primary == {t.name: [t.key] for t in TABLES}


def test_a_row_is_every_written_column_read_in_order() -> None:
    table = Table[dict[str, int]](
        "t",
        key="a",
        columns=(
            Column("a", Sql.INT8, lambda s: s["a"]),
            Column("b", Sql.INT8, None),  # written by another statement
            Column("c", Sql.INT8, lambda s: s["c"] * 2),
        ),
    )
    assert table.row({"a": 1, "c": 2}) == (1, 4)
    assert Table[int]("one", key="a", columns=(Column("a", Sql.INT8, lambda s: s),)).row(7) == (7,)
