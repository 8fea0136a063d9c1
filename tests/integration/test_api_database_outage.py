"""A service whose database dies answers 503 with Retry-After and a body saying what is down, writes nothing
half-done, says so once in its log (not once per request), and answers again by itself once it is back."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

import pytest

from eventbus.migrate import upgrade
from eventbus.stack.postgres import EmbeddedPostgres
from services.management.api import create_app
from services.management.settings import ManagementSettings
from tests.integration.api_client import api
from tests.integration.conftest import SCHEMAS
from tests.waiting import eventually

pytestmark = pytest.mark.integration


async def test_database_down_is_503_logged_once_and_the_api_recovers_by_itself(
        private_pg: EmbeddedPostgres, bootstrap: str, caplog: pytest.LogCaptureFixture) -> None:
    with ThreadPoolExecutor(1) as pool:
        url = pool.submit(upgrade, "management", private_pg.url, "0001_before").result()
    settings = ManagementSettings(database_url=private_pg.url, management_database_url=url,
                                  registry_url="http://127.0.0.1:9", kafka_bootstrap_servers=bootstrap,
                                  schemas_dir=SCHEMAS)
    body = {"first_name": "Ada", "last_name": "L", "account_id": "a"}
    async with api(create_app(settings)) as client:
        assert (await client.post("/managers", json=body)).status_code == 201
        await asyncio.to_thread(private_pg.kill)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="eventbus.webapi"):
            answers = [await client.post("/managers", json=body) for _ in range(20)]
        assert {a.status_code for a in answers} == {503}
        assert all(a.headers["retry-after"] and a.json()["dependency"] == "database" for a in answers)
        said = [r for r in caplog.records if "database unavailable" in r.getMessage()]
        assert len(said) == 1  # once, not once per request
        await asyncio.to_thread(private_pg.start)

        async def back() -> bool:
            return (await client.post("/managers", json=body)).status_code == 201

        await eventually(back, timeout=30, interval=0.2, what="the API to write again")
