"""Part 2 of `tests.bench.registry`: the registry as a process under load, endpoint by endpoint (with
--against, the working tree and an older revision taking turns), and SchemaClient against the live registry."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from eventbus.stack.supervisor import Supervisor
from tests.bench.registry_common import CASES, fmt_ms, fmt_pct, fmt_rate, say
from tests.bench.registry_load import CpuWindow, HttpResult, Target, merge, run_python, run_wrk
from tests.bench.registry_local import async_rate
from tests.bench.registry_servers import Postgres, Registry, export_revision, server_stack
from tests.bench.registry_validators import load_case


@dataclass
class HttpRun:
    generator: str
    stack: str
    servers: list[str]
    #: per server label, the results in target order
    results: dict[str, list[HttpResult]]
    client_rate: float | None = None
    client_fetches: int | None = None



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
        supervisor = Supervisor(workdir, {})
        registries = [Registry("working tree", postgres, supervisor)]
        if args.against:
            registries.append(Registry(args.against, postgres, supervisor,
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
                            f"errors {result.errors}  server CPU {fmt_pct(result.server_cpu)}"
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
