"""The whole stack started in the background on other ports than the defaults (the README's `*_PORT`,
EMBEDDED_PG_PORT and EMBEDDED_KAFKA_PORT variables): `status` checks it live, the operator commands find it
with nothing but STACK_DATA_DIR, a killed worker shows as down until it is restarted, and a stopped stack
is reported as not running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventbus.stack.state import read_state
from tests.waiting import eventually_sync, free_port

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
PORTS = ("REGISTRY_PORT", "MANAGEMENT_PORT", "HIRING_PORT", "BONUS_PORT", "MANAGEMENT_RELAY_PORT", "HIRING_RELAY_PORT",
         "BONUS_WORKER_PORT", "HIRING_WORKER_PORT", "EMBEDDED_PG_PORT", "EMBEDDED_KAFKA_PORT")
#: what would point a command elsewhere than the stack
UNSET = ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "REGISTRY_URL", "RELAY_PORT", "WORKER_PORT", *PORTS)


def _run(env: dict[str, str], *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *argv], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str], dict[str, int]]]:
    """(data folder, the operator's environment: STACK_DATA_DIR only, the ports the stack was given)."""
    data = tmp_path_factory.mktemp("operator-stack")
    ports = {name: free_port() for name in PORTS}
    operator = {k: v for k, v in os.environ.items() if k not in UNSET} | {"STACK_DATA_DIR": str(data)}
    # no automatic restarts: a killed worker must stay down until the operator restarts it
    started = _run(operator | {k: str(v) for k, v in ports.items()} | {"STACK_AUTO_RESTART": "0"},
                   "services.stack", "run-bg", timeout=240)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield data, operator, ports
    finally:
        _run(operator, "services.stack", "stop", timeout=90)


def test_status_checks_every_process_and_server_where_the_stack_put_them(
        started: tuple[Path, dict[str, str], dict[str, int]]) -> None:
    _, operator, ports = started
    status = _run(operator, "services.stack", "status")
    assert status.returncode == 0, status.stdout
    lines = {line.split()[0]: line for line in status.stdout.splitlines() if line.startswith("  ")}
    assert f"127.0.0.1:{ports['EMBEDDED_PG_PORT']}" in lines["postgresql"]
    assert f"127.0.0.1:{ports['EMBEDDED_KAFKA_PORT']}" in lines["kafka"]
    for name in ("registry", "management", "hiring", "bonus", "management-relay", "hiring-relay", "bonus-worker",
                 "hiring-worker"):
        port = ports[name.upper().replace("-", "_") + "_PORT"]
        assert lines[name].split()[1] == f"http://127.0.0.1:{port}" and lines[name].split()[3] == "ok", lines[name]
    assert status.stdout.splitlines()[-1] == "all 10 healthy"


def test_operator_commands_find_the_stack_and_say_so_first(
        started: tuple[Path, dict[str, str], dict[str, int]]) -> None:
    data, operator, ports = started
    pid = read_state(data).pid  # type: ignore[union-attr]
    stack = f"stack: {data} (pid {pid})"
    servers = f"database 127.0.0.1:{ports['EMBEDDED_PG_PORT']}, kafka 127.0.0.1:{ports['EMBEDDED_KAFKA_PORT']}"
    listed = _run(operator, "eventbus.consumer.replay", "list", "--parking")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0] == f"{stack}, {servers}"
    assert "dlq.bonus.hiring.task-results" in listed.stdout and "parking.bonus.hiring.task-results" in listed.stdout
    dry = _run(operator, "eventbus.consumer.replay", "replay", "--group", "bonus", "--dry-run")
    assert dry.returncode == 0 and dry.stdout.splitlines()[0] == f"{stack}, {servers}", dry.stderr
    outbox = _run(operator, "eventbus.outbox.cli", "status")
    assert outbox.returncode == 0 and outbox.stdout.splitlines()[0] == f"{stack}, database 127.0.0.1:" \
        f"{ports['EMBEDDED_PG_PORT']}", outbox.stdout + outbox.stderr
    registered = _run(operator | {"REGISTRY_TOKEN": "dev-registry-token"}, "registry.cli", "register", "TaskCreated")
    assert registered.returncode == 0, registered.stdout + registered.stderr
    assert registered.stdout.splitlines()[0] == f"{stack}, registry http://127.0.0.1:{ports['REGISTRY_PORT']}"


def test_a_killed_worker_shows_down_until_restarted(started: tuple[Path, dict[str, str], dict[str, int]]) -> None:
    data, operator, _ = started
    state = read_state(data)
    assert state is not None
    os.kill(state.processes["bonus-worker"].pid, signal.SIGKILL)  # type: ignore[arg-type]
    eventually_sync(lambda: (s := read_state(data)) is not None and s.processes["bonus-worker"].exited is not None,
                    what="the stack to record the worker's exit")
    status = _run(operator, "services.stack", "status", "--json")
    assert status.returncode == 1
    checks = {c["name"]: c for c in json.loads(status.stdout)["checks"]}
    assert not checks["bonus-worker"]["healthy"] and "exited" in checks["bonus-worker"]["pid"]
    assert all(c["healthy"] for name, c in checks.items() if name != "bonus-worker")
    restarted = _run(operator, "services.stack", "restart", "bonus-worker", timeout=150)
    assert restarted.returncode == 0, restarted.stderr
    eventually_sync(lambda: _run(operator, "services.stack", "status").returncode == 0, timeout=30,
                    what="status to be healthy again")
    after = read_state(data)
    assert after is not None and after.processes["bonus-worker"].pid != state.processes["bonus-worker"].pid


def test_a_stopped_stack_is_not_running(started: tuple[Path, dict[str, str], dict[str, int]]) -> None:
    _, operator, _ = started
    assert _run(operator, "services.stack", "stop", timeout=90).returncode == 0
    status = _run(operator, "services.stack", "status")
    assert status.returncode == 3 and "not running" in status.stdout and "make run-bg" in status.stdout
    listed = _run(operator, "eventbus.consumer.replay", "list")
    assert listed.returncode == 2 and "make run-bg" in listed.stderr
