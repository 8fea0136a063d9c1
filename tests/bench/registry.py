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

The parts: registry_validators (cases, candidates, conformance), registry_local (part 1), registry_http,
registry_load and registry_servers (part 2); this module parses the options and prints the summary.

Ratios in the summary come from this run only; other work on the machine moves the absolute numbers.
Correctness checks (registry_checks) fail the run in every mode; speed goals only with --check.
"""

from __future__ import annotations

import argparse
import os
import sys

from tests.bench.registry_checks import correctness, report
from tests.bench.registry_common import (
    CONFLUENT,
    KARAPACE,
    LOCAL_GOAL,
    LOOKUP_GOAL,
    fmt_ms,
    fmt_pct,
    fmt_rate,
    fmt_ratio,
    say,
    table,
)
from tests.bench.registry_http import HttpRun, run_http
from tests.bench.registry_local import InvalidResult, run_local
from tests.bench.registry_validators import Candidate, Case, all_cases, formats_used


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
                       str(r.non_2xx + r.errors), fmt_pct(r.server_cpu), fmt_pct(r.machine_cpu),
                       fmt_ratio(r.rate, floor)]
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
                        help="every part and check, short runs (1 s per endpoint, 0.3 s per local measurement): "
                             "the ratios are noisier, correctness is the same")
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
    parser.add_argument("--check", action="store_true",
                        help="also exit 1 when a speed goal is missed (a failed correctness check always does)")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration = min(args.duration, 1.0)
        args.warmup = min(args.warmup, 0.25)
        args.local_seconds = min(args.local_seconds, 0.3)
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
    checks = correctness(local, http)
    print(report(checks))
    if not all(passed for _, passed, _ in checks):
        return 1
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
