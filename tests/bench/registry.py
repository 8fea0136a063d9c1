"""Schema registry benchmarks: local validations/s per library, and the registry service's HTTP throughput.

    python -m tests.bench.registry [--quick] [--duration S] [--only local|http] ...   (or `make bench-registry`)

1. Local validation, single-threaded (= per core), on real envelopes from `schemas/*/v*.examples.json`:
   jsonschema (Draft202012Validator with its format checker), fastjsonschema, jsonschema-rs, our
   `eventbus.schemas.validation.CompiledSchema` and the producer hot path `SchemaClient.validate`
   (disk fallback, compiled once). Every library is also checked against every example in `schemas/`
   (a fast validator that lets bad events through is no use) and probed for draft 2020-12 keywords.
   The invalid path with full error reports (what a 422 body and a DLQ reason carry) is timed once.
2. The registry as a process (`python -m registry`, migrated database on EmbeddedPostgres or DATABASE_URL),
   driven by wrk when it is installed, else by Python load-generator processes: GET /schemas/types (a
   constant answer through FastAPI's routing: the floor), GET /schemas/ids/{id} and POST /validate.
   `--against HEAD` also runs `registry/` as of a git revision, the two servers taking turns in short
   slices, for before/after ratios that background load affects alike.

Ratios in the summary come from this run only; other work on the machine moves the absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import functools
import importlib.util
import json
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas"
CASES = (("TaskCompleted", 0), ("ManagerCreated", 1))
LOCAL_GOAL = 100_000  # validations/s per core on the chosen validator
LOOKUP_GOAL = 3_000  # GET /schemas/ids/{id} req/s on this 2-core machine
KARAPACE, CONFLUENT = 630, 6_000  # published lookups/s on 2 CPUs: references, not measured here


def say(message: str) -> None:
    print(f"[bench-registry] {message}", flush=True)


def fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}/s"


def fmt_ratio(value: float | None, base: float | None) -> str:
    return "-" if not value or not base else f"{value / base:.2f}x"


def fmt_ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f} ms"


def table(headers: list[str], rows: list[list[str]], left: int = 1) -> str:
    """Text table; the first `left` columns are left-aligned, the rest right-aligned."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)), line]
    for row in rows:
        pairs = enumerate(zip(row, widths, strict=True))
        out.append("  ".join(str(c).ljust(w) if i < left else str(c).rjust(w) for i, (c, w) in pairs))
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------------------------
# 1. local validation
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Case:
    event: str
    version: int
    schema: dict[str, Any]
    valid: list[dict[str, Any]]
    invalid: list[dict[str, Any]]

    @property
    def label(self) -> str:
        return f"{self.event} v{self.version}"

    @property
    def envelope(self) -> dict[str, Any]:
        return dict(self.valid[0]["instance"])


def load_case(event: str, version: int) -> Case:
    schema = json.loads((SCHEMAS / event / f"v{version}.json").read_text())
    examples = json.loads((SCHEMAS / event / f"v{version}.examples.json").read_text())
    return Case(event, version, schema, examples.get("valid", []), examples.get("invalid", []))


def all_cases() -> list[Case]:
    cases = []
    for path in sorted(SCHEMAS.glob("*/v*.json")):
        match = re.fullmatch(r"v(\d+)\.json", path.name)
        if match and path.with_name(f"v{match.group(1)}.examples.json").is_file():
            cases.append(load_case(path.parent.name, int(match.group(1))))
    return cases


@dataclass
class Candidate:
    """One way to validate: `compile(schema)` -> a callable that returns normally on valid instances."""

    name: str
    compile: Callable[[dict[str, Any]], Callable[[Any], Any]]
    #: callable(compiled, instance) -> bool, for conformance checks
    is_valid: Callable[[Any, Any], bool]
    #: callable(compiled, instance) -> list of errors (full report), or None when the library has none
    errors: Callable[[Any, Any], list[Any]] | None
    note: str = ""
    is_async: bool = False
    #: per case label: validations/s, or None with a reason in `failures`
    rates: dict[str, float | None] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    conformance: tuple[int, int] = (0, 0)
    mismatches: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)


