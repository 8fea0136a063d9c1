"""A small TCP balancer in front of several instances of one API: what nginx does in seed 002's compose file, for
machines without nginx (the embedded stack, tests).

- Each client connection goes to the next backend in turn (round robin). Every answer names the instance that
  gave it (`x-server-instance`).
- A backend that refuses a connection, or does not accept one within `--connect-timeout`, is skipped: the same
  client connection is tried on the next backend. The skipped backend is left out for `--fail-timeout` seconds,
  like nginx's `max_fails=1 fail_timeout=...`. A client never sees an instance that is down unless every
  instance is down. Then it gets `503` with `Retry-After` and a body that names the backends.
- A request already handed to a backend that dies is not sent again (nginx does not resend a non-idempotent
  request either): its client sees the connection close and retries.

    python -m eventbus.balancer --listen 127.0.0.1:8000 --backend 127.0.0.1:8001 --backend 127.0.0.1:8011
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Sequence

Address = tuple[str, int]


def parse_address(text: str) -> Address:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r}: write HOST:PORT with a port from 1 to 65535, e.g. 127.0.0.1:8001")
    return host or "127.0.0.1", int(port)


class Balancer:
    def __init__(self, backends: Sequence[Address], *, fail_timeout: float = 5.0, connect_timeout: float = 1.0) -> None:
        if not backends:
            raise ValueError("a balancer needs at least one backend")
        self.backends = list(backends)
        self.fail_timeout = fail_timeout
        self.connect_timeout = connect_timeout
        #: a backend left out until then (monotonic seconds)
        self.down_until: dict[Address, float] = {}
        #: connections handed to each backend, and the client connections no backend took
        self.handed: dict[Address, int] = {b: 0 for b in self.backends}
        self.refused = 0
        self._next = 0
        self._server: asyncio.Server | None = None

    def order(self) -> list[Address]:
        """The backends to try for the next connection: round robin, the ones left out last (still tried when
        nothing else answers)."""
        start, self._next = self._next, (self._next + 1) % len(self.backends)
        turn = self.backends[start:] + self.backends[:start]
        now = time.monotonic()
        return sorted(turn, key=lambda b: self.down_until.get(b, 0.0) > now)

    async def _connect(self) -> tuple[Address, asyncio.StreamReader, asyncio.StreamWriter] | None:
        for backend in self.order():
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(*backend), self.connect_timeout)
            except (OSError, TimeoutError):
                self.down_until[backend] = time.monotonic() + self.fail_timeout
                continue
            self.down_until.pop(backend, None)
            self.handed[backend] += 1
            return backend, reader, writer
        return None

    async def handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        backend_writer: asyncio.StreamWriter | None = None
        try:
            found = await self._connect()
            if found is None:
                self.refused += 1
                body = json.dumps({"error_code": 50300, "message": "no instance answers: "
                                   + ", ".join(f"{h}:{p}" for h, p in self.backends) + " all refused the connection",
                                   "retry_after_seconds": 1}).encode()
                client_writer.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
                                    b"retry-after: 1\r\nconnection: close\r\ncontent-length: "
                                    + str(len(body)).encode() + b"\r\n\r\n" + body)
                await client_writer.drain()
                return
            _, backend_reader, backend_writer = found
            await asyncio.gather(_pipe(client_reader, backend_writer), _pipe(backend_reader, client_writer))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for writer in (client_writer, backend_writer):
                if writer is not None:
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()

    async def start(self, host: str, port: int) -> asyncio.Server:
        self._server = await asyncio.start_server(self.handle, host, port, reuse_address=True)
        return self._server


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            if writer.can_write_eof():
                writer.write_eof()
            else:
                writer.close()


async def serve(listen: Address, backends: Sequence[Address], fail_timeout: float, connect_timeout: float) -> None:
    balancer = Balancer(backends, fail_timeout=fail_timeout, connect_timeout=connect_timeout)
    server = await balancer.start(*listen)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"balancing {listen[0]}:{listen[1]} over {', '.join(f'{h}:{p}' for h, p in backends)}", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m eventbus.balancer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", type=parse_address, required=True, help="HOST:PORT clients connect to")
    parser.add_argument("--backend", type=parse_address, action="append", required=True,
                        help="HOST:PORT of one instance (repeat for each)")
    parser.add_argument("--fail-timeout", type=float, default=5.0,
                        help="seconds a backend that refused a connection is left out (default 5)")
    parser.add_argument("--connect-timeout", type=float, default=1.0,
                        help="seconds to wait for a backend to accept a connection (default 1)")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.listen, args.backend, args.fail_timeout, args.connect_timeout))


if __name__ == "__main__":
    main()
