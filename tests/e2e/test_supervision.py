"""`Supervision` (what `make run` does after "ready") against stand-in processes: real children that exit, stop
answering, answer 503 or are held with SIGSTOP, with a quick policy so each case takes about a second.

What restarts a process: an exit, or health checks refused or timed out `health_failures` times in a row.
What does not: a 503 (a dependency is down), a process held by SIGSTOP. Restarts back off exponentially and stop
at the crash-loop limit until an operator's restart (with fixed environment) clears it."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from eventbus.stack.supervision import RestartPolicy, ServiceUnit, Supervision
from eventbus.stack.supervisor import ProcessSpec, Supervisor
from tests.waiting import eventually, free_port

pytestmark = pytest.mark.e2e

# a stand-in service. /health answers STATUS; SIGUSR1: it stops answering (accepts, never replies); SIGUSR2: it
# closes its listening socket (connection refused, process alive); EXIT_UNLESS_FIXED: exits at once with that code
# unless FIXED is set (a broken environment)
SERVICE = """
import http.server, os, signal, socketserver, sys, threading, time
if os.environ.get("EXIT_UNLESS_FIXED") and not os.environ.get("FIXED"):
    sys.exit(int(os.environ["EXIT_UNLESS_FIXED"]))
status = int(os.environ.get("STATUS", "200"))
hung = threading.Event()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if hung.is_set():
            time.sleep(3600)
        self.send_response(status); self.send_header("content-length", "2"); self.end_headers()
        self.wfile.write(b"{}")
    def log_message(self, *a): pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
server = S(("127.0.0.1", int(sys.argv[1])), H)
signal.signal(signal.SIGUSR1, lambda *_: hung.set())
def close(*_):
    threading.Thread(target=lambda: (server.shutdown(), server.server_close())).start()
signal.signal(signal.SIGUSR2, close)
server.serve_forever()
while True:
    time.sleep(3600)
