"""A column's life across staged migrations, declared once beside the column (SQLAlchemy `info`).

The table definitions in `services/*/tables.py` hold every column a table ever has; `added_by`, `dropped_by`
and `nullable_from` name the Alembic revisions that change it. `expected_metadata(metadata, applied)` is the
schema the database must have once exactly the `applied` revisions ran: the drift test compares it with the
migrated database at every stage, and the code asks the live schema (`eventbus.control.SchemaState`) which
columns exist now, so one build serves every intermediate state.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Column, Index, MetaData, PrimaryKeyConstraint, Table


def lifecycle(*, added_by: str | None = None, dropped_by: str | None = None,
              nullable_from: str | None = None) -> dict[str, Any]:
    """`info` for a Column or a Table: the revisions that add it, drop it, or make it nullable."""
    info: dict[str, Any] = {}
    for key, value in (("added_by", added_by), ("dropped_by", dropped_by), ("nullable_from", nullable_from)):
        if value:
            info[key] = value
    return info


def table_exists(table: Table, applied: Collection[str]) -> bool:
    added, dropped = table.info.get("added_by"), table.info.get("dropped_by")
    return (added is None or added in applied) and (dropped is None or dropped not in applied)


def column_exists(column: Column[Any], applied: Collection[str]) -> bool:
    added, dropped = column.info.get("added_by"), column.info.get("dropped_by")
    return (added is None or added in applied) and (dropped is None or dropped not in applied)


def expected_metadata(metadata: MetaData, applied: Collection[str]) -> MetaData:
    """A copy of `metadata` as the database should be once exactly `applied` revisions ran."""
    expected = MetaData()
    for table in metadata.sorted_tables:
        if not table_exists(table, applied):
            continue
        columns = []
        for column in table.columns:
            if not column_exists(column, applied):
                continue
            copy = column._copy()
            if column.info.get("nullable_from") in applied:
                copy.nullable = True
            columns.append(copy)
        constraints = [c._copy() for c in list(table.constraints)  # type: ignore[attr-defined]
                       if not isinstance(c, PrimaryKeyConstraint)
                       and all(column_exists(col, applied) for col in getattr(c, "columns", ()))]
        copy_table = Table(table.name, expected, *columns, *constraints, info=dict(table.info))
        for index in table.indexes:
            if all(column_exists(col, applied) for col in index.columns):
                Index(index.name, *[copy_table.c[col.name] for col in index.columns], unique=index.unique)
    return expected
