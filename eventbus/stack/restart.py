"""Restarting one process of a running stack, with changed environment (deploying a fix or a flag).

`request_restart` (the operator's command) writes `<data dir>/restart-request.json`; the stack's `run`
loop sees it and calls `serve_restart`, which restarts the process and removes the request, or answers
with an error in the same file. Both sides write whole files (write beside, then rename).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from eventbus.stack.supervisor import ProcessSpec, Supervisor


def restart_file(data_dir: Path) -> Path:
    return data_dir / "restart-request.json"


def write_json(path: Path, body: object) -> None:
    """Readers never see a half-written file: write beside it, then rename over it."""
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(body))
    os.replace(partial, path)


def serve_restart(data_dir: Path, supervisor: Supervisor, reported: set[str]) -> None:
    """Restart one process, with changed environment if asked (deploying a fix or a flag)."""
    path = restart_file(data_dir)
    try:
        request = json.loads(path.read_text())
        name, env = request["name"], {str(k): str(v) for k, v in request.get("env", {}).items()}
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        print(f"!! refusing a bad restart request ({exc!r})", flush=True)
        write_json(path, {"error": f"bad restart request ({exc!r})"})
        return
    spec = supervisor.specs.get(name)
    if spec is None:
        write_json(path, {**request, "error": f"no process {name!r}; known: {sorted(supervisor.specs)}"})
        return
    print(f"restarting {name}" + (f" with {env}" if env else ""), flush=True)
    supervisor.stop(name)
    supervisor.start(ProcessSpec(spec.name, spec.argv, spec.port, {**spec.env, **env}, spec.health_path))
    reported.discard(name)
    path.unlink(missing_ok=True)


def request_restart(data_dir: Path, urls: Mapping[str, object], name: str, env: list[str], timeout: float) -> int:
    """Ask the running stack to restart `name` and wait until it is healthy; an exit code."""
    if name not in urls:
        print(f"no process {name!r}; known: {', '.join(sorted(urls))}", file=sys.stderr)
        return 2
    pairs = {}
    for item in env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"--env {item!r}: write NAME=VALUE", file=sys.stderr)
            return 2
        pairs[key] = value
    path = restart_file(data_dir)
    write_json(path, {"name": name, "env": pairs})
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
    url = f"{urls[name]}/health"
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                print(f"{name} restarted and healthy")
                return 0
        time.sleep(0.2)
    print(f"{name} is not healthy after the restart; see {data_dir / 'logs' / (name + '.log')}", file=sys.stderr)
    return 1
