"""Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And Jitter")."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base: float = 0.1
    cap: float = 10.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def ceiling(self, attempt: int) -> float:
        # min() first so a long outage cannot overflow the float
        return float(min(self.cap, self.base * (2 ** min(attempt, 62))))

    def next_delay(self) -> float:
        """Sleep this long before the next try: uniform in [0, min(cap, base * 2**attempt)]."""
        delay = self.rng.uniform(0, self.ceiling(self.attempt))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
