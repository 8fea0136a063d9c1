"""A process's view of its service's flags: a snapshot kept fresh by `eventbus.control`, plus the
in-transaction read producers use (FOR SHARE: a flag change waits for them, so the cut-over is exact)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from eventbus.flags.spec import FlagError, FlagSpec, FlagValue
from eventbus.flags.store import FlagRow

_IN_TX = text("SELECT name, value::text AS value FROM flags WHERE name = ANY(:names) FOR SHARE")


class LiveFlags:
    def __init__(self, specs: Iterable[FlagSpec]) -> None:
        self.specs = {s.name: s for s in specs}
        self._values: dict[str, FlagValue] = {name: spec.initial() for name, spec in self.specs.items()}
        self.rows: dict[str, FlagRow] = {}
        #: the newest flag change applied (every change has an id; gates compare it with the database's)
        self.version = 0
        self.loaded = False
        self._listeners: list[Callable[[dict[str, FlagValue]], None]] = []

    def spec(self, name: str) -> FlagSpec:
        try:
            return self.specs[name]
        except KeyError:
            raise FlagError(f"unknown flag {name!r}; known: {', '.join(sorted(self.specs))}") from None

    def value(self, name: str) -> Any:
        self.spec(name)
        return self._values[name]

    def values(self) -> dict[str, FlagValue]:
        return dict(self._values)

    def on_change(self, listener: Callable[[dict[str, FlagValue]], None]) -> None:
        self._listeners.append(listener)

    def apply(self, rows: dict[str, FlagRow]) -> dict[str, FlagValue]:
        """Take a fresh read of the table; return the flags whose value changed."""
        changed: dict[str, FlagValue] = {}
        for name, row in rows.items():
            spec = self.specs.get(name)
            if spec is None:
                continue  # another build's flag: not ours to read
            try:
                value = spec.validate(row.value)
            except FlagError:
                continue  # a value this build does not know: keep ours (and report the version we applied)
            if self._values.get(name) != value:
                changed[name] = value
            self._values[name] = value
        self.rows = {n: r for n, r in rows.items() if n in self.specs}
        self.version = max([r.change_id for r in self.rows.values()], default=0)
        self.loaded = True
        if changed:
            for listener in self._listeners:
                listener(changed)
        return changed

    async def in_transaction(self, conn: AsyncConnection, names: Sequence[str]) -> dict[str, FlagValue]:
        """Read `names` inside the caller's transaction, holding FOR SHARE until it commits."""
        for name in names:
            self.spec(name)
        rows = (await conn.execute(_IN_TX, {"names": list(names)})).all()
        found = {row.name: self.specs[row.name].validate(orjson.loads(row.value)) for row in rows}
        return {name: found.get(name, self._values[name]) for name in names}
