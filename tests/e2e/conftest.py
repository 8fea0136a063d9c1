"""The whole stack as processes (the `make run` code path), on free ports and a temporary data folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.stack import Stack, StackSettings
from services.stack.topology import PROCESS_NAMES
from tests.waiting import free_port


def stack_settings(data_dir: Path) -> StackSettings:
    return StackSettings(
        database_url=None, kafka_bootstrap_servers=None, stack_data_dir=data_dir,
        embedded_pg_port=free_port(), embedded_kafka_port=free_port(),
        ports={name: free_port() for name in PROCESS_NAMES}, ready_timeout=120)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(stack_settings(tmp_path_factory.mktemp("stack")))
    try:
        running.up(progress=False)
        yield running
    finally:
        running.down()
