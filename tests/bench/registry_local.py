"""Part 1 of `tests.bench.registry`: local validations/s per library, single-threaded, and the invalid path."""

from __future__ import annotations

import argparse
import asyncio
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.bench.registry_common import CASES, fmt_rate, say
from tests.bench.registry_validators import (
    Candidate,
    Case,
    all_cases,
    candidates,
    conformance,
    load_case,
    multi_error_envelope,
    probe,
)


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
