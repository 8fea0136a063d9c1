"""A progress line for long reads and replays, and a pacer for `--rate`."""

from __future__ import annotations

import asyncio
import time
from typing import TextIO


class Progress:
    """A one-line progress bar on a terminal; a line every 10% otherwise."""

    def __init__(self, label: str, total: int, out: TextIO | None) -> None:
        self.label, self.total, self.out = label, total, out
        self.tty = bool(out is not None and out.isatty())
        self._last_decile = -1
        self._started = time.monotonic()

    def update(self, n: int, extra: str = "") -> None:
        if self.out is None or self.total == 0:
            return
        fraction = min(1.0, n / self.total)
        if self.tty:
            filled = int(fraction * 30)
            self.out.write(f"\r{self.label:<10} [{'#' * filled}{'.' * (30 - filled)}] {n}/{self.total} {extra}  ")
            self.out.flush()
        elif int(fraction * 10) > self._last_decile:
            self._last_decile = int(fraction * 10)
            self.out.write(f"{self.label}: {n}/{self.total} ({fraction:.0%}) {extra}\n")

    def done(self) -> None:
        if self.out is not None and self.tty and self.total:
            self.out.write(f" {time.monotonic() - self._started:.1f}s\n")


class Pacer:
    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self._next = time.monotonic()

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        if self._next > now:
            await asyncio.sleep(self._next - now)
        self._next = max(now, self._next) + self.interval
