"""What the benchmarks share: timestamped progress on stderr, the servers to run against, process CPU time, a raw
HTTP/1.1 client connection for load generators."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from tests.waiting import free_port

_T0 = time.perf_counter()


def say(message: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def postgres(workdir: Path, note: Callable[[str], None] = say) -> Iterator[str]:
    """A PostgreSQL server URL: DATABASE_URL's, or an embedded server started here (data in `workdir`)."""
    from eventbus.stack.postgres import EmbeddedPostgres

    server_url = os.environ.get("DATABASE_URL")
    if server_url:
        yield server_url
        return
    pg = EmbeddedPostgres(workdir / "pg" / "data", free_port())
    try:
        server_url = pg.start()
        note(f"embedded PostgreSQL on {server_url}")
        yield server_url
    finally:
        pg.stop(mode="immediate")


@contextlib.contextmanager
def broker(workdir: Path, note: Callable[[str], None] = say) -> Iterator[str]:
    """Kafka bootstrap servers: KAFKA_BOOTSTRAP_SERVERS, or an embedded Tansu started here."""
    from eventbus.stack.broker import TansuBroker

    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if bootstrap:
        yield bootstrap
        return
    tansu = TansuBroker(free_port(), workdir / "tansu.log")
    try:
        bootstrap = tansu.start()
        note(f"embedded Tansu on {bootstrap}")
        yield bootstrap
    finally:
        tansu.stop()


@contextlib.contextmanager
def stack(workdir: Path) -> Iterator[tuple[str, str]]:
    """(server URL, bootstrap servers): the environment's, or embedded ones started here."""
    with postgres(workdir) as server_url, broker(workdir) as bootstrap:
        yield server_url, bootstrap


async def drop_databases(server_url: str, names: Sequence[str]) -> None:
    """Drop the bench's databases (on a server that outlives the run: DATABASE_URL's)."""
    import asyncpg

    from eventbus.db import plain_url, with_database

    conn = await asyncpg.connect(plain_url(with_database(server_url, "postgres")), timeout=10)
    try:
        for name in names:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def correctness_line(checks: Sequence[tuple[str, bool, str]]) -> str:
    """The summary's last line: checks passed of run, each failed one with its detail (checks fail a run,
    speed goals are only reported)."""
    failed = [c for c in checks if not c[1]]
    return (f"correctness: {len(checks) - len(failed)}/{len(checks)} checks passed (goals are reported, they do not "
            "fail the run)" + "".join(f"\n  FAILED: {what}: {detail}" for what, _, detail in failed))


class Connection:
    """One HTTP/1.1 keep-alive connection, raw asyncio: a cheap client, so the load costs the machine little."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.host = f"127.0.0.1:{port}"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: Mapping[str, object]) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        data = json.dumps(body).encode()
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lower = head.lower()
        at = lower.find(b"\r\ncontent-length:")
        answer = await self.reader.readexactly(int(lower[at + 17:lower.index(b"\r\n", at + 2)]))
        return int(head[9:12]), answer

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
