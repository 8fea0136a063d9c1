"""Restarting one process or embedded server of a running stack, with changed environment (deploying a fix
or a flag).

`request_restart` (the operator's command) writes `<data dir>/restart-request.json`; the stack's `run`
loop (`eventbus.stack.supervision`) sees it, restarts the process and removes the request, or answers with
an error in the same file. Both sides write whole files (write beside, then rename). The environment
given with `--env` stays in force for that process's later restarts (automatic ones included) until
`--unset NAME` or `--clear-env` removes it; the command prints what is in force.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from eventbus.stack.state import read_state_file
from eventbus.stack.supervisor import ProcessSpec, Supervisor

#: the embedded servers a restart request may name, besides the processes
SERVERS = ("postgresql", "kafka")


def restart_file(data_dir: Path) -> Path:
    return data_dir / "restart-request.json"


def write_json(path: Path, body: object) -> None:
    """Readers never see a half-written file: write beside it, then rename over it."""
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(body))
    os.replace(partial, path)


@dataclass(frozen=True)
class RestartRequest:
    name: str
    env: dict[str, str]
    unset: tuple[str, ...] = ()
    clear_env: bool = False
    #: the request as written, answered back with an error
    raw: Mapping[str, Any] | None = None


def take_request(data_dir: Path) -> RestartRequest | None:
    """The pending request; None when there is none, or it was malformed (then answered with an error)."""
    path = restart_file(data_dir)
    try:
        request = json.loads(path.read_text())
        if "error" in request:
            return None  # answered already; the requester removes it
        name = str(request["name"])
        env = {str(k): str(v) for k, v in request.get("env", {}).items()}
        unset = tuple(str(k) for k in request.get("unset", []))
        return RestartRequest(name, env, unset, bool(request.get("clear_env")), request)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, AttributeError, TypeError) as exc:
        print(f"!! refusing a bad restart request ({exc!r})", flush=True)
        write_json(path, {"error": f"bad restart request ({exc!r})"})
        return None


def refuse_request(data_dir: Path, request: RestartRequest, error: str) -> None:
    write_json(restart_file(data_dir), {**(request.raw or {"name": request.name}), "error": error})


def finish_request(data_dir: Path) -> None:
    restart_file(data_dir).unlink(missing_ok=True)


def serve_restart(data_dir: Path, supervisor: Supervisor, reported: set[str] | None = None) -> None:
    """Restart one process of a bare `Supervisor` (no supervision), with changed environment if asked."""
    request = take_request(data_dir)
    if request is None:
        return
    spec = supervisor.specs.get(request.name)
    if spec is None:
        refuse_request(data_dir, request, f"no process {request.name!r}; known: {sorted(supervisor.specs)}")
        return
    print(f"restarting {request.name}" + (f" with {request.env}" if request.env else ""), flush=True)
    supervisor.stop(request.name)
    env = {k: v for k, v in spec.env.items() if k not in request.unset}
    supervisor.start(ProcessSpec(spec.name, spec.argv, spec.port, {**env, **request.env}, spec.health_path))
    if reported is not None:
        reported.discard(request.name)
    finish_request(data_dir)


def request_restart(data_dir: Path, urls: Mapping[str, object], name: str, env: list[str], timeout: float, *,
                    unset: list[str] | None = None, clear_env: bool = False) -> int:
    """Ask the running stack to restart `name` (a process, or the embedded `postgresql` or `kafka`) and wait
    until it answers again; an exit code (0 healthy, 1 not healthy in time or crash-looping, 2 refused)."""
    state = read_state_file(data_dir)
    servers = state.servers if state is not None else {}
    if name in servers and not servers[name].embedded:
        print(f"{name} is not the stack's ({servers[name].address} is external): restart it where it runs",
              file=sys.stderr)
        return 2
    if name not in urls and name not in servers:
        known = [*sorted(urls), *(n for n in SERVERS if n in servers)]
        print(f"no process {name!r}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    pairs = {}
    for item in env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"--env {item!r}: write NAME=VALUE", file=sys.stderr)
            return 2
        pairs[key] = value
    path = restart_file(data_dir)
    asked = time.time()
    write_json(path, {"name": name, "env": pairs, "unset": list(unset or []), "clear_env": clear_env})
    deadline = time.monotonic() + timeout
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
        with contextlib.suppress(OSError, ValueError):
            error = json.loads(path.read_text()).get("error")
            if error:
                path.unlink(missing_ok=True)
                print(error, file=sys.stderr)
                return 2
    if path.exists():
        path.unlink(missing_ok=True)
        print(f"the stack did not take the restart request in {timeout:.0f} s; is its `run` loop alive? "
              f"(see {data_dir / 'logs' / 'stack.log'})", file=sys.stderr)
        return 1
    print(_overrides_line(data_dir, name, pairs))
    while time.monotonic() < deadline:
        answer = _answers(data_dir, urls, name, asked)
        if answer is True:
            print(f"{name} restarted and healthy")
            return 0
        if isinstance(answer, str):
            print(answer, file=sys.stderr)
            return 1
        time.sleep(0.2)
    print(f"{name} is not healthy after the restart; see {data_dir / 'logs' / (name + '.log')} and `make status`",
          file=sys.stderr)
    return 1


def _answers(data_dir: Path, urls: Mapping[str, object], name: str, asked: float) -> bool | str | None:
    """True when `name` (and, for the broker, the processes restarted after it) is back; a message when it
    will not be (crash-looping); None while it may still come."""
    state = read_state_file(data_dir)
    entry = None
    if state is not None:
        entry = state.processes.get(name) or state.servers.get(name)
    if entry is not None and entry.crash_looping:
        return (f"{name} is crash-looping ({entry.last_exit or 'it keeps exiting'}): the stack stopped restarting "
                f"it; see {data_dir / 'logs' / (name + '.log')}, fix it, then restart it again")
    if entry is not None and entry.state is not None and (entry.state != "running" or (entry.started_at or 0) < asked):
        return None  # the stack has not seen the new one answer yet
    if name in urls:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{urls[name]}/health", timeout=2).status_code == 200 or None
        return None
    if state is None or name not in state.servers:
        return None
    host, _, port = state.servers[name].address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            pass
    except (OSError, ValueError):
        return None
    # (the broker is "running" once the topics are declared and the workers restarting, ...)
    if name == "kafka":  # ... which must be back too
        behind = [n for n, p in state.processes.items() if p.state not in (None, "running", "crash-looping", "exited")]
        if behind:
            return None
    return True


def _overrides_line(data_dir: Path, name: str, given: Mapping[str, str]) -> str:
    """The environment overrides in force for `name`: those given now, and those given earlier."""
    state = read_state_file(data_dir)
    entry = None if state is None else (state.processes.get(name) or state.servers.get(name))
    # a stack without supervision (an older one) keeps no record of them: what was given now, then
    in_force = dict(entry.overrides) if entry is not None and entry.state is not None else dict(given)
    if not in_force:
        return f"{name}: no environment overrides in force"
    parts = [f"{k}={v} ({'given now' if k in given else 'given earlier'})" for k, v in sorted(in_force.items())]
    return f"{name}: environment overrides in force: {', '.join(parts)}"
