"""Put a test database in one stage of seed 004: its switches (flags), as a playbook step would set them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from eventbus.db import plain_url
from eventbus.flags import store
from services.flags import BY_NAME, of_service


async def set_flags(url: str, values: Mapping[str, Any]) -> None:
    conn = await asyncpg.connect(plain_url(url))
    try:
        services = {name.split(".", 1)[0] for name in values}
        for service in services:
            await store.ensure_defaults(conn, of_service(service))
        for name, value in values.items():
            await store.set_flag(conn, BY_NAME[name], value, by="test", reason="test stage")
    finally:
        await conn.close()


async def fetch(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(plain_url(url))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def count(url: str, sql: str, *args: object) -> int:
    return int((await fetch(url, sql, *args))[0][0])