def candidates() -> list[Candidate]:
    import fastjsonschema
    import jsonschema
    import jsonschema_rs

    from eventbus.schemas.client import SchemaClient
    from eventbus.schemas.validation import CompiledSchema

    def js_compile(schema: dict[str, Any]) -> Callable[[Any], Any]:
        validator = jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
        return validator.is_valid

    def js_errors(compiled: Any, instance: Any) -> list[Any]:
        return list(compiled.__self__.iter_errors(instance))

    def fjs_valid(compiled: Any, instance: Any) -> bool:
        try:
            compiled(instance)
        except fastjsonschema.JsonSchemaValueException:
            return False
        return True

    def fjs_first_error(compiled: Any, instance: Any) -> list[Any]:
        try:
            compiled(instance)
        except fastjsonschema.JsonSchemaValueException as exc:
            return [exc]
        return []

    def rs_compile(schema: dict[str, Any]) -> Callable[[Any], Any]:
        return jsonschema_rs.validator_for(schema, validate_formats=True).is_valid  # type: ignore[no-any-return]

    def rs_errors(compiled: Any, instance: Any) -> list[Any]:
        return list(compiled.__self__.iter_errors(instance))

    def ours_compile(schema: dict[str, Any]) -> Callable[[Any], Any]:
        return CompiledSchema("bench", 0, schema).is_valid

    def ours_errors(compiled: Any, instance: Any) -> list[Any]:
        return compiled.__self__.issues(instance)  # type: ignore[no-any-return]

    def client_compile(schema: dict[str, Any]) -> Callable[[Any], Any]:
        """`await SchemaClient.validate(envelope)`: what the outbox writer calls per event (disk fallback)."""
        client = SchemaClient(None, fallback_dir=SCHEMAS)
        return client.validate

    def client_valid(compiled: Any, instance: Any) -> bool:
        _, issues = asyncio.run(compiled(instance))
        return not issues

    def client_errors(compiled: Any, instance: Any) -> list[Any]:
        _, issues = asyncio.run(compiled(instance))
        return issues  # type: ignore[no-any-return]

    js_formats = sorted(jsonschema.Draft202012Validator.FORMAT_CHECKER.checkers)
    return [
        Candidate("jsonschema Draft202012Validator", js_compile, lambda c, i: bool(c(i)), js_errors,
                  note=f"format checker knows: {', '.join(js_formats)}"),
        Candidate("fastjsonschema", fastjsonschema.compile, fjs_valid, fjs_first_error,
                  note="drafts 04/06/07/2019-09 only; a 2020-12 $schema falls back to its 2019-09 generator; "
                       "stops at the first error"),
        Candidate("jsonschema-rs validator_for", rs_compile, lambda c, i: bool(c(i)), rs_errors),
        Candidate("registry CompiledSchema.is_valid", ours_compile, lambda c, i: bool(c(i)), ours_errors,
                  note="the registry service's /validate"),
        Candidate("registry SchemaClient.validate", client_compile, client_valid, client_errors,
                  note="producer hot path (outbox writer): async, schema picked by the envelope's own "
                       "event_name/event_version, cache hit + CompiledSchema.is_valid", is_async=True),
    ]


def best_rate(fn: Callable[[Any], Any], arg: Any, seconds: float, rounds: int) -> float:
    """Calls per second of `fn(arg)`, best of `rounds` batches of about `seconds / rounds` each."""
    n, elapsed = 16, 0.0
    while True:
        started = time.perf_counter()
        for _ in range(n):
            fn(arg)
        elapsed = time.perf_counter() - started
        if elapsed >= 0.02:
            break
        n *= 4
    batch = max(1, int(n * (seconds / rounds) / elapsed))
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(batch):
            fn(arg)
        best = max(best, batch / (time.perf_counter() - started))
    return best


