"""The operator commands' resolver: flag, else environment, else the running stack's state file; never a
default port. A stale or half-started stack is told apart, and every refusal names the fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eventbus.stack.state import read_state, state_file, write_state
from eventbus.stack.target import TargetError, address, resolve

PG = "postgresql://postgres:secret@127.0.0.1:54001/postgres"


def _running(data_dir: Path, **extra: object) -> None:
    """A state file as the stack's control process writes it; this test process plays that process."""
    fields: dict[str, object] = {"ready": True, "database_url": PG, "bootstrap_servers": "127.0.0.1:19001",
                                 "registry_url": "http://127.0.0.1:18000",
                                 "processes": {"registry": {"url": "http://127.0.0.1:18000", "pid": os.getpid()}}}
    write_state(data_dir, **{**fields, **extra})


def test_no_stack_and_nothing_given_says_how_to_fix_it(tmp_path: Path) -> None:
    target = resolve(flags={"kafka": "--bootstrap"}, data_dir=tmp_path, environ={})
    assert target.stack is None and target.bootstrap_servers is None
    with pytest.raises(TargetError) as refused:
        target.need("kafka")
    message = str(refused.value)
    assert "no stack runs in" in message and "make run-bg" in message
    assert "--bootstrap" in message and "KAFKA_BOOTSTRAP_SERVERS" in message and "STACK_DATA_DIR" in message
    assert target.describe("kafka").startswith("stack: none running in")


def test_the_running_stack_is_used_and_named_in_the_first_line(tmp_path: Path) -> None:
    _running(tmp_path)
    target = resolve(data_dir=tmp_path, environ={})
    assert (target.database_url, target.bootstrap_servers, target.registry_url) == (
        PG, "127.0.0.1:19001", "http://127.0.0.1:18000")
    line = target.describe("database", "kafka")
    assert line == f"stack: {tmp_path} (pid {os.getpid()}), database 127.0.0.1:54001, kafka 127.0.0.1:19001"
    assert "secret" not in line


def test_environment_beats_the_stack_and_a_flag_beats_both(tmp_path: Path) -> None:
    _running(tmp_path)
    env = {"KAFKA_BOOTSTRAP_SERVERS": "10.0.0.1:9092", "DATABASE_URL": "postgresql://u@db:5432/postgres"}
    target = resolve(kafka="10.0.0.2:9092", flags={"kafka": "--bootstrap"}, data_dir=tmp_path, environ=env)
    assert target.bootstrap_servers == "10.0.0.2:9092" and target.database_url == env["DATABASE_URL"]
    line = target.describe("database", "kafka")
    assert "database db:5432 (from DATABASE_URL; the stack's is 127.0.0.1:54001)" in line
    assert "kafka 10.0.0.2:9092 (from --bootstrap; the stack's is 127.0.0.1:19001)" in line


def test_stack_data_dir_picks_the_stack(tmp_path: Path) -> None:
    _running(tmp_path)
    assert resolve(environ={"STACK_DATA_DIR": str(tmp_path)}).bootstrap_servers == "127.0.0.1:19001"


def test_a_state_file_left_by_a_dead_stack_is_stale(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _running(tmp_path)
    doc = json.loads(state_file(tmp_path).read_text())
    state_file(tmp_path).write_text(json.dumps({**doc, "pid": int(dead.stdout)}))
    target = resolve(data_dir=tmp_path, environ={})
    assert target.stack is None and target.bootstrap_servers is None
    with pytest.raises(TargetError, match=rf"pid {int(dead.stdout)}\) is gone"):
        target.need("database")


def test_a_reused_pid_is_not_taken_for_the_stack(tmp_path: Path) -> None:
    _running(tmp_path)
    doc = json.loads(state_file(tmp_path).read_text())
    if doc["pid_start"] is None:
        pytest.skip("no /proc: start times are not recorded here")
    state_file(tmp_path).write_text(json.dumps({**doc, "pid_start": doc["pid_start"] - 1}))
    assert read_state(tmp_path) is None


def test_a_stack_still_starting_is_waited_for(tmp_path: Path) -> None:
    write_state(tmp_path, ready=False)
    target = resolve(data_dir=tmp_path, environ={})
    with pytest.raises(TargetError, match="still starting"):
        target.need("kafka")
    assert "(pid" in target.describe("kafka") and "starting" in target.describe("kafka")


def test_the_state_file_is_private(tmp_path: Path) -> None:
    _running(tmp_path)
    assert state_file(tmp_path).stat().st_mode & 0o077 == 0  # an external DATABASE_URL may hold a password


def test_addresses_shown_never_carry_a_password() -> None:
    assert address("database", PG) == "127.0.0.1:54001"
    assert address("kafka", "a:1,b:2") == "a:1,b:2"


def test_a_replicated_database_url_names_every_node() -> None:
    from eventbus.db import hosts_of, sqlalchemy_url, with_database
    url = "postgresql://postgres@127.0.0.1:54329,127.0.0.1:54330/postgres?target_session_attrs=read-write"
    assert hosts_of(url) == [("127.0.0.1", 54329), ("127.0.0.1", 54330)]
    assert address("database", url) == "127.0.0.1:54329,127.0.0.1:54330"
    assert sqlalchemy_url(with_database(url, "bonus")) == (
        "postgresql+asyncpg://postgres@/bonus?host=127.0.0.1:54329&host=127.0.0.1:54330"
        "&target_session_attrs=read-write")
    assert sqlalchemy_url("postgresql://u:p@db:5432/x") == "postgresql+asyncpg://u:p@db:5432/x"
    assert hosts_of("postgresql://u:p@db/x") == [("db", 5432)]
