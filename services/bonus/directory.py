"""Manager details for bonus's answers (COMM-070): asked of management over HTTP through a breaker (before),
or read from bonus's own copy fed by ManagerCreated (after). When management cannot answer, the last known
copy or a stub of the same structure answers instead, marked as such (seed 001): never a 500."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from eventbus.control import SchemaState
from eventbus.flags.provider import Switches
from eventbus.links import Link, LinkUnavailable
from services.bonus.tables import managers


@dataclass(frozen=True)
class ManagerView:
    manager_id: uuid.UUID
    account_id: str | None
    username: str | None
    first_name: str | None
    last_name: str | None
    #: management-api | local | cache (management down: the last copy it gave) | stub (nothing known)
    source: str
    stale: bool = False

    @classmethod
    def stub(cls, manager_id: uuid.UUID, source: str = "stub") -> ManagerView:
        return cls(manager_id, None, None, None, None, source, True)


def _object(response: Any) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class ManagerDirectory:
    def __init__(self, *, link: Link, engine: AsyncEngine, flags: Switches, schema: SchemaState,
                 cache_size: int = 10_000) -> None:
        self.link, self.engine, self.flags, self.schema = link, engine, flags, schema
        self.cache_size = cache_size
        self._cache: OrderedDict[uuid.UUID, ManagerView] = OrderedDict()

    async def find(self, manager_id: uuid.UUID) -> ManagerView | None:
        """The manager's details, or None when the source of truth says there is no such manager."""
        if self.flags.value("bonus.manager_source") == "local":
            return await self._local(manager_id)
        return await self._remote(manager_id)

    def _shown(self, view: ManagerView) -> ManagerView:
        if self.flags.value("bonus.manager_fields") == "username":
            return replace(view, first_name=None, last_name=None)
        return view

    async def _remote(self, manager_id: uuid.UUID) -> ManagerView | None:
        try:
            response = await self.link.request("GET", f"/managers/{manager_id}")
        except LinkUnavailable:
            self.link.fell_back()
            cached = self._cache.get(manager_id)
            return replace(cached, source="cache", stale=True) if cached else ManagerView.stub(manager_id)
        if response.status_code == 404:
            return None
        body = _object(response) if response.status_code == 200 else None
        if body is None:  # an answer that is not a manager: as if management were down
            self.link.fell_back()
            cached = self._cache.get(manager_id)
            return replace(cached, source="cache", stale=True) if cached else ManagerView.stub(manager_id)
        view = self._shown(ManagerView(manager_id, _text(body.get("account_id")), _text(body.get("username")),
                                       _text(body.get("first_name")), _text(body.get("last_name")),
                                       "management-api"))
        self._cache[manager_id] = view
        self._cache.move_to_end(manager_id)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return view

    async def _local(self, manager_id: uuid.UUID) -> ManagerView | None:
        schema = self.schema.ready()
        if not schema.has_table("managers"):
            return ManagerView.stub(manager_id, "local-missing")
        names = self.flags.value("bonus.manager_fields") != "username"
        wanted = [c for c in (["first_name", "last_name"] if names else []) + ["username"]
                  if schema.has("managers", c)]
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(managers.c.account_id, *[managers.c[c] for c in wanted])
                                      .where(managers.c.id == manager_id))).first()
        if row is None:
            return None
        found = row._mapping
        return ManagerView(manager_id, row.account_id, found.get("username"), found.get("first_name"),
                           found.get("last_name"), "local")
