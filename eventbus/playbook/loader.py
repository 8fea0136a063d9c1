"""Read playbook files (YAML) into the model, refusing what would fail later: unknown gate or action kinds,
duplicate or unordered step numbers, a step with neither action nor gate."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from eventbus.playbook.actions import ACTIONS
from eventbus.playbook.gates import GATES
from eventbus.playbook.model import Call, Playbook, Step


class PlaybookError(ValueError):
    pass


def _calls(raw: Any, known: Iterable[str], where: str) -> tuple[Call, ...]:
    calls = []
    for item in raw or []:
        args: Any
        if isinstance(item, str):
            kind, args = item, {}
        elif isinstance(item, dict) and len(item) == 1:
            kind, args = next(iter(item.items()))
            args = args or {}
        else:
            raise PlaybookError(f"{where}: each entry is `kind: {{args}}`, got {item!r}")
        if kind not in known:
            raise PlaybookError(f"{where}: unknown kind {kind!r}; known: {', '.join(sorted(known))}")
        if not isinstance(args, dict):
            raise PlaybookError(f"{where}: the arguments of {kind} must be a mapping")
        calls.append(Call(kind, args))
    return tuple(calls)


def load(path: Path) -> Playbook:
    text = path.read_text()
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict):
        raise PlaybookError(f"{path}: not a playbook (a mapping with name, title, steps)")
    steps = []
    for raw in doc.get("steps") or []:
        where = f"{path.name} step {raw.get('number', '?')}"
        if not isinstance(raw.get("number"), int):
            raise PlaybookError(f"{where}: a step needs an integer number")
        step = Step(number=raw["number"], words=str(raw.get("words", "")), title=str(raw["title"]),
                    gates=_calls(raw.get("gates"), GATES, where), actions=_calls(raw.get("actions"), ACTIONS, where),
                    checks=_calls(raw.get("checks"), GATES, where), wait=float(raw.get("wait", 0)),
                    irreversible=raw.get("irreversible"), code=raw.get("code"), note=raw.get("note"),
                    undo_gates=_calls(raw.get("undo_gates"), GATES, where))
        if not (step.actions or step.gates or step.checks):
            raise PlaybookError(f"{where}: a step needs at least an action, a gate or a check")
        steps.append(step)
    numbers = [s.number for s in steps]
    if not steps or numbers != sorted(set(numbers)):
        raise PlaybookError(f"{path.name}: steps must be numbered in increasing order without repeats: {numbers}")
    return Playbook(name=str(doc["name"]), title=str(doc["title"]), source=str(doc.get("source", "")),
                    steps=tuple(steps), requires=tuple(doc.get("requires") or ()), summary=str(doc.get("summary", "")),
                    digest=hashlib.sha256(text.encode()).hexdigest()[:16])


def load_dir(directory: Path) -> dict[str, Playbook]:
    found = {}
    for path in sorted(directory.glob("*.yaml")):
        playbook = load(path)
        found[playbook.name] = playbook
    for playbook in found.values():
        for required in playbook.requires:
            if required not in found:
                raise PlaybookError(f"{playbook.name} requires {required}, which is not a playbook here")
    return found
