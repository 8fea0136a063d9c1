"""What the benchmarks share: timestamped progress on stderr, and the servers to run against."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tests.waiting import free_port

_T0 = time.perf_counter()


def say(message: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def stack(workdir: Path) -> Iterator[tuple[str, str]]:
    """(server URL, bootstrap servers): the environment's, or embedded ones started here."""
    from eventbus.stack.broker import TansuBroker
    from eventbus.stack.postgres import EmbeddedPostgres

    server_url, bootstrap = os.environ.get("DATABASE_URL"), os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    pg = broker = None
    try:
        if not server_url:
            pg = EmbeddedPostgres(workdir / "pg" / "data", free_port())
            server_url = pg.start()
            say(f"embedded PostgreSQL on {server_url}")
        if not bootstrap:
            broker = TansuBroker(free_port(), workdir / "tansu.log")
            bootstrap = broker.start()
            say(f"embedded Tansu on {bootstrap}")
        yield server_url, bootstrap
    finally:
        if broker is not None:
            broker.stop()
        if pg is not None:
            pg.stop(mode="immediate")
