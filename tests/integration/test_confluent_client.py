"""A stock Confluent client (confluent_kafka.schema_registry) against our registry, run as a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from confluent_kafka import schema_registry  # a dev dependency: this test is never skipped

from eventbus.stack.postgres import EmbeddedPostgres
from tests.waiting import eventually_sync, free_port

pytestmark = pytest.mark.integration

TOKEN = "confluent-test-token"


@pytest.fixture(scope="module")
def registry_url(pg_server: EmbeddedPostgres, make_database: Callable[[str], str],
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with ThreadPoolExecutor(1) as pool:  # keep Alembic's loop off any running loop
        db_url = pool.submit(make_database, "registry").result()
    port = free_port()
    log = tmp_path_factory.mktemp("registry") / "registry.log"
    env = {**os.environ, "DATABASE_URL": pg_server.url, "REGISTRY_DATABASE_URL": db_url,
           "REGISTRY_PORT": str(port), "REGISTRY_TOKEN": TOKEN, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "registry"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                   cwd=Path(__file__).resolve().parents[2])
    url = f"http://127.0.0.1:{port}"
    try:
        eventually_sync(lambda: _up(url), timeout=30, what=f"the registry (log {log})")
        yield url
    finally:
        process.terminate()
        process.wait(10)


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health").status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def client(registry_url: str) -> object:
    return schema_registry.SchemaRegistryClient({
        "url": registry_url,
        "bearer.auth.credentials.source": "STATIC_TOKEN",
        "bearer.auth.token": TOKEN,
        "bearer.auth.logical.cluster": "local",  # the client insists; we ignore the header
    })


def test_register_fetch_lookup_and_check_compatibility(client: object) -> None:
    Schema = schema_registry.Schema
    v1 = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    v2 = {**v1, "properties": {**v1["properties"], "b": {"type": "integer"}}}
    breaking = {**v1, "required": ["a", "b"], "properties": v2["properties"]}
    c = client
    schema_id = c.register_schema("confluent-orders", Schema(json.dumps(v1), "JSON"))  # type: ignore[attr-defined]
    assert isinstance(schema_id, int) and schema_id > 0
    assert c.register_schema("confluent-orders", Schema(json.dumps(v1), "JSON")) == schema_id  # type: ignore[attr-defined]
    fetched = c.get_schema(schema_id)  # type: ignore[attr-defined]
    assert fetched.schema_type == "JSON" and json.loads(fetched.schema_str) == v1
    registered = c.lookup_schema("confluent-orders", Schema(json.dumps(v1), "JSON"))  # type: ignore[attr-defined]
    assert (registered.version, registered.schema_id) == (1, schema_id)
    assert c.test_compatibility("confluent-orders", Schema(json.dumps(v2), "JSON")) is True  # type: ignore[attr-defined]
    assert c.test_compatibility("confluent-orders", Schema(json.dumps(breaking), "JSON")) is False  # type: ignore[attr-defined]
    c.register_schema("confluent-orders", Schema(json.dumps(v2), "JSON"))  # type: ignore[attr-defined]
    assert c.get_versions("confluent-orders") == [1, 2]  # type: ignore[attr-defined]
    assert c.get_latest_version("confluent-orders").version == 2  # type: ignore[attr-defined]
    with pytest.raises(schema_registry.error.SchemaRegistryError) as refused:
        c.register_schema("confluent-orders", Schema(json.dumps(breaking), "JSON"))  # type: ignore[attr-defined]
    assert refused.value.http_status_code == 409
    assert "required" in refused.value.error_message


def test_config_and_delete_through_the_client(client: object) -> None:
    c = client
    Schema = schema_registry.Schema
    c.register_schema("confluent-cfg", Schema(json.dumps({"type": "string"}), "JSON"))  # type: ignore[attr-defined]
    c.set_compatibility("confluent-cfg", "FULL")  # type: ignore[attr-defined]
    assert c.get_compatibility("confluent-cfg") == "FULL"  # type: ignore[attr-defined]
    assert c.get_compatibility() == "BACKWARD_TRANSITIVE"  # type: ignore[attr-defined]
    assert c.delete_version("confluent-cfg", 1) == 1  # type: ignore[attr-defined]
    assert c.delete_subject("confluent-cfg", permanent=True) == [1]  # type: ignore[attr-defined]
    with pytest.raises(schema_registry.error.SchemaRegistryError) as gone:
        c.get_versions("confluent-cfg")  # type: ignore[attr-defined]
    assert gone.value.error_code == 40401


def test_the_client_reads_our_event_schemas(client: object) -> None:
    latest = client.get_latest_version("TaskCreated")  # type: ignore[attr-defined]
    assert json.loads(latest.schema.schema_str)["properties"]["meta"]["properties"]["event_version"] == {"enum": [1]}
