"""One source of truth per port: each process's settings class holds its default, distinct from every other
process's; the stack plans the same ports from the same classes and sets the variable the process reads.
Workers listen on HOST only (Faust's own default is every interface)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventbus.consumer.worker import WorkerSettings, build_app
from eventbus.outbox.main import RelaySettings
from services.stack import StackSettings, process_specs
from services.stack.topology import PROCESS_NAMES, planned, port_clashes

PORT_VARIABLES = ("REGISTRY_PORT", "MANAGEMENT_PORT", "HIRING_PORT", "BONUS_PORT", "MANAGEMENT_RELAY_PORT",
                  "HIRING_RELAY_PORT", "BONUS_WORKER_PORT", "HIRING_WORKER_PORT", "RELAY_PORT", "WORKER_PORT", "HOST")
README = {"registry": 8000, "management": 8001, "hiring": 8002, "bonus": 8003, "management-relay": 8101,
          "hiring-relay": 8102, "bonus-worker": 8103, "hiring-worker": 8104}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PORT_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_each_process_started_on_its_own_has_its_own_default_port() -> None:
    relay, worker = RelaySettings(), WorkerSettings()
    assert (relay.port_for("management"), relay.port_for("hiring")) == (8101, 8102)
    assert (worker.port_for("bonus"), worker.port_for("hiring")) == (8103, 8104)


def test_the_stack_plans_the_ports_the_processes_default_to(tmp_path: Path) -> None:
    plan = planned(StackSettings(stack_data_dir=tmp_path))
    assert {p.name: p.port for p in plan} == README
    assert tuple(p.name for p in plan) == PROCESS_NAMES
    assert len({p.port for p in plan}) == len(plan)


def test_a_process_variable_moves_the_process_and_the_stack_alike(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    monkeypatch.setenv("HIRING_RELAY_PORT", "9102")
    monkeypatch.setenv("BONUS_WORKER_PORT", "9103")
    monkeypatch.setenv("MANAGEMENT_PORT", "9001")
    assert RelaySettings().port_for("hiring") == 9102 and WorkerSettings().port_for("bonus") == 9103
    specs = {s.name: s for s in process_specs(StackSettings(stack_data_dir=tmp_path))}
    assert (specs["hiring-relay"].port, specs["bonus-worker"].port, specs["management"].port) == (9102, 9103, 9001)
    # the child gets its own variable, which beats a RELAY_PORT / WORKER_PORT it might inherit
    assert specs["hiring-relay"].env["HIRING_RELAY_PORT"] == "9102"
    assert specs["hiring-relay"].env["RELAY_INSTANCE_ID"].startswith("hiring-relay@")  # its own leases on a restart
    assert specs["bonus-worker"].env == {"BONUS_WORKER_PORT": "9103"}


def test_the_generic_variable_sets_one_process_and_the_specific_one_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_PORT", "9500")
    monkeypatch.setenv("WORKER_PORT", "9600")
    assert RelaySettings().port_for("hiring") == 9500  # compose and tests set RELAY_PORT per process
    assert WorkerSettings().port_for("bonus-bench") == 9600  # any group
    monkeypatch.setenv("HIRING_RELAY_PORT", "9102")
    assert RelaySettings().port_for("hiring") == 9102


def test_a_relay_of_another_service_needs_a_port() -> None:
    with pytest.raises(ValueError, match="set RELAY_PORT"):
        RelaySettings().port_for("relaytest")
    with pytest.raises(ValueError, match="set WORKER_PORT"):
        WorkerSettings().port_for("somegroup")


def test_the_stack_refuses_two_processes_on_one_port(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RELAY_PORT", "9500")  # meant for one relay, seen by the stack: both relays would get it
    [clash] = port_clashes(StackSettings(stack_data_dir=tmp_path))
    assert "management-relay and hiring-relay would both listen on port 9500" in clash
    assert "MANAGEMENT_RELAY_PORT" in clash and "HIRING_RELAY_PORT" in clash and "RELAY_PORT" in clash
    monkeypatch.delenv("RELAY_PORT")
    [clash] = port_clashes(StackSettings(stack_data_dir=tmp_path, embedded_pg_port=8000))
    assert clash.startswith("registry and embedded PostgreSQL would both listen on port 8000: set REGISTRY_PORT or "
                            "EMBEDDED_PG_PORT")


def test_workers_listen_on_host_only() -> None:
    settings = WorkerSettings(host="127.0.0.2")
    app = build_app(group="bonus", settings=settings, sources=[], processor=object())  # type: ignore[arg-type]
    assert (app.conf.web_bind, app.conf.web_host, app.conf.web_port) == ("127.0.0.2", "127.0.0.2", 8103)


def test_free_ports_are_never_handed_out_twice() -> None:
    """The kernel may return a port it gave a moment ago; a stack planned on two such ports refuses to start."""
    from eventbus.stack.ports import free_port
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
