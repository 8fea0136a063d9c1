"""The balancer in front of several API instances (eventbus.balancer), on real sockets: round robin, a dead
instance skipped without the client noticing, 503 when none answers."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from eventbus.balancer import Balancer, parse_address
from tests.waiting import free_port


async def named_backend(name: str, port: int) -> asyncio.Server:
    """An HTTP/1.1 server that answers every request with its name (and closes: one request a connection)."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = name.encode()
        writer.write(b"HTTP/1.1 200 OK\r\nx-server-instance: " + body + b"\r\ncontent-length: "
                     + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port)


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Balancer, str, dict[str, asyncio.Server], list[tuple[str, int]]]]:
    ports = [free_port(), free_port()]
    servers = {f"api-{i}": await named_backend(f"api-{i}", port) for i, port in enumerate(ports)}
    backends = [("127.0.0.1", p) for p in ports]
    balancer = Balancer(backends, fail_timeout=30)
    listen = free_port()
    server = await balancer.start("127.0.0.1", listen)
    yield balancer, f"http://127.0.0.1:{listen}", servers, backends
    server.close()
    for s in servers.values():
        s.close()


async def ask(url: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:  # a new connection each time: the balancer picks per connection
        return await client.get(f"{url}/health")


async def test_connections_go_to_each_instance_in_turn(pair) -> None:  # type: ignore[no-untyped-def]
    balancer, url, _, backends = pair
    names = [(await ask(url)).headers["x-server-instance"] for _ in range(6)]
    assert sorted(set(names)) == ["api-0", "api-1"]
    assert names[0] != names[1] and names[::2] == [names[0]] * 3
    assert balancer.handed == {backends[0]: 3, backends[1]: 3}


async def test_an_instance_that_is_down_is_skipped_and_left_out(pair) -> None:  # type: ignore[no-untyped-def]
    balancer, url, servers, backends = pair
    servers["api-0"].close()
    await servers["api-0"].wait_closed()
    answers = [await ask(url) for _ in range(6)]
    assert [r.status_code for r in answers] == [200] * 6  # the client never sees the dead one
    assert {r.headers["x-server-instance"] for r in answers} == {"api-1"}
    assert backends[0] in balancer.down_until
    # left out: it is tried last, so the dead one was tried once, not on every other connection
    assert balancer.handed[backends[1]] == 6


async def test_no_instance_answers_503_naming_them(pair) -> None:  # type: ignore[no-untyped-def]
    balancer, url, servers, backends = pair
    for s in servers.values():
        s.close()
        await s.wait_closed()
    r = await ask(url)
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert all(f"127.0.0.1:{p}" in r.json()["message"] for _, p in backends)
    assert balancer.refused == 1


def test_addresses_are_host_and_port() -> None:
    assert parse_address("127.0.0.1:8001") == ("127.0.0.1", 8001)
    assert parse_address(":8001") == ("127.0.0.1", 8001)
    for bad in ("localhost", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:" + "9" * 400, "h:\x00"):
        with pytest.raises(argparse.ArgumentTypeError, match="HOST:PORT"):
            parse_address(bad)


def test_a_balancer_needs_a_backend() -> None:
    with pytest.raises(ValueError, match="at least one backend"):
        Balancer([])
