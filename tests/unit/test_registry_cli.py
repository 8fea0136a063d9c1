"""`registry.cli check` and `diff` on the real catalog and on broken copies of it (files only, no network)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from registry.cli import main

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    copy = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, copy)
    return copy


def _edit(path: Path, change: object) -> None:
    doc = json.loads(path.read_text())
    change(doc)  # type: ignore[operator]
    path.write_text(json.dumps(doc))


def test_the_catalog_passes_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "ManagerCreated   v0..v2  BACKWARD_TRANSITIVE/LENIENT  ok" in out and out.rstrip().endswith("OK")


def test_strict_policy_names_the_added_optional_properties(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--policy", "STRICT"]) == 1
    out = capsys.readouterr().out
    assert "FAIL ManagerCreated v1" in out and "/properties/payload/properties/username" in out
    assert "FAIL TaskCreated v1" in out and "knowledge_area" in out and "[property-undeclared-by-open-writer]" in out


def test_a_new_required_field_fails_check_with_its_location(catalog: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def require_rating(doc: dict) -> None:  # type: ignore[type-arg]
        doc["properties"]["payload"]["properties"]["area"] = {"type": "string"}
        doc["properties"]["payload"]["required"].append("area")

    _edit(catalog / "TaskCreated" / "v1.json", require_rating)
    assert main(["--schemas", str(catalog), "check"]) == 1
    out = capsys.readouterr().out
    assert "TaskCreated      v0..v1  BACKWARD_TRANSITIVE/LENIENT  FAILED" in out
    assert ("FAIL TaskCreated v1 under BACKWARD_TRANSITIVE/LENIENT: backward against version 0: "
            "/properties/payload/required: 'area' is required") in out


def test_a_version_pinning_the_wrong_identity_fails(catalog: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _edit(catalog / "TaskCreated" / "v1.json",
          lambda d: d["properties"]["meta"]["properties"]["event_version"].update({"enum": [0]}))
    assert main(["--schemas", str(catalog), "check"]) == 1
    assert "TaskCreated v1: meta.event_version must be pinned to 1 (found 0)" in capsys.readouterr().out


def test_an_invalid_example_that_validates_fails(catalog: Path, capsys: pytest.CaptureFixture[str]) -> None:
    examples = catalog / "TaskCompleted" / "v0.examples.json"
    doc = json.loads(examples.read_text())
    doc["invalid"][0]["instance"] = doc["valid"][0]["instance"]
    examples.write_text(json.dumps(doc))
    assert main(["--schemas", str(catalog), "check"]) == 1
    assert "TaskCompleted v0: invalid example #0" in capsys.readouterr().out


def test_a_missing_catalog_names_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--schemas", str(tmp_path / "nope"), "check"]) == 2
    assert "pass --schemas DIR" in capsys.readouterr().err


def test_diff_lists_changes_marks_identity_and_gives_both_verdicts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", "ManagerCreated", "v1", "2"]) == 0
    out = capsys.readouterr().out
    assert "- /properties/payload/properties/first_name:" in out
    assert "~ /properties/meta/properties/event_version/enum: removed [1], added [2]   (event identity" in out
    assert "BACKWARD compatible  (v2 readers accept v1 events)" in out
    assert "FORWARD  INCOMPATIBLE" in out and "'first_name' is required by the reader" in out


def test_diff_of_an_unknown_version_says_which_exist(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", "TaskCreated", "0", "7"]) == 2
    assert "TaskCreated has no v7 (versions: [0, 1])" in capsys.readouterr().err
