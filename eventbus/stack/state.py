"""The state file of a running stack, `<data dir>/run/stack.json`.

Written by the stack's control process (`python -m services.stack run`) when it starts, when it is ready
and whenever a process or server of it exits, is restarted or answers again; removed when it stops. Each
entry also says how the control process keeps it running (`Supervised`: state, uptime, restarts, last
exit, crash-looping, environment overrides). `status`, `stop`, `restart`
and every operator command read it to find the running stack: its control process, the database
server, the brokers, the registry and each process's URL and pid.

A state file whose control process is gone (killed, machine rebooted, pid reused by another program)
is stale and reads as "no stack".
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eventbus.settings import REPO_ROOT

#: the data folder of the stack the operator commands look for (the stack's own setting: STACK_DATA_DIR)
DEFAULT_DATA_DIR = REPO_ROOT / ".data"


def data_dir_from_env(environ: dict[str, str] | None = None) -> Path:
    found = (os.environ if environ is None else environ).get("STACK_DATA_DIR")
    return Path(found) if found else DEFAULT_DATA_DIR


@dataclass(frozen=True, kw_only=True)
class Supervised:
    """What the control process knows of a process or server it keeps running (eventbus.stack.supervision)."""

    #: running, starting (not answered yet since its start), waiting (to be restarted after a backoff),
    #: restarting, crash-looping (no more restarts), exited (automatic restarts are off); None: not supervised
    state: str | None = None
    #: when the current process started (epoch seconds): its uptime
    started_at: float | None = None
    #: how many times the stack started it again since the stack started
    restarts: int = 0
    #: why the previous process ended: "exited 1", "killed by SIGKILL", "health timeout (...)", "stopped for
    #: a restart (operator)", ...; its exit code (negative: the signal) and when (epoch seconds)
    last_exit: str | None = None
    last_exit_code: int | None = None
    last_exit_at: float | None = None
    #: seconds from its last exit until it answered again
    recovered_in: float | None = None
    #: restarted too often (more than N restarts in the window): the stack no longer restarts it
    crash_looping: bool = False
    #: the environment given with `restart NAME --env K=V`, now and earlier, in force for it
    overrides: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProcessState(Supervised):
    url: str
    pid: int | None = None
    #: the exit code when the control process saw it exit, until the process started again answers
    exited: int | None = None


@dataclass(frozen=True)
class ServerState(Supervised):
    """PostgreSQL or the broker: `address` is host:port (the first one of several brokers)."""

    address: str
    embedded: bool
    pid: int | None = None
    #: a node of a replicated PostgreSQL: "primary" or "standby" (None: not replicated)
    role: str | None = None


def _supervised(doc: dict[str, Any]) -> dict[str, Any]:
    """The Supervised fields of a state file entry, leniently (a field of the wrong type is left out)."""
    found: dict[str, Any] = {}
    for name in ("state", "last_exit"):
        if isinstance(doc.get(name), str):
            found[name] = doc[name]
    for name in ("started_at", "last_exit_at", "recovered_in"):
        value = doc.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            found[name] = float(value)
    for name in ("restarts", "last_exit_code"):
        if _int(doc.get(name)) is not None:
            found[name] = doc[name]
    found["crash_looping"] = bool(doc.get("crash_looping"))
    overrides = doc.get("overrides")
    if isinstance(overrides, dict):
        found["overrides"] = {str(k): str(v) for k, v in overrides.items()}
    return found


@dataclass(frozen=True)
class StackState:
    data_dir: Path
    pid: int
    ready: bool = False
    ready_in: float | None = None
    started_at: float | None = None
    database_url: str | None = None
    bootstrap_servers: str | None = None
    registry_url: str | None = None
    processes: dict[str, ProcessState] = field(default_factory=dict)
    servers: dict[str, ServerState] = field(default_factory=dict)

    @property
    def urls(self) -> dict[str, str]:
        return {name: p.url for name, p in self.processes.items()}

    @classmethod
    def from_json(cls, data_dir: Path, doc: dict[str, Any]) -> StackState:
        processes = {str(n): ProcessState(str(p["url"]), _int(p.get("pid")), _int(p.get("exited")), **_supervised(p))
                     for n, p in (doc.get("processes") or {}).items() if isinstance(p, dict) and "url" in p}
        for name, url in (doc.get("urls") or {}).items():  # the form of older state files
            processes.setdefault(str(name), ProcessState(str(url)))
        servers = {str(n): ServerState(str(s["address"]), bool(s.get("embedded")), _int(s.get("pid")),
                                       role=s["role"] if isinstance(s.get("role"), str) else None, **_supervised(s))
                   for n, s in (doc.get("servers") or {}).items() if isinstance(s, dict) and "address" in s}
        return cls(data_dir=data_dir, pid=int(doc["pid"]), ready=bool(doc.get("ready")),
                   ready_in=doc.get("ready_in"), started_at=doc.get("started_at"),
                   database_url=doc.get("database_url"), bootstrap_servers=doc.get("bootstrap_servers"),
                   registry_url=doc.get("registry_url"), processes=processes, servers=servers)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def state_file(data_dir: Path) -> Path:
    return data_dir / "run" / "stack.json"


def read_state(data_dir: Path) -> StackState | None:
    """The state of the stack whose control process is alive; None when there is none (or it is stale)."""
    found = read_state_file(data_dir)
    return found if found is not None and control_alive(found, data_dir) else None


def read_state_file(data_dir: Path) -> StackState | None:
    """What the state file says, alive or not; None when there is no (readable) state file."""
    try:
        doc = json.loads(state_file(data_dir).read_text())
        return StackState.from_json(data_dir, doc)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def control_alive(state: StackState, data_dir: Path) -> bool:
    """Is the control process that wrote `state` still the one running under its pid?"""
    if not pid_alive(state.pid):
        return False
    try:
        recorded = json.loads(state_file(data_dir).read_text()).get("pid_start")
    except (OSError, ValueError, AttributeError):
        recorded = None
    return recorded is None or recorded == process_start(state.pid)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        return True
    return True


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), which tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return int(stat.rsplit(")", 1)[1].split()[19])  # field 22; the name in (...) may hold spaces
    except (IndexError, ValueError):
        return None


def write_state(data_dir: Path, **state: object) -> None:
    """Write the state of the stack this process controls (whole-file replace, readable by this user only:
    an external DATABASE_URL may carry a password)."""
    path = state_file(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"pid": os.getpid(), "pid_start": process_start(os.getpid()), "data_dir": str(data_dir), **state},
                  out, indent=2)
    os.replace(partial, path)


def remove_state(data_dir: Path) -> None:
    state_file(data_dir).unlink(missing_ok=True)
