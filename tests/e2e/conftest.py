"""The whole stack as processes (the `make run` code path), on free ports and a temporary data folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.stack import Stack, StackSettings
from tests.waiting import free_port


def stack_settings(data_dir: Path) -> StackSettings:
    return StackSettings(
        database_url=None, kafka_bootstrap_servers=None, stack_data_dir=data_dir,
        embedded_pg_port=free_port(), embedded_kafka_port=free_port(), registry_port=free_port(),
        management_port=free_port(), hiring_port=free_port(), bonus_port=free_port(),
        management_relay_port=free_port(), hiring_relay_port=free_port(), bonus_worker_port=free_port(),
        hiring_worker_port=free_port(), ready_timeout=120)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(stack_settings(tmp_path_factory.mktemp("stack")))
    try:
        running.up(progress=False)
        yield running
    finally:
        running.down()
