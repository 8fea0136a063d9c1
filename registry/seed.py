"""Load `schemas/<Event>/v<N>.json` into the registry, in version order, skipping what is there."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
_VERSION_FILE = re.compile(r"^v(\d+)\.json$")


def catalog(schemas_dir: Path) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(event name, event version, schema) for every schema file, by name then version."""
    for event_dir in sorted(p for p in schemas_dir.iterdir() if p.is_dir()):
        versions = []
        for path in event_dir.iterdir():
            match = _VERSION_FILE.match(path.name)
            if match:
                versions.append((int(match.group(1)), path))
        for version, path in sorted(versions):
            yield event_dir.name, version, json.loads(path.read_text())


Entry = tuple[str, int, dict[str, Any]]


def selected(entries: Iterator[Entry], versions: str) -> list[Entry]:
    """The catalog entries named by `versions` ("all", or "Event:N,Event:M,...")."""
    if versions.strip().lower() == "all":
        return list(entries)
    wanted = {(name.strip(), int(number)) for name, _, number in
              (item.partition(":") for item in versions.split(",") if item.strip())}
    return [entry for entry in entries if (entry[0], entry[1]) in wanted]
