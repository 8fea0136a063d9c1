"""`status` of a running stack from live checks: every process's /health, and the database and broker ports.

The state file says what should run and where; only the checks say whether it does. One line per
process and server: name, address, health, pid.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from eventbus.stack.state import StackState, pid_alive


@dataclass(frozen=True)
class Check:
    name: str
    address: str
    healthy: bool
    detail: str
    pid: str = "-"


async def check_stack(state: StackState, timeout: float = 3.0) -> list[Check]:
    """Every server and process of `state`, checked concurrently."""
    servers = []
    if state.database_url:
        servers.append(("postgresql", _host_ports(state.database_url, database=True)))
    if state.bootstrap_servers:
        servers.append(("kafka", _host_ports(state.bootstrap_servers, database=False)))
    async with httpx.AsyncClient(timeout=timeout) as client:
        return list(await asyncio.gather(
            *(_check_server(state, name, hosts, timeout) for name, hosts in servers),
            *(_check_process(state, client, name) for name in state.processes)))


def _host_ports(value: str, *, database: bool) -> list[tuple[str, int]]:
    if database:
        parts = urlsplit(value)
        return [(parts.hostname or "127.0.0.1", parts.port or 5432)]
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
    if not hosts:
        return Check(name, "?", False, "no address recorded", pid)
    if len(failures) == len(hosts):
        return Check(name, address, False, "DOWN: " + "; ".join(failures), pid)
    detail = "ok (port open)" if not failures else f"ok ({len(hosts) - len(failures)} of {len(hosts)} answer)"
    return Check(name, address, True, detail, pid)


async def _check_process(state: StackState, client: httpx.AsyncClient, name: str) -> Check:
    process = state.processes[name]
    pid = "-" if process.pid is None else _pid(process.pid)
    if process.exited is not None:
        pid = f"{process.pid} (exited {process.exited})"
    try:
        response = await client.get(f"{process.url}/health")
    except httpx.HTTPError as exc:
        return Check(name, process.url, False, f"DOWN: {_reason(exc)}", pid)
    if response.status_code == 200:
        return Check(name, process.url, True, "ok", pid)
    return Check(name, process.url, False, f"UNHEALTHY {response.status_code}: {_failing(response)}", pid)


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
    lines = [head, f"  {'NAME':<18}{'ADDRESS':<28}{'PID':<20}HEALTH"]
    lines += [f"  {c.name:<18}{c.address:<28}{c.pid:<20}{c.detail}" for c in checks]
    bad = [c.name for c in checks if not c.healthy]
    if not checks:
        lines.append("nothing to check yet: the stack is starting")
    elif bad:
        lines.append(f"{len(bad)} of {len(checks)} unhealthy: {', '.join(bad)} "
                     f"(logs: {data_dir_shown}/logs/<name>.log; `make restart NAME=<name>` restarts a process)")
    else:
        lines.append(f"all {len(checks)} healthy")
    return lines


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"
