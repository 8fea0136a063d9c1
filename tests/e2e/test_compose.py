"""docker-compose.yml is valid for the compose CLI (no engine needed), when a compose CLI is installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _compose_cli() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_compose_config_is_valid() -> None:
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no compose CLI (`docker compose` or `docker-compose`) on this machine")
    result = subprocess.run([*cli, "config", "-q"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_compose_topology_matches_the_design() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    kafka = [n for n in services if n.startswith("kafka-")]
    assert len(kafka) == 3
    for name in kafka:
        env = services[name]["environment"]
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == 2
    for api in ("management", "hiring", "bonus"):
        assert {f"{api}-1", f"{api}-2"} <= set(services), f"two instances of {api}"
    for worker in ("bonus-worker", "hiring-worker", "management-relay", "hiring-relay"):
        assert {f"{worker}-1", f"{worker}-2"} <= set(services)
    for name, service in services.items():
        if service.get("image") == "eventbackbone:dev" and name != "init":
            assert "healthcheck" in service, name
            assert service["environment"]["KAFKA_BOOTSTRAP_SERVERS"].count("kafka-") == 3


def test_compose_database_is_a_patroni_pair_behind_haproxy_with_synchronous_commit() -> None:
    """Seed 002: PostgreSQL under Patroni (etcd), HAProxy write (5000) and read (5001) endpoints; seed 000: a write
    is acknowledged once both nodes have it."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert {"pg-1", "pg-2", "haproxy", "etcd-1", "etcd-2", "etcd-3"} <= set(services)
    assert "postgres" not in services, "a single PostgreSQL is a single point of failure"
    for name in ("pg-1", "pg-2"):
        env = services[name]["environment"]
        assert env["PATRONI_NAME"] == name and env["PATRONI_POSTGRESQL_CONNECT_ADDRESS"] == f"{name}:5432"
        assert all(f"etcd-{i}:2379" in env["PATRONI_ETCD3_HOSTS"] for i in (1, 2, 3))
    patroni = yaml.safe_load((ROOT / "deploy/patroni/patroni.yml").read_text())
    dcs = patroni["bootstrap"]["dcs"]
    assert dcs["synchronous_mode"] is True and dcs["synchronous_mode_strict"] is True
    haproxy = (ROOT / "deploy/haproxy.cfg").read_text()
    assert "bind *:5000" in haproxy and "GET /primary" in haproxy
    assert "bind *:5001" in haproxy and "GET /replica" in haproxy
    for name, service in services.items():
        if service.get("image") == "eventbackbone:dev":
            assert "@haproxy:5000/" in service["environment"]["DATABASE_URL"], name


def test_compose_names_each_api_replica() -> None:
    """Every answer carries x-server-instance: compose gives each replica its own name (seed 002)."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for api in ("management", "hiring", "bonus"):
        names = [services[f"{api}-{i}"]["environment"].get("SERVER_INSTANCE") for i in (1, 2)]
        assert names == [f"{api}-1", f"{api}-2"], (api, names)
