"""Operator commands follow the running stack: with a stack recorded in STACK_DATA_DIR (this test process
plays its control process, over the session's embedded PostgreSQL and Tansu on free ports), `dlq-list`,
`dlq-replay`, `outbox-status` and `registry-register` talk to it without being told where, say so in their
first line, and let a flag or variable override it; with no stack and nothing given they say how to fix it.
`dlq-list` separates pending, replayed, parked and never-replayable records; a dry run flags the last."""

from __future__ import annotations

import asyncio
import http.server
import itertools
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from eventbus.consumer import ddl as consumer_ddl
from eventbus.consumer.dlq import dlq_topic, parking_topic
from eventbus.consumer.replay import main as replay_main
from eventbus.db import ensure_database, plain_url, with_database
from eventbus.outbox import ddl as outbox_ddl
from eventbus.outbox.cli import main as outbox_main
from eventbus.stack.broker import TansuBroker
from eventbus.stack.postgres import EmbeddedPostgres
from eventbus.stack.state import write_state
from eventbus.topics import TopicSpec
from registry.cli import main as registry_main
from tests.integration.conftest import make_topics

pytestmark = pytest.mark.integration
ADDRESS_VARIABLES = ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "REGISTRY_URL", "STACK_DATA_DIR")


@pytest.fixture
def no_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ADDRESS_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def stack_dir(tmp_path: Path, pg_server: EmbeddedPostgres, kafka: TansuBroker, monkeypatch: pytest.MonkeyPatch,
              no_addresses: None) -> Path:
    """A running stack as the operator commands see it: its state file (this process is its control process)."""
    write_state(tmp_path, ready=True, database_url=pg_server.url, bootstrap_servers=kafka.bootstrap_servers,
                registry_url="http://127.0.0.1:9", processes={})
    monkeypatch.setenv("STACK_DATA_DIR", str(tmp_path))
    return tmp_path


def _stack_line(stack_dir: Path, pg: EmbeddedPostgres, broker: TansuBroker) -> str:
    return (f"stack: {stack_dir} (pid {os.getpid()}), database 127.0.0.1:{pg.port}, "
            f"kafka {broker.bootstrap_servers}")


def _envelope(event_id: str) -> bytes:
    return json.dumps({"meta": {"event_id": event_id, "event_name": "TaskCompleted", "event_version": 0},
                       "payload": {"task_id": "t"}}).encode()


def _dlq_record(group: str, topic: str, value: bytes | None, error_class: str, message: str,
                replay_count: int = 0) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    headers = {"dlq.original.topic": topic, "dlq.original.partition": "0", "dlq.consumer.group": group,
               "dlq.error.category": "non-retriable", "dlq.error.class": error_class, "dlq.error.message": message,
               "dlq.failed.at": "2026-11-23T10:00:00.000Z"}
    if replay_count:
        headers["dlq.replay.count"] = str(replay_count)
    return value, [(k, v.encode()) for k, v in headers.items()]


async def _dead_letter(bootstrap: str, group: str, topic: str,
                       records: list[tuple[bytes | None, list[tuple[str, bytes]]]]) -> None:
    names = (topic, dlq_topic(group, topic), parking_topic(group, topic))
    await make_topics(bootstrap, *(TopicSpec(t, 1) for t in names))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value, headers in records:
            await producer.send_and_wait(dlq_topic(group, topic), key=b"task-1", value=value, headers=headers,
                                         partition=0)
    finally:
        await producer.stop()


_databases = itertools.count()


async def _new_database(server_url: str, prefix: str, ddl: list[str]) -> str:
    """A fresh database on the server with these tables (the frozen steps the migrations run); its name."""
    name = f"op_{prefix}_{next(_databases)}_{uuid.uuid4().hex[:6]}"
    await ensure_database(server_url, name)
    conn = await asyncpg.connect(plain_url(with_database(server_url, name)))
    try:
        async with conn.transaction():  # as a migration runs them
            for statement in ddl:
                await conn.execute(statement)
    finally:
        await conn.close()
    return name


@pytest.fixture
def dead_lettered(pg_server: EmbeddedPostgres, bootstrap: str,
                  unique: Callable[[str], str]) -> Iterator[tuple[str, str, list[str]]]:
    """(group, source topic, event ids): a group whose database is named like it (as the stack's are) and holds
    the replay log, with three well-formed records in its DLQ (two failures of one kind, one of another; the
    second replayed 3 times already), one not JSON and one tombstone."""
    group = asyncio.run(_new_database(pg_server.url, "bonus", consumer_ddl.create_v1()))
    topic = unique("results")
    ids = [str(uuid.uuid4()) for _ in range(3)]
    schema = "eventbus.consumer.errors.SchemaInvalid"
    asyncio.run(_dead_letter(bootstrap, group, topic, [
        _dlq_record(group, topic, _envelope(ids[0]), schema, "/payload/rating: 9 is greater than the maximum of 5"),
        _dlq_record(group, topic, _envelope(ids[1]), schema, "/payload/rating: 9 is greater than the maximum of 5",
                    replay_count=3),
        _dlq_record(group, topic, _envelope(ids[2]), schema, "/payload: 'task_id' is a required property"),
        _dlq_record(group, topic, b"not json", "eventbus.envelope.EnvelopeError", "value is not JSON"),
        _dlq_record(group, topic, None, "eventbus.envelope.EnvelopeError", "message has no value (tombstone)"),
    ]))
    yield group, topic, ids


