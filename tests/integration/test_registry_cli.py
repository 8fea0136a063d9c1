"""`registry.cli register` and `check --registry` against the registry service running as a process."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest

from registry.cli import main
from tests.integration.conftest import REGISTRY_TOKEN, SCHEMAS

pytestmark = pytest.mark.integration


def test_register_is_idempotent_for_the_seeded_catalog(registry_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    ids = httpx.get(f"{registry_url}/subjects/TaskCreated/versions/2").json()["id"]  # subject version 2 holds v1
    assert main(["register", "--registry", registry_url, "--token", REGISTRY_TOKEN]) == 0
    out = capsys.readouterr().out
    assert f"TaskCreated v1: id {ids}" in out and out.rstrip().endswith("OK")
    assert httpx.get(f"{registry_url}/subjects/TaskCreated/versions").json() == [1, 2]


def test_register_refuses_an_incompatible_version_with_reasons(registry_url: str, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    catalog = tmp_path / "schemas"
    shutil.copytree(SCHEMAS / "TaskRating", catalog / "TaskRating")
    v1 = json.loads((catalog / "TaskRating" / "v0.json").read_text())
    v1["properties"]["meta"]["properties"]["event_version"] = {"enum": [1]}
    v1["properties"]["payload"]["properties"]["comment"] = {"type": "string"}
    v1["properties"]["payload"]["required"].append("comment")
    (catalog / "TaskRating" / "v1.json").write_text(json.dumps(v1))
    assert main(["--schemas", str(catalog), "register", "--registry", registry_url, "--token", REGISTRY_TOKEN]) == 1
    out = capsys.readouterr().out
    assert "TaskRating v1: REFUSED 409" in out and "'comment' is required" in out
    assert httpx.get(f"{registry_url}/subjects/TaskRating/versions").json() == [1]


def test_register_without_the_token_says_what_is_missing(registry_url: str, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REGISTRY_TOKEN", raising=False)
    assert main(["register", "--registry", registry_url]) == 2
    assert "set REGISTRY_TOKEN or pass --token" in capsys.readouterr().err


def test_check_reads_the_subject_mode_from_the_registry(registry_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    put = httpx.put(f"{registry_url}/config/TaskCreated", json={"compatibility": "FULL"},
                    headers={"Authorization": f"Bearer {REGISTRY_TOKEN}"})
    assert put.status_code == 200, put.text
    try:
        assert main(["check", "--registry", registry_url]) == 1
        out = capsys.readouterr().out
        assert "TaskCreated      v0..v1  FULL/LENIENT  FAILED" in out and "[min-length-tightened]" in out
    finally:
        httpx.delete(f"{registry_url}/config/TaskCreated", headers={"Authorization": f"Bearer {REGISTRY_TOKEN}"})


def test_an_unreachable_registry_names_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["register", "--registry", "http://127.0.0.1:9", "--token", "x"]) == 2
    assert "is it running?" in capsys.readouterr().err


def test_check_against_something_that_is_not_a_registry_says_what_answered(
        registry_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--registry", f"{registry_url}/not-the-registry"]) == 2
    assert "GET /config/ManagerCreated answered 404" in capsys.readouterr().err
