"""Load on one registry endpoint for `tests.bench.registry`: wrk when installed, else processes of raw asyncio
keep-alive connections; the server's and the machine's CPU over the measured window; slices merged."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.bench.common import cpu_seconds


def machine_busy() -> tuple[float, float] | None:
    """(busy, total) jiffies of all cores from /proc/stat."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


@dataclass
class Target:
    label: str
    method: str
    path: str
    body: bytes = b""


@dataclass
class HttpResult:
    target: Target
    requests: int = 0
    seconds: float = 0.0
    p50: float | None = None
    p99: float | None = None
    non_2xx: int = 0
    errors: int = 0
    server_cpu: float | None = None  # share of one core
    machine_cpu: float | None = None  # share of all cores
    generator_cpu: float | None = None  # share of one core, per generator process (Python generator only)
    failure: str = ""
    slices: int = 1

    @property
    def rate(self) -> float | None:
        return self.requests / self.seconds if self.seconds and not self.failure else None


class CpuWindow:
    def __init__(self, pid: int) -> None:
        self.pid = pid

    def __enter__(self) -> CpuWindow:
        self.t0, self.s0, self.m0 = time.monotonic(), cpu_seconds(self.pid), machine_busy()
        return self

    def __exit__(self, *_: object) -> None:
        wall = time.monotonic() - self.t0
        s1, m1 = cpu_seconds(self.pid), machine_busy()
        self.server = (s1 - self.s0) / wall if s1 is not None and self.s0 is not None and wall > 0 else None
        self.machine = ((m1[0] - self.m0[0]) / (m1[1] - self.m0[1])
                        if m1 and self.m0 and m1[1] > self.m0[1] else None)


# -- wrk --------------------------------------------------------------------------------------------------------
_WRK_LUA = """
local f = io.open(os.getenv("BENCH_BODY_FILE"), "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
"""


