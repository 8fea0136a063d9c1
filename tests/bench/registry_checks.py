"""The registry benchmark's correctness checks: they fail the run in every mode (speed goals only with --check).

What we ship must be right before it is fast: our validator agrees with every example in `schemas/` and
knows the draft 2020-12 keywords, the producer hot path accepts the valid envelopes, a bad envelope gets a
full error report, every request under load was answered 2xx, and SchemaClient fetches a schema once.
Third-party libraries are compared, not checked (their gaps are findings, not failures)."""

from __future__ import annotations

from tests.bench.registry_http import HttpRun
from tests.bench.registry_local import InvalidResult
from tests.bench.registry_validators import Candidate, Case

Check = tuple[str, bool, str]  # what, passed, detail
PLANTED_ERRORS = 5  # registry_validators.multi_error_envelope


def local_checks(found: list[Candidate], invalid: list[InvalidResult]) -> list[Check]:
    checks: list[Check] = []
    for candidate in (c for c in found if c.name.startswith("registry")):
        checks.append((f"{candidate.name} accepts and validates the example envelopes", not candidate.failures,
                       "; ".join(f"{label}: {why}" for label, why in candidate.failures.items())))
        agreed, total = candidate.conformance
        if total:
            checks.append((f"{candidate.name} agrees with every example in schemas/", agreed == total,
                           f"{agreed}/{total}" + "".join(f"; {m}" for m in candidate.mismatches[:3])))
            checks.append((f"{candidate.name} knows the draft 2020-12 probes", not candidate.unsupported,
                           ", ".join(candidate.unsupported) or "all"))
    ours = next((r for r in invalid if r.name.startswith("registry CompiledSchema")), None)
    reported = ours.errors if ours is not None else None
    checks.append((f"CompiledSchema.issues reports all {PLANTED_ERRORS} planted errors",
                   reported is not None and reported >= PLANTED_ERRORS,
                   f"{reported} reported" + (f" ({ours.note})" if ours is not None and reported is None else "")))
    return checks


def http_checks(http: HttpRun) -> list[Check]:
    every = [r for results in http.results.values() for r in results]
    bad = sum(r.non_2xx + r.errors for r in every)
    failures = [f"{r.target.label}: {r.failure}" for r in every if r.failure]
    return [
        ("every request under load answered 2xx", bad == 0 and not failures,
         f"{bad} non-2xx/socket errors" + "".join(f"; {f}" for f in failures)),
        ("SchemaClient against the registry fetched the schema once", http.client_fetches == 1,
         f"{http.client_fetches} HTTP fetch(es)"),
    ]


def correctness(local: tuple[list[Candidate], list[Case], list[InvalidResult], Case] | None,
                http: HttpRun | None) -> list[Check]:
    checks = local_checks(local[0], local[2]) if local is not None else []
    return checks + (http_checks(http) if http is not None else [])


def report(checks: list[Check]) -> str:
    failed = [c for c in checks if not c[1]]
    return (f"correctness: {len(checks) - len(failed)}/{len(checks)} checks passed (goals are reported, they fail "
            "the run only with --check)" + "".join(f"\n  FAILED: {what}: {detail}" for what, _, detail in failed))