async def async_rate(fn: Callable[[Any], Any], arg: Any, seconds: float, rounds: int) -> float:
    """`best_rate` for a coroutine function, on the running loop."""

    async def run(n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            await fn(arg)
        return time.perf_counter() - started

    n = 16
    while (elapsed := await run(n)) < 0.02:
        n *= 4
    batch = max(1, int(n * (seconds / rounds) / elapsed))
    return max([batch / await run(batch) for _ in range(rounds)])


def best_rate_async(fn: Callable[[Any], Any], arg: Any, seconds: float, rounds: int) -> float:
    return asyncio.run(async_rate(fn, arg, seconds, rounds))


#: draft 2020-12 keywords (and one 2019-09 one) with an instance each must reject
PROBES: list[tuple[str, dict[str, Any], Any]] = [
    ("prefixItems", {"type": "array", "prefixItems": [{"type": "integer"}]}, ["x"]),
    ("$defs + $ref", {"$defs": {"n": {"type": "integer"}}, "properties": {"a": {"$ref": "#/$defs/n"}}}, {"a": "x"}),
    ("dependentRequired", {"dependentRequired": {"a": ["b"]}}, {"a": 1}),
    ("unevaluatedProperties", {"properties": {"a": {}}, "unevaluatedProperties": False}, {"a": 1, "b": 2}),
    ("format uuid", {"type": "string", "format": "uuid"}, "not-a-uuid"),
    ("format date-time", {"type": "string", "format": "date-time"}, "yesterday"),
]


def probe(candidate: Candidate) -> list[str]:
    missed = []
    for keyword, schema, bad in PROBES:
        try:
            compiled = candidate.compile({"$schema": "https://json-schema.org/draft/2020-12/schema", **schema})
            if candidate.is_async:
                continue  # same validator as CompiledSchema; needs files on disk
            if candidate.is_valid(compiled, bad):
                missed.append(keyword)
        except Exception as exc:
            missed.append(f"{keyword} ({type(exc).__name__})")
    return missed


def conformance(candidate: Candidate, cases: list[Case]) -> None:
    agreed = total = 0
    for case in cases:
        try:
            compiled = candidate.compile(case.schema)
        except Exception as exc:
            candidate.mismatches.append(f"{case.label}: does not compile ({type(exc).__name__}: {exc})")
            total += len(case.valid) + len(case.invalid)
            continue
        for expected, examples in ((True, case.valid), (False, case.invalid)):
            for example in examples:
                total += 1
                try:
                    got = candidate.is_valid(compiled, example["instance"])
                except Exception as exc:
                    candidate.mismatches.append(f"{case.label}: {example.get('why')}: raised {type(exc).__name__}")
                    continue
                if got == expected:
                    agreed += 1
                else:
                    verdict = "accepted" if got else "rejected"
                    candidate.mismatches.append(f"{case.label}: {verdict} \"{example.get('why')}\"")
    candidate.conformance = (agreed, total)


def formats_used(cases: list[Case]) -> set[str]:
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("format"), str):
                found.add(node["format"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for case in cases:
        walk(case.schema)
    return found


def multi_error_envelope(case: Case) -> dict[str, Any]:
    """A ManagerCreated v1 envelope with five independent errors."""
    envelope = copy.deepcopy(case.envelope)
    envelope["meta"]["event_id"] = "not-a-uuid"
    envelope["meta"]["produced_at"] = "yesterday"
    envelope["payload"]["first_name"] = ""
    envelope["payload"]["username"] = "Not Valid!"
    envelope["payload"].pop("account_id", None)
    return envelope


@dataclass
class InvalidResult:
    name: str
    rate: float | None
    errors: int | None
    note: str = ""


def run_local(args: argparse.Namespace) -> tuple[list[Candidate], list[Case], list[InvalidResult], Case]:
    seconds, rounds = args.local_seconds, args.rounds
    cases = [load_case(e, v) for e, v in CASES]
    every = all_cases()
    found = candidates()
    examples = sum(len(c.valid) + len(c.invalid) for c in every)
    say(f"local: {len(found)} candidates x {len(cases)} envelopes, best of {rounds} x {seconds / rounds:.2f} s "
        f"each, single thread; conformance over {examples} examples in {len(every)} schemas")
    for candidate in found:
        if not candidate.is_async:  # the client picks the schema by the envelope's own identity: not comparable
            conformance(candidate, every)
            candidate.unsupported = probe(candidate)
        for case in cases:
            try:
                compiled = candidate.compile(case.schema)
                envelope = case.envelope
                if not candidate.is_valid(compiled, envelope):
                    raise AssertionError("rejects the valid example envelope")
                measure = best_rate_async if candidate.is_async else best_rate
                candidate.rates[case.label] = measure(compiled, envelope, seconds, rounds)
            except Exception as exc:
                candidate.rates[case.label] = None
                candidate.failures[case.label] = f"{type(exc).__name__}: {exc}"
            say(f"  {candidate.name:34} {case.label:18} {fmt_rate(candidate.rates[case.label]):>14}"
                + (f"  FAILED {candidate.failures[case.label]}" if case.label in candidate.failures else ""))
        agreed, total = candidate.conformance
        if total:
            say(f"  {candidate.name:34} examples agreed {agreed}/{total}"
                + (f"; 2020-12 probes missed: {', '.join(candidate.unsupported)}" if candidate.unsupported else ""))
        for mismatch in candidate.mismatches[:4]:
            say(f"      mismatch: {mismatch}")

    target = cases[-1]
    bad = multi_error_envelope(target)
    say(f"local: invalid path, {target.label} envelope with several errors, full error reports")
    invalid: list[InvalidResult] = []
    for candidate in found:
        if candidate.errors is None or candidate.is_async:
            continue
        compiled = candidate.compile(target.schema)
        errors_of = candidate.errors
        try:
            reported = len(errors_of(compiled, bad))
            rate = best_rate(functools.partial(errors_of, compiled), bad, seconds, rounds)
            note = "first error only" if candidate.name == "fastjsonschema" else "iter_errors, all errors"
            if candidate.name.startswith("registry"):
                note = "issues(): all errors as JSON pointers"
            invalid.append(InvalidResult(candidate.name, rate, reported, note))
        except Exception as exc:
            invalid.append(InvalidResult(candidate.name, None, None, f"{type(exc).__name__}: {exc}"))
        say(f"  {candidate.name:34} {fmt_rate(invalid[-1].rate):>14}  {invalid[-1].errors} error(s) reported")
    rs = next(c for c in found if c.name.startswith("jsonschema-rs"))
    rs_compiled = rs.compile(target.schema)
    invalid.append(InvalidResult("jsonschema-rs is_valid (reject only)", best_rate(rs_compiled, bad, seconds, rounds),
                                 0, "what the hot path pays before building the report"))
    return found, cases, invalid, target


# ---------------------------------------------------------------------------------------------------------------
# 2. the registry over HTTP
# ---------------------------------------------------------------------------------------------------------------
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def machine_busy() -> tuple[float, float] | None:
    """(busy, total) jiffies of all cores from /proc/stat."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def server_stack() -> str:
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"1 uvicorn process, loop={loop}, http={http}"


class Postgres:
    """EmbeddedPostgres in the work dir, or the server DATABASE_URL points at; bench databases are dropped."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.pg: Any = None
        self.server_url = ""
        self.databases: list[str] = []

    def start(self) -> str:
        if os.environ.get("DATABASE_URL"):
            self.server_url = os.environ["DATABASE_URL"]
            say("http: PostgreSQL from DATABASE_URL (bench databases are created and dropped)")
        else:
            from eventbus.stack.postgres import EmbeddedPostgres

            self.pg = EmbeddedPostgres(self.workdir / "pg", free_port())
            say(f"http: starting EmbeddedPostgres on port {self.pg.port} in {self.workdir}")
            self.server_url = self.pg.start()
        return self.server_url

    def migrated_database(self) -> str:
        from eventbus.migrate import upgrade

        name = f"bench_registry_{uuid.uuid4().hex[:8]}"
        self.databases.append(name)
        say(f"http: migrating {name} (eventbus.migrate.upgrade('registry'))")
        return upgrade("registry", self.server_url, database=name)

    def stop(self) -> None:
        if self.pg is not None:
            self.pg.stop(mode="immediate")
        elif self.server_url and self.databases:
            with contextlib.suppress(Exception):
                asyncio.run(self._drop())

    async def _drop(self) -> None:
        import asyncpg

        from eventbus.db import plain_url, with_database

        conn = await asyncpg.connect(plain_url(with_database(self.server_url, "postgres")), timeout=10)
        try:
            for name in self.databases:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        finally:
            await conn.close()


class Registry:
    """`python -m registry` on a free port against its own migrated database. `cwd` is where `registry` is
    imported from (the repository, or an exported older revision for --against)."""

    def __init__(self, label: str, postgres: Postgres, workdir: Path, cwd: Path = REPO) -> None:
        self.label = label
        self.postgres = postgres
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.log = workdir / f"registry-{re.sub(r'[^A-Za-z0-9_.-]', '_', label)}.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> str:
        db_url = self.postgres.migrated_database()
        port = free_port()
        env = {**os.environ, "DATABASE_URL": self.postgres.server_url, "REGISTRY_DATABASE_URL": db_url,
               "REGISTRY_PORT": str(port), "REGISTRY_TOKEN": uuid.uuid4().hex, "LOG_LEVEL": "WARNING",
               "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}
        with self.log.open("wb") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "registry"], env=env, cwd=self.cwd,
                                            stdout=out, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{port}"
        say(f"http: started `python -m registry` [{self.label}] (pid {self.process.pid}) on {self.url}; "
            "waiting for /health")
        self._wait_healthy()
        return self.url

    def _wait_healthy(self, timeout: float = 60) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"the registry exited with {self.process.returncode}:\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"the registry was not healthy within {timeout}s:\n{self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def export_revision(ref: str, into: Path) -> Path:
    """`registry/` as of git `ref`, in a folder of its own (eventbus etc. stay the working tree's)."""
    import io
    import tarfile

    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", ref, "registry"],
                             capture_output=True, check=False)
    if archive.returncode != 0:
        raise SystemExit(f"--against {ref}: git archive failed: {archive.stderr.decode().strip()}")
    into.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


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


@dataclass
class HttpRun:
    generator: str
    stack: str
    servers: list[str]
    #: per server label, the results in target order
    results: dict[str, list[HttpResult]]
    client_rate: float | None = None
    client_fetches: int | None = None


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


def client_against_registry(url: str, args: argparse.Namespace) -> tuple[float, int]:
    """SchemaClient with the live registry: the hot path must not call HTTP per event."""
    from eventbus.schemas.client import SchemaClient

    case = load_case(*CASES[-1])
    client = SchemaClient(url, fallback_dir=None)

    async def main() -> float:
        try:
            await client.validate(case.envelope)  # the one fetch
            return await async_rate(client.validate, case.envelope, args.local_seconds, args.rounds)
        finally:
            await client.aclose()

    rate = asyncio.run(main())
    return rate, client.fetches


def targets_of(registry: Registry, catalog: bool) -> list[Target]:
    import httpx

    event, version = CASES[-1]
    envelope = load_case(event, version).envelope
    schema_id = httpx.get(f"{registry.url}/catalog/{event}/{version}").raise_for_status().json()["id"]
    check = httpx.post(f"{registry.url}/validate", json=envelope)
    if check.status_code != 200 or not check.json().get("valid"):
        raise RuntimeError(f"POST /validate refused the example envelope: {check.status_code} {check.text}")
    targets = [Target("GET /schemas/types (floor)", "GET", "/schemas/types"),
               Target("GET /schemas/ids/{id}", "GET", f"/schemas/ids/{schema_id}"),
               Target(f"POST /validate ({event} v{version})", "POST", "/validate", json.dumps(envelope).encode())]
    if catalog:
        targets.append(Target(f"GET /catalog/{event}/{version}", "GET", f"/catalog/{event}/{version}"))
    return targets


def run_http(args: argparse.Namespace) -> HttpRun:
    generator = args.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "python"
    if generator == "wrk" and not shutil.which("wrk"):
        raise SystemExit("--generator wrk: wrk is not installed (apt-get install wrk), use --generator python")
    stack = server_stack()
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp:
        workdir = Path(tmp)
        postgres = Postgres(workdir)
        registries = [Registry("working tree", postgres, workdir)]
        if args.against:
            registries.append(Registry(args.against, postgres, workdir,
                                       cwd=export_revision(args.against, workdir / "against")))
        try:
            postgres.start()
            for registry in registries:
                registry.start()
            targets = {r.label: targets_of(r, args.catalog) for r in registries}
            say(f"http: load generator {generator}, {args.connections} connections"
                + (f", {args.threads} wrk thread(s)" if generator == "wrk" else f", {args.clients} process(es)")
                + f"; {args.duration:g} s per endpoint after {args.warmup:g} s warm-up; server {stack}"
                + ("; servers take turns per endpoint" if len(registries) > 1 else ""))
            results: dict[str, list[HttpResult]] = {r.label: [] for r in registries}
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(args.clients) if generator == "python" else contextlib.nullcontext() as pool:
                def measure(registry: Registry, target: Target, seconds: float, warmup: float) -> HttpResult:
                    if generator == "python":
                        pid = registry.pid
                        return run_python(registry.url, target, args, seconds, warmup, pool,
                                          lambda: CpuWindow(pid))
                    if warmup > 0:
                        run_wrk(registry.url, target, args, warmup, workdir)
                    with CpuWindow(registry.pid) as cpu:
                        result = run_wrk(registry.url, target, args, seconds, workdir)
                    result.server_cpu, result.machine_cpu = cpu.server, cpu.machine
                    return result

                # with --against, the servers take turns in slices so that background load hits both alike
                slices = max(1, round(args.duration / args.slice)) if len(registries) > 1 else 1
                for index in range(len(targets[registries[0].label])):
                    parts: dict[str, list[HttpResult]] = {r.label: [] for r in registries}
                    for turn in range(slices):
                        for registry in registries if turn % 2 == 0 else registries[::-1]:
                            target = targets[registry.label][index]
                            parts[registry.label].append(
                                measure(registry, target, args.duration / slices, args.warmup if turn == 0 else 0))
                    for registry in registries:
                        result = merge(parts[registry.label])
                        results[registry.label].append(result)
                        say(f"  [{registry.label}] {result.target.label:34} {fmt_rate(result.rate):>10}  "
                            f"p50 {fmt_ms(result.p50)}  p99 {fmt_ms(result.p99)}  non-2xx {result.non_2xx}  "
                            f"errors {result.errors}  server CPU {_pct(result.server_cpu)}"
                            + (f"  FAILED {result.failure}" if result.failure else ""))
            say("http: SchemaClient.validate against the live registry (fetch once, then local)")
            client_rate, fetches = client_against_registry(registries[0].url, args)
            say(f"  {fmt_rate(client_rate)} after {fetches} HTTP fetch(es)")
            for registry in registries:
                if registry.process is not None and registry.process.poll() is not None:
                    raise RuntimeError(f"the registry [{registry.label}] died during the run:\n{registry.tail()}")
            return HttpRun(generator, stack, [r.label for r in registries], results, client_rate, fetches)
        except BaseException:
            for registry in registries:
                say(f"http: registry [{registry.label}] log tail:\n{registry.tail()}")
            raise
        finally:
            for registry in registries:
                registry.stop()
            postgres.stop()


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


# ---------------------------------------------------------------------------------------------------------------
# summary
# ---------------------------------------------------------------------------------------------------------------
def summary(local: tuple[list[Candidate], list[Case], list[InvalidResult], Case] | None,
            http: HttpRun | None, args: argparse.Namespace) -> bool:
    ok = True
    print()
    print("=" * 100)
    print("SUMMARY (schema registry) — ratios are between numbers measured in this run")
    print("=" * 100)
    if local is not None:
        found, cases, invalid, target = local
        base = found[0]
        print(f"\nLocal validation, valid envelope, single thread = per core (best of {args.rounds} rounds, "
              f"{args.local_seconds:g} s per measurement):")
        headers = ["validator"]
        for case in cases:
            headers += [case.label, "vs jsonschema"]
        headers += ["examples agreed", "2020-12 probes missed"]
        rows = []
        for candidate in found:
            row = [candidate.name]
            for case in cases:
                rate = candidate.rates.get(case.label)
                row += [fmt_rate(rate) if rate is not None else "FAILED", fmt_ratio(rate, base.rates.get(case.label))]
            agreed, total = candidate.conformance
            if total:
                row += [f"{agreed}/{total}", ", ".join(candidate.unsupported) or "none"]
            else:
                row += ["as above", "as above"]
            rows.append(row)
        print(table(headers, rows))
        for candidate in found:
            for label, failure in candidate.failures.items():
                print(f"  ! {candidate.name} on {label}: {failure}")
            if candidate.mismatches:
                print(f"  ! {candidate.name} disagrees with the examples: {'; '.join(candidate.mismatches[:3])}"
                      + (f" (+{len(candidate.mismatches) - 3} more)" if len(candidate.mismatches) > 3 else ""))
            if candidate.note:
                print(f"  - {candidate.name}: {candidate.note}")
        hot = found[-1]
        slowest = min((r for r in hot.rates.values() if r is not None), default=None)
        passed = slowest is not None and slowest >= LOCAL_GOAL
        ok &= passed
        print(f"\nHot path: SchemaClient.validate -> CompiledSchema.is_valid -> jsonschema-rs: "
              f"{fmt_rate(slowest)} on the slower envelope; goal >= {LOCAL_GOAL:,}/s per core: "
              f"{'PASS' if passed else 'MISS'} ({fmt_ratio(slowest, LOCAL_GOAL)} of goal)")
        print(f"\nInvalid path, {target.label} envelope with several errors (once; 422 bodies and DLQ reasons):")
        js_full = next((r.rate for r in invalid if r.name.startswith("jsonschema Draft")), None)
        print(table(["validator", "reports/s", "vs jsonschema", "errors reported", "what"],
                    [[r.name, fmt_rate(r.rate), fmt_ratio(r.rate, js_full), str(r.errors), r.note] for r in invalid]))
        import jsonschema

        missing = sorted(formats_used(all_cases()) - set(jsonschema.Draft202012Validator.FORMAT_CHECKER.checkers))
        if missing:
            print(f"  - jsonschema leaves format(s) {', '.join(missing)} unchecked (used by our schemas): its format "
                  "checker needs optional packages for them (date-time: rfc3339-validator), so its numbers are "
                  "for less work than the others do")
    if http is not None:
        print(f"\nRegistry over HTTP: generator {http.generator}, {args.connections} connections, "
              f"{args.duration:g} s per endpoint; server {http.stack}; {os.cpu_count()} CPUs shared with the "
              "generator (and whatever else runs)")
        current = http.servers[0]
        against = http.servers[1] if len(http.servers) > 1 else None
        headers = ["server", "endpoint", "req/s", "p50", "p99", "bad", "server CPU", "machine CPU", "vs floor"]
        if against:
            headers.append(f"vs {against}")
        headers += [f"vs goal {LOOKUP_GOAL:,}", f"vs Karapace {KARAPACE}", f"vs Confluent {CONFLUENT:,}"]
        rows = []
        for server in http.servers:
            results = http.results[server]
            floor = results[0].rate if results else None
            for i, r in enumerate(results):
                row = [server, r.target.label, fmt_rate(r.rate), fmt_ms(r.p50), fmt_ms(r.p99),
                       str(r.non_2xx + r.errors), _pct(r.server_cpu), _pct(r.machine_cpu), fmt_ratio(r.rate, floor)]
                if against:
                    row.append(fmt_ratio(r.rate, http.results[against][i].rate) if server == current else "")
                row += [fmt_ratio(r.rate, LOOKUP_GOAL), fmt_ratio(r.rate, KARAPACE), fmt_ratio(r.rate, CONFLUENT)]
                rows.append(row)
        print(table(headers, rows, left=2))
        every = [r for results in http.results.values() for r in results]
        if http.generator == "python":
            gen = max((r.generator_cpu or 0.0 for r in every), default=0.0)
            print(f"  - Python generator: {args.clients} process(es), busiest at {gen * 100:.0f}% of a core"
                  + (" — it may be the bottleneck; install wrk for a cheaper generator" if gen > 0.9 else ""))
        print("  - floor = GET /schemas/types, a constant answer through FastAPI's routing (no database, no cache)")
        print("  - Karapace / Confluent figures are published references for 2 CPUs, not measured here")
        if against:
            slices = max((r.slices for r in every), default=1)
            print(f"  - {against}: registry/ exported from git {against!r} (eventbus/ and the venv are the working "
                  f"tree's), run the same way; the two servers took turns in {slices} slices per endpoint"
                  + ("; p50 = request-weighted mean of the slices' p50s, p99 = the worst slice's" if slices > 1
                     else ""))
            print("  - GET /schemas/types is the same code in both servers: its 'vs' ratio is this run's noise")
        lookup = next((r for r in http.results[current] if r.target.path.startswith("/schemas/ids/")), None)
        passed = lookup is not None and lookup.rate is not None and lookup.rate >= LOOKUP_GOAL
        bad = sum(r.non_2xx + r.errors for r in every)
        ok &= passed and bad == 0 and not any(r.failure for r in every)
        print(f"\nLookups GET /schemas/ids/{{id}} ({current}): {fmt_rate(lookup.rate if lookup else None)}; goal >= "
              f"{LOOKUP_GOAL:,}/s: {'PASS' if passed else 'MISS'}; failed/non-2xx responses: {bad}")
        if http.client_rate is not None:
            print(f"SchemaClient.validate against the live registry: {fmt_rate(http.client_rate)} with "
                  f"{http.client_fetches} HTTP fetch(es) in total (fetch once, validate locally)")
    print()
    return ok


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.registry",
        description="Local validations/s per JSON Schema library on our envelopes, and the schema registry's "
                    "HTTP throughput (GET /schemas/ids/{id}, POST /validate) under a load generator.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--only", choices=("local", "http"), help="run one part only")
    parser.add_argument("--quick", action="store_true",
                        help="short runs (3 s per endpoint, 0.6 s per local measurement) for a smoke check")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per endpoint")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load before each endpoint")
    parser.add_argument("--local-seconds", type=float, default=1.5, help="seconds per local measurement")
    parser.add_argument("--rounds", type=int, default=3, help="local: report the best of this many rounds")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto",
                        help="load generator; auto = wrk when installed, else Python processes")
    parser.add_argument("--connections", type=int, default=16, help="concurrent keep-alive connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--clients", type=int, default=1, help="Python generator processes")
    parser.add_argument("--catalog", action="store_true", help="also load GET /catalog/{event}/{version}")
    parser.add_argument("--against", metavar="GIT_REF",
                        help="also run registry/ as of this git revision (e.g. HEAD) and report the working tree's "
                             "ratio to it, endpoint by endpoint, in the same run")
    parser.add_argument("--slice", type=float, default=2.0,
                        help="with --against: the servers take turns every this many seconds")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed or a request failed")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration = min(args.duration, 3.0)
        args.warmup = min(args.warmup, 0.5)
        args.local_seconds = min(args.local_seconds, 0.6)
        args.rounds = min(args.rounds, 2)
    if args.clients < 1 or args.connections < args.clients:
        parser.error("need --clients >= 1 and --connections >= --clients")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    say(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, pid {os.getpid()}")
    local = run_local(args) if args.only != "http" else None
    http = run_http(args) if args.only != "local" else None
    ok = summary(local, http, args)
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