def _wrk_seconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"cannot read wrk latency {text!r}")
    return float(match.group(1)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[match.group(2)]


def run_wrk(url: str, target: Target, args: argparse.Namespace, duration: float, workdir: Path,
            result: HttpResult | None = None) -> HttpResult:
    result = result or HttpResult(target)
    command = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{max(1, round(duration))}s", "--latency"]
    env = dict(os.environ)
    if target.method == "POST":
        body_file, script = workdir / "body.json", workdir / "post.lua"
        body_file.write_bytes(target.body)
        script.write_text(_WRK_LUA)
        env["BENCH_BODY_FILE"] = str(body_file)
        command += ["-s", str(script)]
    completed = subprocess.run([*command, url + target.path], capture_output=True, text=True, env=env,
                               timeout=duration + 60)
    out = completed.stdout
    if completed.returncode != 0 or "requests in" not in out:
        result.failure = f"wrk failed ({completed.returncode}): {completed.stderr.strip() or out.strip()}"
        return result
    match = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    assert match is not None
    result.requests = int(match.group(1))
    result.seconds = _wrk_seconds(match.group(2) + match.group(3))
    percentiles = dict(re.findall(r"^\s+(50|99)(?:\.0+)?%\s+(\S+)", out, re.MULTILINE))
    result.p50 = _wrk_seconds(percentiles["50"]) if "50" in percentiles else None
    result.p99 = _wrk_seconds(percentiles["99"]) if "99" in percentiles else None
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result.non_2xx = int(non_2xx.group(1)) if non_2xx else 0
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result.errors = sum(int(v) for v in socket_errors.groups()) if socket_errors else 0
    return result


# -- Python load generator: processes of raw asyncio keep-alive connections --------------------------------------
def _request_bytes(host: str, target: Target) -> bytes:
    head = f"{target.method} {target.path} HTTP/1.1\r\nHost: {host}\r\n"
    if target.method == "POST":
        head += f"Content-Type: application/json\r\nContent-Length: {len(target.body)}\r\n"
    return head.encode() + b"\r\n" + target.body


async def _connection(host: str, port: int, request: bytes, measure_from: float, stop_at: float,
                      latencies: list[float], statuses: Counter[int]) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    errors = 0
    try:
        while (started := time.perf_counter()) < stop_at:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            lower = head.lower()
            at = lower.find(b"\r\ncontent-length:")
            if at < 0:
                raise RuntimeError("response without Content-Length")
            length = int(lower[at + 17:lower.index(b"\r\n", at + 2)])
            await reader.readexactly(length)
            if started >= measure_from:
                latencies.append(time.perf_counter() - started)
                statuses[status] += 1
    except (OSError, asyncio.IncompleteReadError, RuntimeError):
        errors += 1
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return errors


def python_worker(host: str, port: int, request: bytes, connections: int, measure_from_wall: float,
                  duration: float) -> tuple[list[float], dict[int, int], int, float]:
    """One generator process: `connections` keep-alive loops; measures from a shared wall-clock instant."""

    async def main() -> tuple[list[float], dict[int, int], int]:
        latencies: list[float] = []
        statuses: Counter[int] = Counter()
        offset = time.perf_counter() - time.time()
        measure_from = measure_from_wall + offset
        stop_at = measure_from + duration
        errors = await asyncio.gather(*(_connection(host, port, request, measure_from, stop_at, latencies, statuses)
                                        for _ in range(connections)))
        return latencies, dict(statuses), sum(errors)

    cpu0 = time.process_time()
    latencies, statuses, errors = asyncio.run(main())
    cpu = time.process_time() - cpu0
    return latencies, statuses, errors, cpu


def run_python(url: str, target: Target, args: argparse.Namespace, duration: float, warmup: float,
               pool: Any, window: Callable[[], CpuWindow]) -> HttpResult:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = _request_bytes(f"{host}:{port}", target)
    per = [args.connections // args.clients + (1 if i < args.connections % args.clients else 0)
           for i in range(args.clients)]
    measure_from = time.time() + 0.5 + warmup
    futures = [pool.apply_async(python_worker, (host, port, request, n, measure_from, duration)) for n in per if n]
    time.sleep(max(0.0, measure_from - time.time()))
    with window() as cpu:
        time.sleep(duration)
        outcomes = [f.get(timeout=duration + 60) for f in futures]
    result = HttpResult(target, seconds=duration, server_cpu=cpu.server, machine_cpu=cpu.machine)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    for lat, stat, errors, gen_cpu in outcomes:
        latencies.extend(lat)
        statuses.update(stat)
        result.errors += errors
        result.generator_cpu = max(result.generator_cpu or 0.0, gen_cpu / (duration + warmup + 0.5))
    result.requests = len(latencies)
    result.non_2xx = sum(n for s, n in statuses.items() if not 200 <= s < 300)
    if latencies:
        latencies.sort()
        result.p50 = statistics.median(latencies)
        result.p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return result




def merge(parts: list[HttpResult]) -> HttpResult:
    """One result from time slices: totals add up; p50 is the request-weighted mean of the slices' p50s and
    p99 the worst slice's (exact when there is one slice)."""
    if len(parts) == 1:
        return parts[0]
    merged = HttpResult(parts[0].target, slices=len(parts))
    merged.requests = sum(p.requests for p in parts)
    merged.seconds = sum(p.seconds for p in parts)
    merged.non_2xx = sum(p.non_2xx for p in parts)
    merged.errors = sum(p.errors for p in parts)
    merged.failure = next((p.failure for p in parts if p.failure), "")
    weighted = [(p.p50, p.requests) for p in parts if p.p50 is not None and p.requests]
    if weighted:
        merged.p50 = sum(v * n for v, n in weighted) / sum(n for _, n in weighted)
    merged.p99 = max((p.p99 for p in parts if p.p99 is not None), default=None)
    for name in ("server_cpu", "machine_cpu"):
        values = [(getattr(p, name), p.seconds) for p in parts if getattr(p, name) is not None]
        if values:
            setattr(merged, name, sum(v * t for v, t in values) / sum(t for _, t in values))
    merged.generator_cpu = max((p.generator_cpu for p in parts if p.generator_cpu is not None), default=None)
    return merged
