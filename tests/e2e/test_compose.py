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