def test_dlq_commands_follow_the_running_stack_and_list_what_became_of_each_record(
        stack_dir: Path, pg_server: EmbeddedPostgres, kafka: TansuBroker,
        dead_lettered: tuple[str, str, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    group, topic, ids = dead_lettered
    first_line = _stack_line(stack_dir, pg_server, kafka)

    assert replay_main(["replay", "--group", group, "--dry-run"]) == 0  # no --bootstrap, no --database
    out = capsys.readouterr().out.splitlines()
    assert out[0] == first_line
    assert out[-1].endswith("would replay 2, parked 1, refused 2 (2 can never succeed), skipped (already replayed) 0")
    never = [line for line in out if "can never succeed" in line and "would refuse" in line]
    assert len(never) == 2 and any("value is not JSON" in line for line in never)
    assert any("message has no value (tombstone)" in line for line in never)

    assert replay_main(["replay", "--group", group, "--event-id", ids[0], "--event-id", ids[1]]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == first_line and "replayed 1, parked 1, refused 0" in out[-1]

    assert replay_main(["list", "--group", group, "--parking", "--records"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == first_line
    assert "5 dead-lettered record(s): 1 pending, 1 replayed, 1 parked, 2 unreplayable" in out
    assert any(line.strip() == "2 x /payload/rating: 9 is greater than the maximum of 5" for line in out)
    assert any(line.strip() == "1 x /payload: 'task_id' is a required property" for line in out)
    assert f"parking topics: {parking_topic(group, topic)}" in out
    assert "1 parked record(s): 1 parked" in out
    assert any(f"event_id={ids[2]}" in line and " pending " in line for line in out)

    assert replay_main(["list", "--group", group, "--state", "pending"]) == 0
    assert "1 dead-lettered record(s): 1 pending" in capsys.readouterr().out.splitlines()


def test_a_variable_overrides_the_stack_and_the_first_line_says_so(
        stack_dir: Path, kafka: TansuBroker, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    assert replay_main(["replay", "--group", "bonus", "--dry-run"]) == 2
    captured = capsys.readouterr()
    assert f"kafka 127.0.0.1:9 (from KAFKA_BOOTSTRAP_SERVERS; the stack's is {kafka.bootstrap_servers})" in \
        captured.out.splitlines()[0]
    assert "cannot reach the broker at 127.0.0.1:9" in captured.err


def test_without_a_stack_or_an_address_the_commands_say_how_to_fix_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_addresses: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("STACK_DATA_DIR", str(tmp_path))
    assert replay_main(["list"]) == 2
    err = capsys.readouterr().err
    assert "no stack runs in" in err and "make run-bg" in err and "--bootstrap" in err
    with pytest.raises(SystemExit) as exited:
        outbox_main(["status"])
    assert exited.value.code == 2 and "--database-url" in capsys.readouterr().err
    assert registry_main(["register"]) == 2
    assert "--registry" in capsys.readouterr().err


def test_outbox_status_reads_the_stack_databases(stack_dir: Path, pg_server: EmbeddedPostgres, kafka: TansuBroker,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    database = asyncio.run(_new_database(pg_server.url, "management", outbox_ddl.create_v1()
                                         + outbox_ddl.create_broker_loss_v1() + outbox_ddl.create_pending_v1()))
    with pytest.raises(SystemExit) as exited:
        outbox_main(["status", "--database", database])
    out = capsys.readouterr().out.splitlines()
    assert exited.value.code == 0, out
    assert out[0] == f"stack: {stack_dir} (pid {os.getpid()}), database 127.0.0.1:{pg_server.port}"
    assert out[1].startswith(f"{database}: backlog 0")


def test_outbox_status_names_the_fix_for_a_database_the_code_is_ahead_of(
        stack_dir: Path, pg_server: EmbeddedPostgres, kafka: TansuBroker, capsys: pytest.CaptureFixture[str]) -> None:
    database = asyncio.run(_new_database(pg_server.url, "management", outbox_ddl.create_v1()))
    with pytest.raises(SystemExit) as exited:
        outbox_main(["status", "--database", database])
    out = capsys.readouterr().out.splitlines()
    assert exited.value.code == 1, out
    assert out[1].startswith(f"{database}: the outbox database has no outbox_pending table"), out
    assert "make migrate" in out[1]


class _Registry(http.server.BaseHTTPRequestHandler):
    """A stand-in registry: answers every registration with an id and remembers what it was sent."""

    posted: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.posted.append(self.path)
        body = b'{"id": 1}'
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def stand_in_registry() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_registry_register_writes_into_the_stack_registry(tmp_path: Path, stand_in_registry: str, no_addresses: None,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    write_state(tmp_path, ready=True, registry_url=stand_in_registry, processes={})
    monkeypatch.setenv("STACK_DATA_DIR", str(tmp_path))
    _Registry.posted.clear()
    assert registry_main(["register", "--token", "t", "TaskCreated"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"stack: {tmp_path} (pid {os.getpid()}), registry {stand_in_registry}"
    assert out[1].endswith(f"into {stand_in_registry}")
    assert _Registry.posted and all(path == "/subjects/TaskCreated/versions" for path in _Registry.posted)
