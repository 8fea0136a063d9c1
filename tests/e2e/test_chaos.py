"""`make chaos`, short: a fresh stack under traffic through its APIs while every kind of process, the broker and
PostgreSQL are SIGKILLed one after another; nobody repairs anything; at the end every acknowledged outcome is
reconciled exactly. The harness (`services.chaos`) exits 1 on any loss, double, wrong amount, credit without an
acknowledged outcome, row left in an outbox, or fault not recovered within its deadline (a manual action); this
test runs it as `make chaos` does and checks that every fault kind was injected and recovered.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from eventbus.settings import REPO_ROOT
from services.chaos import PROCESSES, SERVERS

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(900)
def test_a_short_chaos_run_loses_nothing_doubles_nothing_and_needs_no_hand() -> None:
    run = subprocess.run([sys.executable, "-m", "services.chaos", "--duration", "100", "--rate", "10",
                          "--seed", "2026"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=840)
    print(run.stdout[-6000:])
    assert run.returncode == 0, f"chaos exited {run.returncode}:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    rows = {m[0]: (int(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5])) for m in re.findall(
        r"^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+[\d.]+\s+[\d.]+\s+(\d+)$", run.stdout, re.MULTILINE)}
    assert set(rows) == set(PROCESSES + SERVERS), f"fault kinds injected: {sorted(rows)}"
    for kind, (faults, lost, doubled, wrong, manual) in rows.items():
        assert faults >= 1 and (lost, doubled, wrong, manual) == (0, 0, 0, 0), (kind, rows[kind])
    summary = re.search(r"^(\d+) acknowledged outcomes .*; lost 0, doubled 0, wrong amounts 0, credits without an "
                        r"acknowledged outcome 0, balances off 0; unpublished outbox rows left 0; manual actions 0$",
                        run.stdout, re.MULTILINE)
    assert summary and int(summary[1]) > 100, "the reconciliation line is missing or saw too little traffic"
