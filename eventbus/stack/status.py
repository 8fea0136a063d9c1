"""`status` of a running stack from live checks: every process's /health, and the database and broker ports.

The state file says what should run and where; only the checks say whether it does. One line per
process and server: name, address, pid, health, then what the stack's supervision recorded: uptime,
restarts and the last exit (a crash-looping one is unhealthy whatever its port says).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace

import httpx

from eventbus.db import hosts_of
from eventbus.stack.state import StackState, Supervised, pid_alive


@dataclass(frozen=True)
class Check:
    name: str
    address: str
    healthy: bool
    detail: str
    pid: str = "-"
    #: from the state file (None when the stack does not supervise it, e.g. an external server)
    state: str | None = None
    uptime: float | None = None
    restarts: int | None = None
    last_exit: str | None = None
    last_exit_at: float | None = None
    recovered_in: float | None = None
    crash_looping: bool = False
    overrides: dict[str, str] | None = None


def _with_life(check: Check, entry: Supervised | None) -> Check:
    """The check with what the supervision recorded for the process or server; a crash-looping one is
    unhealthy whatever its port says."""
    if entry is None or entry.state is None:
        return check
    uptime = None
    if entry.started_at is not None and entry.state in ("running", "starting"):
        uptime = round(max(0.0, time.time() - entry.started_at), 1)
    check = replace(check, state=entry.state, uptime=uptime, restarts=entry.restarts, last_exit=entry.last_exit,
                    last_exit_at=entry.last_exit_at, recovered_in=entry.recovered_in,
                    crash_looping=entry.crash_looping, overrides=dict(entry.overrides))
    if entry.crash_looping:
        check = replace(check, healthy=False,
                        detail=f"CRASH-LOOPING ({entry.last_exit}; not restarted any more); now {check.detail}")
    return check


async def check_stack(state: StackState, timeout: float = 3.0) -> list[Check]:
    """Every server and process of `state`, checked concurrently."""
    servers = []
    if state.database_url:
        servers.append(("postgresql", _host_ports(state.database_url, database=True)))
    # the nodes of a replicated PostgreSQL, each with its role
    servers += [(name, _host_ports(server.address, database=False)) for name, server in state.servers.items()
                if server.role is not None]
    if state.bootstrap_servers:
        servers.append(("kafka", _host_ports(state.bootstrap_servers, database=False)))
    async with httpx.AsyncClient(timeout=timeout) as client:
        return list(await asyncio.gather(
            *(_check_server(state, name, hosts, timeout) for name, hosts in servers),
            *(_check_process(state, client, name) for name in state.processes)))


def _host_ports(value: str, *, database: bool) -> list[tuple[str, int]]:
    if database:
        return hosts_of(value)
    found = []
    for server in value.split(","):
        host, _, port = server.strip().rpartition(":")
        if host and port.isdigit():
            found.append((host, int(port)))
    return found


async def _check_server(state: StackState, name: str, hosts: list[tuple[str, int]], timeout: float) -> Check:
    async def one(host: str, port: int) -> str | None:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except (OSError, TimeoutError) as exc:
            return f"{host}:{port} {_reason(exc)}"
        writer.close()
        return None

    failures = [f for f in await asyncio.gather(*(one(h, p) for h, p in hosts)) if f]
    server = state.servers.get(name)
    pid = "-" if server is None or server.pid is None else _pid(server.pid)
    if server is not None:
        pid += " (embedded)" if server.embedded else " (external)"
    address = ",".join(f"{h}:{p}" for h, p in hosts)
    if server is not None and server.state in ("waiting", "restarting", "crash-looping", "exited") and \
            server.pid is not None:
        pid = f"{server.pid} ({_exit_word(server.last_exit)})"
    if not hosts:
        return _with_life(Check(name, "?", False, "no address recorded", pid), server)
    if len(failures) == len(hosts):
        return _with_life(Check(name, address, False, "DOWN: " + "; ".join(failures), pid), server)
    detail = "ok (port open)" if not failures else f"ok ({len(hosts) - len(failures)} of {len(hosts)} answer)"
    if server is not None and server.role is not None:
        detail = f"ok ({server.role})"
    return _with_life(Check(name, address, True, detail, pid), server)


async def _check_process(state: StackState, client: httpx.AsyncClient, name: str) -> Check:
    process = state.processes[name]
    pid = "-" if process.pid is None else _pid(process.pid)
    if process.exited is not None:
        # until the process started again answers: the last one's exit
        pid = (f"{process.pid} (restarting; exited {process.exited})" if process.state == "starting"
               else f"{process.pid} (exited {process.exited})")
    try:
        response = await client.get(f"{process.url}/health")
    except httpx.HTTPError as exc:
        return _with_life(Check(name, process.url, False, f"DOWN: {_reason(exc)}", pid), process)
    if response.status_code == 200:
        return _with_life(Check(name, process.url, True, "ok", pid), process)
    return _with_life(Check(name, process.url, False, f"UNHEALTHY {response.status_code}: {_failing(response)}",
                            pid), process)


def _exit_word(last_exit: str | None) -> str:
    return "down" if not last_exit else last_exit.split(" (")[0]


def _pid(pid: int) -> str:
    return str(pid) if pid_alive(pid) else f"{pid} (gone)"


def _failing(response: httpx.Response) -> str:
    """The checks that failed, from a /health body such as {"checks": {"database": "error: ..."}}."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:120] or "(no body)"
    checks = body.get("checks") if isinstance(body, dict) else None
    if isinstance(checks, dict):
        bad = [f"{k}: {v}" for k, v in checks.items() if v != "ok"]
        if bad:
            return "; ".join(bad)[:160]
    return str(body)[:160]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, httpx.ConnectError | ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return "no answer (timeout)"
    return f"{type(exc).__name__}: {exc}"[:120]


