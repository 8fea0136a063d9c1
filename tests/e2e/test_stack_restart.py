"""`python -m services.stack restart NAME --env K=V` against a running stack's control loop: the process is
replaced with the new environment; wrong names, bad variables and a stopped stack are refused."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from eventbus.stack.restart import restart_file, serve_restart
from eventbus.stack.state import write_state
from eventbus.stack.supervisor import ProcessSpec, Supervisor
from services.stack import Stack, StackSettings, cmd_restart
from tests.waiting import eventually_sync, free_port

pytestmark = pytest.mark.e2e

# a stand-in service: /health answers 200 with its FLAG variable
SERVICE = """
import http.server, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ.get("FLAG", "").encode()
        self.send_response(200); self.send_header("content-length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def _flag(url: str) -> str | None:
    try:
        return httpx.get(f"{url}/health", timeout=1).text
    except httpx.HTTPError:
        return None


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[StackSettings, Stack, str]]:
    settings = StackSettings(stack_data_dir=tmp_path, ready_timeout=20)
    port = free_port()
    stack = Stack(settings, supervisor=Supervisor(tmp_path / "logs", {}))
    assert stack.supervisor is not None
    stack.supervisor.start(ProcessSpec("svc", [sys.executable, "-c", SERVICE, str(port)], port, {"FLAG": "old"}))
    url = f"http://127.0.0.1:{port}"
    eventually_sync(lambda: _flag(url) == "old", what="the stand-in service")
    write_state(settings.stack_data_dir, ready=True, urls={"svc": url})  # this process plays the stack's control loop
    yield settings, stack, url
    stack.supervisor.stop_all()


def test_restart_replaces_the_process_with_the_new_environment(running: tuple[StackSettings, Stack, str]) -> None:
    settings, stack, url = running
    assert stack.supervisor is not None
    old = stack.supervisor.processes["svc"]
    with ThreadPoolExecutor(1) as pool:
        result = pool.submit(cmd_restart, settings, "svc", ["FLAG=fixed"])
        eventually_sync(lambda: restart_file(settings.stack_data_dir).exists(), what="the restart request")
        serve_restart(settings.stack_data_dir, stack.supervisor, set())  # what the `run` loop does on a request
        assert result.result(30) == 0
    assert _flag(url) == "fixed" and old.poll() is not None
    assert stack.supervisor.processes["svc"].pid != old.pid


@pytest.mark.parametrize(("name", "env", "code"), [("nope", [], 2), ("svc", ["NO_EQUALS_SIGN"], 2)])
def test_restart_refuses_an_unknown_process_or_a_bad_variable(running: tuple[StackSettings, Stack, str],
                                                              capsys: pytest.CaptureFixture[str], name: str,
                                                              env: list[str], code: int) -> None:
    settings, _, url = running
    assert cmd_restart(settings, name, env) == code
    assert ("known: svc" if name == "nope" else "write NAME=VALUE") in capsys.readouterr().err
    assert not restart_file(settings.stack_data_dir).exists() and _flag(url) == "old"


def test_a_bad_request_is_answered_with_an_error_and_changes_nothing(
        running: tuple[StackSettings, Stack, str]) -> None:
    settings, stack, url = running
    restart_file(settings.stack_data_dir).write_text("{half a reque")
    serve_restart(settings.stack_data_dir, stack.supervisor, set())
    assert "bad restart request" in json.loads(restart_file(settings.stack_data_dir).read_text())["error"]
    assert _flag(url) == "old"


def test_a_request_nobody_takes_times_out_and_is_withdrawn(running: tuple[StackSettings, Stack, str],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    settings, _, url = running
    quick = settings.model_copy(update={"ready_timeout": 0.5})
    assert cmd_restart(quick, "svc", []) == 1  # no control loop serves the request here
    assert "did not take the restart request" in capsys.readouterr().err
    assert not restart_file(settings.stack_data_dir).exists() and _flag(url) == "old"


def test_restart_without_a_running_stack_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd_restart(StackSettings(stack_data_dir=tmp_path), "bonus-worker", []) == 1
    assert "make run-bg" in capsys.readouterr().err
