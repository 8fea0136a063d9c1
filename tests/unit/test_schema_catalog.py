"""Every schema in schemas/ is valid 2020-12, pins its own name and version, and its examples behave."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from eventbus.schemas.validation import CompiledSchema, event_name_of, event_version_of
from registry.seed import catalog

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
EXPECTED = {("ManagerCreated", 0), ("ManagerCreated", 1), ("ManagerCreated", 2), ("TaskCreated", 0),
            ("TaskCreated", 1), ("TaskCompleted", 0), ("TaskFailed", 0), ("TaskRating", 0)}
ENTRIES = list(catalog(SCHEMAS))


def test_catalog_has_every_version_of_the_design_table() -> None:
    assert {(name, version) for name, version, _ in ENTRIES} == EXPECTED


@pytest.mark.parametrize(("name", "version", "schema"), ENTRIES, ids=[f"{n}-v{v}" for n, v, _ in ENTRIES])
def test_schema_is_valid_2020_12_and_pins_its_identity(name: str, version: int, schema: dict[str, object]) -> None:
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert event_name_of(schema) == name
    assert event_version_of(schema) == version


def _examples() -> list[tuple[str, int, str, dict[str, object]]]:
    out = []
    for name, version, _ in ENTRIES:
        doc = json.loads((SCHEMAS / name / f"v{version}.examples.json").read_text())
        out += [(name, version, "valid", ex) for ex in doc["valid"]]
        out += [(name, version, "invalid", ex) for ex in doc["invalid"]]
    return out


EXAMPLES = _examples()


@pytest.mark.parametrize(("name", "version", "kind", "example"), EXAMPLES,
                         ids=[f"{n}-v{v}-{k}-{e['why']}" for n, v, k, e in EXAMPLES])
def test_example(name: str, version: int, kind: str, example: dict[str, object]) -> None:
    compiled = CompiledSchema(name, version, json.loads((SCHEMAS / name / f"v{version}.json").read_text()))
    issues = compiled.issues(example["instance"])
    if kind == "valid":
        assert issues == [], example["why"]
        assert compiled.is_valid(example["instance"])
    else:
        assert not compiled.is_valid(example["instance"])
        assert example["pointer"] in [i.pointer for i in issues], (example["why"], issues)


def test_every_version_has_valid_and_invalid_examples() -> None:
    kinds = {(n, v, k) for n, v, k, _ in EXAMPLES}
    for name, version in EXPECTED:
        assert (name, version, "valid") in kinds and (name, version, "invalid") in kinds
