"""The structure the issues ask for, checked: imports point one way (services -> backbone <- registry), the
README's make targets and names exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _imports(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (REPO / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
        found[str(path.relative_to(REPO))] = names
    return found


@pytest.mark.parametrize(("package", "forbidden"), [("eventbus", {"services", "registry"}),
                                                    ("registry", {"services"})])
def test_imports_point_one_way(package: str, forbidden: set[str]) -> None:
    wrong = {path: sorted(names & forbidden) for path, names in _imports(package).items() if names & forbidden}
    assert wrong == {}, f"{package} must not import {forbidden}: {wrong}"


def test_domain_and_handlers_import_no_web_framework() -> None:
    for path in [*REPO.glob("services/*/domain.py"), *REPO.glob("services/*/handlers.py"),
                 REPO / "services/bonus/queries.py", REPO / "registry/service.py", REPO / "eventbus/errors.py"]:
        names = {n for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ImportFrom | ast.Import)
                 for n in ([node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names])}
        assert not {n for n in names if n.split(".")[0] in ("fastapi", "starlette", "faust")}, (path, names)


def test_every_make_target_the_readme_names_exists() -> None:
    readme = (REPO / "README.md").read_text()
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", (REPO / "Makefile").read_text(), re.M))
    named = set(re.findall(r"`make ([a-z][a-z0-9-]*[a-z0-9])(?=[ `])", readme))
    assert named and named <= targets, f"README names targets the Makefile lacks: {sorted(named - targets)}"


def test_every_playbook_and_switch_the_readme_names_exists() -> None:
    from services.flags import BY_NAME
    from services.playbooks import playbooks
    readme = (REPO / "README.md").read_text()
    assert set(re.findall(r"NAME=((?:us|comm)-\d+)", readme)) <= set(playbooks())
    switches = set(re.findall(r"`((?:management|hiring|bonus)\.[a-z_]+)`", readme))
    switches |= set(re.findall(r"NAME=((?:management|hiring|bonus)\.[a-z_]+)", readme))
    switches -= {"management.managers", "management.tasks"}  # topics
    assert switches and switches <= set(BY_NAME), sorted(switches - set(BY_NAME))
