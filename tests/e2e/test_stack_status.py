"""`python -m services.stack status` from live checks, against stand-in processes and servers: one line per
process and server with its address, pid and health; exit 1 when any is unhealthy (a 503, a dead process, a
closed server port), 0 when all answer, 3 when no stack runs."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventbus.stack.state import ProcessState, ServerState, write_state
from eventbus.stack.supervisor import ProcessSpec, Supervisor
from services.stack import StackSettings, cmd_status
from tests.waiting import eventually_sync, free_port

pytestmark = pytest.mark.e2e

# a stand-in process: GET /health answers STATUS with a body like the real ones
SERVICE = """
import http.server, json, os, sys
status = int(os.environ["STATUS"])
body = json.dumps({"status": "ok" if status == 200 else "unavailable",
                   "checks": {"database": "ok" if status == 200 else "error: ConnectionRefusedError: db down",
                              "broker": "ok"}}).encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(status); self.send_header("content-length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


@pytest.fixture
def listener() -> Iterator[int]:
    """A port that accepts connections, standing in for PostgreSQL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Supervisor]:
    running = Supervisor(tmp_path / "logs", {})
    yield running
    running.stop_all()


def _start(supervisor: Supervisor, name: str, status: int) -> ProcessState:
    port = free_port()
    process = supervisor.start(ProcessSpec(name, [sys.executable, "-c", SERVICE, str(port)], port,
                                           {"STATUS": str(status)}))
    eventually_sync(lambda: _open(port), what=f"the stand-in {name}")
    return ProcessState(f"http://127.0.0.1:{port}", process.pid)


def _open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _record(data_dir: Path, processes: dict[str, ProcessState], pg_port: int, kafka_port: int) -> None:
    """The state file as the stack's control process writes it (this test process plays that process)."""
    write_state(data_dir, ready=True, ready_in=1.0, database_url=f"postgresql://postgres@127.0.0.1:{pg_port}/postgres",
                bootstrap_servers=f"127.0.0.1:{kafka_port}", registry_url=processes["api"].url,
                processes={n: dataclasses.asdict(p) for n, p in processes.items()},
                servers={"postgresql": dataclasses.asdict(ServerState(f"127.0.0.1:{pg_port}", True, os.getpid()))})


def _lines(capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    return {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}


def test_status_says_which_process_is_unhealthy_and_exits_non_zero(
        tmp_path: Path, supervisor: Supervisor, listener: int, capsys: pytest.CaptureFixture[str]) -> None:
    processes = {"api": _start(supervisor, "api", 200), "worker": _start(supervisor, "worker", 503)}
    closed = free_port()
    _record(tmp_path, processes, listener, closed)
    assert cmd_status(StackSettings(stack_data_dir=tmp_path)) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"stack: {tmp_path} (pid {os.getpid()}), ready in 1.0 s")
    lines = {line.split()[0]: line for line in out if line.startswith("  ")}
    assert lines["api"].split()[1:4] == [processes["api"].url, str(processes["api"].pid), "ok"]
    assert "UNHEALTHY 503: database: error: ConnectionRefusedError: db down" in lines["worker"]
    assert f"127.0.0.1:{listener}" in lines["postgresql"] and "ok (port open)" in lines["postgresql"]
    assert "(embedded)" in lines["postgresql"]
    assert f"DOWN: 127.0.0.1:{closed} connection refused" in lines["kafka"]
    assert out[-1].startswith("2 of 4 unhealthy: kafka, worker")


def test_a_dead_process_is_down_with_its_pid_gone(tmp_path: Path, supervisor: Supervisor, listener: int,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    processes = {"api": _start(supervisor, "api", 200), "worker": _start(supervisor, "worker", 200)}
    _record(tmp_path, processes, listener, listener)
    assert cmd_status(StackSettings(stack_data_dir=tmp_path)) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "all 4 healthy"
    supervisor.signal("worker", signal.SIGKILL)
    eventually_sync(lambda: supervisor.processes["worker"].poll() is not None, what="the worker to die")
    assert cmd_status(StackSettings(stack_data_dir=tmp_path)) == 1
    worker = _lines(capsys)["worker"]
    assert f"{processes['worker'].pid} (gone)" in worker and "DOWN: connection refused" in worker


def test_status_as_json(tmp_path: Path, supervisor: Supervisor, listener: int,
                        capsys: pytest.CaptureFixture[str]) -> None:
    _record(tmp_path, {"api": _start(supervisor, "api", 200)}, listener, listener)
    assert cmd_status(StackSettings(stack_data_dir=tmp_path), as_json=True) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["healthy"] and [c["name"] for c in body["checks"]] == ["postgresql", "kafka", "api"]


def test_no_stack_exits_3_and_says_how_to_start_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd_status(StackSettings(stack_data_dir=tmp_path)) == 3
    out = capsys.readouterr().out
    assert out.startswith("stack: not running: no stack runs in") and "make run-bg" in out
