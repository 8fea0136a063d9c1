"""Start service processes, wait for their /health, stop them all with nothing left behind.

Each child runs in its own session (process group), so stopping it also stops anything it forked. Keeping
them running (restarts, backoff, crash loops) is `eventbus.stack.supervision`'s job.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: list[str]
    port: int
    env: Mapping[str, str] = field(default_factory=dict)
    health_path: str = "/health"

    def health_url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{self.health_path}"


class StartupError(RuntimeError):
    pass


def python_module(module: str) -> list[str]:
    return [sys.executable, "-m", module]


class Supervisor:
    def __init__(self, log_dir: Path, base_env: Mapping[str, str]) -> None:
        self.log_dir = log_dir
        self.base_env = dict(base_env)
        self.specs: dict[str, ProcessSpec] = {}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        #: when each process was last started (epoch seconds)
        self.started_at: dict[str, float] = {}

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def start(self, spec: ProcessSpec) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.specs[spec.name] = spec
        with self.log_path(spec.name).open("ab") as log:
            process = subprocess.Popen(
                spec.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **self.base_env, **spec.env}, start_new_session=True)
        self.processes[spec.name] = process
        self.started_at[spec.name] = time.time()
        return process

    def restart(self, name: str) -> subprocess.Popen[bytes]:
        self.stop(name)
        return self.start(self.specs[name])

    def log_tail(self, name: str, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path(name).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def wait_healthy(self, names: Iterable[str], timeout: float) -> dict[str, float]:
        """Poll each /health until 200; return seconds to healthy per name. A child that exits fails fast."""
        pending = list(names)
        started = time.monotonic()
        ready: dict[str, float] = {}
        with httpx.Client(timeout=2.0) as client:
            while pending:
                for name in list(pending):
                    process = self.processes[name]
                    if process.poll() is not None:
                        raise StartupError(f"{name} exited with code {process.returncode}; last lines of "
                                           f"{self.log_path(name)}:\n{self.log_tail(name)}")
                    try:
                        if client.get(self.specs[name].health_url()).status_code == 200:
                            ready[name] = time.monotonic() - started
                            pending.remove(name)
                    except httpx.HTTPError:
                        pass
                if pending and time.monotonic() - started > timeout:
                    details = "\n".join(f"--- {n} ({self.log_path(n)}):\n{self.log_tail(n, 10)}" for n in pending)
                    raise StartupError(f"not healthy after {timeout:.0f}s: {', '.join(pending)}\n{details}")
                if pending:
                    time.sleep(0.1)
        return ready

    def exited(self) -> dict[str, int]:
        return {n: p.returncode for n, p in self.processes.items() if p.poll() is not None}

    def signal(self, name: str, sig: int) -> None:
        process = self.processes[name]
        if process.poll() is None:
            os.killpg(process.pid, sig)

    def stop(self, name: str, timeout: float = 10.0) -> None:
        process = self.processes.get(name)
        if process is None:
            return
        _terminate_group(process, timeout)

    def stop_all(self, timeout: float = 10.0) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            _terminate_group(process, timeout)


def _terminate_group(process: subprocess.Popen[bytes], timeout: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout)
    with contextlib.suppress(ProcessLookupError):  # whatever is left in the group, including grandchildren
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