"""

QUICK = RestartPolicy(backoff_initial=0.1, backoff_max=0.4, crash_loop_restarts=3, crash_loop_window=60,
                      health_interval=0.2, health_timeout=0.5, health_failures=3, start_timeout=20)


class Watched:
    def __init__(self, supervision: Supervision, supervisor: Supervisor, said: list[str], url: str) -> None:
        self.supervision, self.supervisor, self.said, self.url = supervision, supervisor, said, url

    @property
    def record(self):  # type: ignore[no-untyped-def]
        return self.supervision.records["svc"]

    def pid(self) -> int:
        return self.supervisor.processes["svc"].pid

    async def answers(self, status: int = 200) -> bool:
        try:
            async with httpx.AsyncClient(timeout=1) as client:
                return (await client.get(f"{self.url}/health")).status_code == status
        except httpx.HTTPError:
            return False

    def saw(self, pattern: str) -> list[str]:
        return [line for line in self.said if re.search(pattern, line)]


@asynccontextmanager
async def watching(tmp_path: Path, policy: RestartPolicy = QUICK, **env: str) -> AsyncIterator[Watched]:
    """A stand-in started (and answering) like the stack starts its processes, then supervised."""
    port = free_port()
    supervisor = Supervisor(tmp_path / "logs", {})
    spec = ProcessSpec("svc", [sys.executable, "-c", SERVICE, str(port)], port, env)
    supervisor.start(spec)
    said: list[str] = []
    supervision = Supervision([ServiceUnit(supervisor, spec)], policy, say=said.append, tick=0.05)
    watched = Watched(supervision, supervisor, said, f"http://127.0.0.1:{port}")
    if not env.get("EXIT_UNLESS_FIXED"):
        await eventually(lambda: watched.answers(int(env.get("STATUS", "200"))), what="the stand-in")
    stop = False
    running = asyncio.create_task(supervision.run(lambda: stop))
    try:
        yield watched
    finally:
        stop = True
        await running
        supervisor.stop_all()


async def _restarted(watched: Watched, old_pid: int, restarts: int) -> bool:
    return watched.pid() != old_pid and watched.record.restarts == restarts and watched.record.state == "running" \
        and await watched.answers()


async def test_an_exit_is_restarted_and_recorded(tmp_path: Path) -> None:
    async with watching(tmp_path) as w:
        old = w.pid()
        os.kill(old, signal.SIGKILL)
        await eventually(lambda: _restarted(w, old, 1), what="the restart")
        assert (w.record.last_exit, w.record.last_exit_code, w.record.exited) == ("killed by SIGKILL", -9, None)
        assert w.record.recovered_in is not None and w.record.recovered_in > QUICK.backoff_initial
        assert w.saw(r"^!! svc killed by SIGKILL .*restarting it in 0.1 s$")


@pytest.mark.parametrize(("fault", "how"), [(signal.SIGUSR1, "no answer \\(timeout\\)"),
                                            (signal.SIGUSR2, "connection refused")])
async def test_a_process_that_stops_answering_is_killed_and_restarted(tmp_path: Path, fault: int, how: str) -> None:
    async with watching(tmp_path) as w:
        old = w.pid()
        os.kill(old, fault)  # alive, but its health check is refused or never answered
        await eventually(lambda: _restarted(w, old, 1), timeout=30, what="the restart")
        assert re.fullmatch(f"health timeout \\(3 checks in a row: {how}\\)", w.record.last_exit or ""), w.record
        assert w.saw(f"^!! svc health timeout \\(3 checks in a row: {how}\\): killing it \\(pid {old}\\)$")


async def test_a_503_is_an_answer_not_a_reason_to_restart(tmp_path: Path) -> None:
    async with watching(tmp_path, STATUS="503") as w:
        old = w.pid()
        await eventually(lambda: _probes(w, 3 * QUICK.health_failures), timeout=30, what="many health checks")
        assert (w.pid(), w.record.restarts, w.record.state, w.record.failures) == (old, 0, "running", 0)


async def _probes(w: Watched, n: int) -> bool:
    return w.record.probes >= n


async def test_a_process_held_by_sigstop_is_left_alone(tmp_path: Path) -> None:
    async with watching(tmp_path) as w:
        old = w.pid()
        os.kill(old, signal.SIGSTOP)
        try:
            await eventually(lambda: _said(w, "left alone while held"), timeout=30, what="the supervision to notice")
            assert (w.pid(), w.record.restarts) == (old, 0)
        finally:
            os.kill(old, signal.SIGCONT)
        await eventually(w.answers, what="the process to answer again")
        assert (w.pid(), w.record.restarts, w.record.state) == (old, 0, "running")


async def _said(w: Watched, text: str) -> bool:
    return bool(w.saw(re.escape(text)))


async def test_restarts_back_off_then_stop_at_the_crash_loop_limit_until_the_operator_fixes_it(
        tmp_path: Path) -> None:
    async with watching(tmp_path) as w:
        # the operator restarts it with a broken environment: it exits at once, every time
        await w.supervision.restart("svc", env={"EXIT_UNLESS_FIXED": "3"})
        await eventually(lambda: _state(w, "crash-looping"), timeout=30, what="crash-looping")
        delays = [float(m) for line in w.said for m in re.findall(r"restarting it in ([0-9.]+) s$", line)]
        assert delays == [0.1, 0.2, 0.4], w.said  # doubling, capped at backoff_max
        assert (w.record.restarts, w.record.crash_looping, w.record.last_exit) == (4, True, "exited 3")
        assert w.saw(r"svc is CRASH-LOOPING \(3 restarts in the last 60 s\): not restarting it")
        dead = w.pid()
        assert w.supervisor.processes["svc"].poll() == 3
        # the loop goes on for several times the longest backoff (0.4 s) and restarts nothing
        steps = w.supervision.steps
        await eventually(lambda: _steps(w, steps + 40), what="the loop to go on")
        assert (w.pid(), w.record.restarts, w.record.state) == (dead, 4, "crash-looping")  # not restarted again
        # the fix: the operator's restart with the environment repaired clears crash-looping and the backoff
        await w.supervision.restart("svc", env={"FIXED": "1"})
        await eventually(lambda: _restarted(w, dead, 5), what="the fixed process")
        assert (w.record.crash_looping, w.record.attempt, w.record.overrides) == (
            False, 0, {"EXIT_UNLESS_FIXED": "3", "FIXED": "1"})


async def _state(w: Watched, state: str) -> bool:
    return bool(w.record.state == state)


async def _steps(w: Watched, n: int) -> bool:
    return w.supervision.steps >= n
