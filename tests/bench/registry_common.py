"""What the registry benchmark's parts share: the cases it measures, its goals, progress and tables."""

from __future__ import annotations

from pathlib import Path

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


def fmt_pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def table(headers: list[str], rows: list[list[str]], left: int = 1) -> str:
    """Text table; the first `left` columns are left-aligned, the rest right-aligned."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)), line]
    for row in rows:
        pairs = enumerate(zip(row, widths, strict=True))
        out.append("  ".join(str(c).ljust(w) if i < left else str(c).rjust(w) for i, (c, w) in pairs))
    return "\n".join(out)

