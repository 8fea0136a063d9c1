"""The whole stack as processes (the `make run` code path), on free ports and a temporary data folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.stack import Stack, StackSettings
from services.stack.topology import PROCESS_NAMES
from tests.waiting import free_port


def stack_settings(data_dir: Path, start: str = "final") -> StackSettings:
    return StackSettings(
        database_url=None, kafka_bootstrap_servers=None, stack_data_dir=data_dir,
        embedded_pg_port=free_port(), embedded_kafka_port=free_port(),
        ports={name: free_port() for name in PROCESS_NAMES}, ready_timeout=120,
        stack_start=start)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole stack, started in seed 004's final state (every link on events)."""
    running = Stack(stack_settings(tmp_path_factory.mktemp("stack")))
    try:
        running.up(progress=False)
        yield running
    finally:
        running.down()


# -- a stack in the background, as `make run-bg` starts it (it serves restart requests: playbooks use them) --
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from dataclasses import dataclass  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PORT_VARIABLES = ("REGISTRY_PORT", "MANAGEMENT_PORT", "HIRING_PORT", "BONUS_PORT", "MANAGEMENT_RELAY_PORT",
                  "HIRING_RELAY_PORT", "BONUS_WORKER_PORT", "HIRING_WORKER_PORT", "EMBEDDED_PG_PORT",
                  "EMBEDDED_KAFKA_PORT")
#: what would point a command elsewhere than the stack under test
UNSET = ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "REGISTRY_URL", "RELAY_PORT", "WORKER_PORT", "STACK_START",
         *PORT_VARIABLES)


@dataclass
class Background:
    data_dir: Path
    #: an operator's environment: STACK_DATA_DIR and nothing that points elsewhere
    env: dict[str, str]
    ports: dict[str, int]

    def run(self, *argv: str, timeout: float = 300, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", *argv], cwd=REPO, env=self.env | extra, capture_output=True,
                              text=True, timeout=timeout)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name.upper().replace('-', '_') + '_PORT']}"

    @property
    def urls(self) -> dict[str, str]:
        return {n: self.url(n) for n in ("registry", "management", "hiring", "bonus")}

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.ports['EMBEDDED_PG_PORT']}/postgres"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports['EMBEDDED_KAFKA_PORT']}"


def background_stack(data_dir: Path, **env: str) -> Iterator[Background]:
    ports = {name: free_port() for name in PORT_VARIABLES}
    operator = {k: v for k, v in os.environ.items() if k not in UNSET} | {"STACK_DATA_DIR": str(data_dir)}
    stack = Background(data_dir, operator, ports)
    started = stack.run("services.stack", "run-bg", timeout=240, **{k: str(v) for k, v in ports.items()}, **env)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield stack
    finally:
        stack.run("services.stack", "stop", timeout=90)
