"""The state file of a running stack, `<data dir>/run/stack.json`: written by `python -m services.stack run`,
read by `status`, `stop`, `restart` and the operator commands to find the running stack."""

from __future__ import annotations

import json
import os
from pathlib import Path


def state_file(data_dir: Path) -> Path:
    return data_dir / "run" / "stack.json"


def read_state(data_dir: Path) -> dict[str, object] | None:
    """The state of the stack whose control process is alive; None when there is none."""
    try:
        state: dict[str, object] = json.loads(state_file(data_dir).read_text())
    except (OSError, ValueError):
        return None
    pid = state.get("pid")
    if not isinstance(pid, int) or not pid_alive(pid):
        return None
    return state


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def write_state(data_dir: Path, **state: object) -> None:
    path = state_file(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": os.getpid(), **state}))


def remove_state(data_dir: Path) -> None:
    state_file(data_dir).unlink(missing_ok=True)
