"""A stock Confluent client (confluent_kafka.schema_registry) against our registry, run as a process."""

from __future__ import annotations

import json

import pytest
from confluent_kafka import schema_registry  # a dev dependency: this test is never skipped

from tests.integration.conftest import REGISTRY_TOKEN as TOKEN

pytestmark = pytest.mark.integration



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
    assert c.test_compatibility("confluent-orders", Schema(json.dumps(v1), "JSON")) is True  # type: ignore[attr-defined]
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
    # the registered latest schema, as it is, is compatible with itself (identity pins included)
    assert client.test_compatibility("TaskCreated", latest.schema) is True  # type: ignore[attr-defined]
