"""Per-process caches of what the hot reads ask for: schema answers by id and compiled validators (immutable
once written) and, for `EVENT_SCHEMA_TTL`, which schema each event version resolves to (what `/validate` asks
per request)."""

from __future__ import annotations

import time

from eventbus.schemas.validation import CompiledSchema
from registry.store import SubjectVersion

#: How long an event-version lookup (`/validate`, `/catalog`) is answered without asking the database. Writes
#: through this process drop the answers at once; the TTL bounds what another registry process's writes can
#: leave stale.
EVENT_SCHEMA_TTL = 1.0


class ReadCaches:
    def __init__(self, event_ttl: float = EVENT_SCHEMA_TTL) -> None:
        self.event_ttl = event_ttl
        self.bodies: dict[int, bytes] = {}
        self.compiled: dict[int, CompiledSchema] = {}
        self._events: dict[tuple[str, int], tuple[float, SubjectVersion]] = {}
        #: bumped by every write: an answer read before a write is not cached after it
        self.generation = 0

    def event(self, name: str, version: int) -> SubjectVersion | None:
        hit = self._events.get((name, version))
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return None

    def keep_event(self, name: str, version: int, found: SubjectVersion, read_at_generation: int) -> None:
        if read_at_generation == self.generation:
            self._events[(name, version)] = (time.monotonic() + self.event_ttl, found)

    def drop_event(self, name: str, version: int) -> None:
        self._events.pop((name, version), None)

    def keep_body(self, schema_id: int, body: bytes, read_at_generation: int) -> None:
        if read_at_generation == self.generation:  # not read across a permanent delete
            self.bodies[schema_id] = body

    def changed(self) -> None:
        """After a write: which schema an event version resolves to may have changed."""
        self.generation += 1
        self._events.clear()

    def forget(self, schema_id: int) -> None:
        """After a permanent delete: the id answers 404 from now on."""
        self.bodies.pop(schema_id, None)
        self.compiled.pop(schema_id, None)
