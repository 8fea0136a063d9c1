"""Helpers for reading the event contracts (`schemas/`) that more than one service needs.

These are facts about the events, not about any one service's domain: how a v0 title carries its
knowledge area, and how ManagerCreated v0/v1/v2 map onto one shape (upcasting).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_AREA_TITLE = re.compile(r"^\[([^\[\]]+)\]\s+(\S.*)$")


def split_area_title(title: str) -> tuple[str | None, str]:
    """"[Area] Title" -> ("Area", "Title"); a title without an area -> (None, title)."""
    match = _AREA_TITLE.match(title.strip())
    if match is None:
        return None, title.strip()
    return match.group(1).strip(), match.group(2).strip()


@dataclass(frozen=True)
class TaskCreatedFacts:
    task_id: str
    creator_id: str
    title: str
    knowledge_area: str | None

    @property
    def old_title(self) -> str:
        return f"[{self.knowledge_area}] {self.title}" if self.knowledge_area else self.title


def task_created(payload: dict[str, Any], version: int) -> TaskCreatedFacts:
    """TaskCreated v0 ("[Area] Title") or v1 (title + optional knowledge_area) as one shape."""
    title = str(payload["title"])
    area = payload.get("knowledge_area") if version >= 1 else None
    if area is None:  # v0, or v1 without the optional field (US-160 step 9: parse it)
        area, title = split_area_title(title)
    return TaskCreatedFacts(str(payload["task_id"]), str(payload["creator_id"]), title, area)


@dataclass(frozen=True)
class ManagerCreatedFacts:
    manager_id: str
    account_id: str
    first_name: str | None
    last_name: str | None
    username: str | None


def manager_created(payload: dict[str, Any], version: int) -> ManagerCreatedFacts:
    """ManagerCreated v0 (names), v1 (names + username) or v2 (username only) as one shape."""
    return ManagerCreatedFacts(
        manager_id=str(payload["manager_id"]),
        account_id=str(payload["account_id"]),
        first_name=payload.get("first_name") if version < 2 else None,
        last_name=payload.get("last_name") if version < 2 else None,
        username=payload.get("username") if version >= 1 else None,
    )