def render(state: StackState, checks: list[Check], data_dir_shown: str) -> list[str]:
    head = f"stack: {data_dir_shown} (pid {state.pid})"
    if not state.ready:
        head += ", still starting"
    elif state.ready_in is not None:
        head += f", ready in {state.ready_in} s"
    if state.started_at:
        head += f", up {_duration(time.time() - state.started_at)}"
    wide = max([28, *(len(c.address) + 2 for c in checks)])
    lines = [head, f"  {'NAME':<18}{'ADDRESS':<{wide}}{'PID':<20}{'HEALTH':<24}  {'UPTIME':<9}{'RESTARTS':<10}"
                   "LAST EXIT"]
    lines += [f"  {c.name:<18}{c.address:<{wide}}{c.pid:<20}{c.detail:<24}  {_uptime(c):<9}{_restarts(c):<10}"
              f"{_last_exit(c)}".rstrip() for c in checks]
    bad = [c.name for c in checks if not c.healthy]
    looping = [c for c in checks if c.crash_looping]
    if not checks:
        lines.append("nothing to check yet: the stack is starting")
    elif bad:
        lines.append(f"{len(bad)} of {len(checks)} unhealthy: {', '.join(bad)} "
                     f"(logs: {data_dir_shown}/logs/<name>.log; `make restart NAME=<name>` restarts a process)")
    else:
        lines.append(f"all {len(checks)} healthy")
    for c in looping:
        lines.append(f"{c.name} is crash-looping: the stack stopped restarting it (last: {c.last_exit}). Fix it, then "
                     f"`make restart NAME={c.name}`" + (f" (overrides in force: "
                                                        f"{', '.join(f'{k}={v}' for k, v in c.overrides.items())}; "
                                                        "ARGS=\"--unset K\" removes one)" if c.overrides else ""))
    return lines


def _uptime(c: Check) -> str:
    if c.state is None:
        return "-"
    return _duration(c.uptime) if c.uptime is not None else "down"


def _restarts(c: Check) -> str:
    return "-" if c.restarts is None else str(c.restarts)


def _last_exit(c: Check) -> str:
    if not c.last_exit:
        return "-"
    when = f", {_duration(time.time() - c.last_exit_at)} ago" if c.last_exit_at else ""
    back = f"; back in {c.recovered_in:.1f} s" if c.recovered_in is not None and not c.crash_looping else ""
    return f"{c.last_exit}{when}{back}"


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"
