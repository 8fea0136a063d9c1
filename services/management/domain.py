"""Managers and tasks, and the payloads of the events they emit. No I/O here."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from eventbus.errors import InvalidInput
from services.contracts import split_area_title

_USERNAME_CHARS = re.compile(r"[^a-z0-9_.-]+")
#: one username rule for every version of ManagerCreated (v1 and v2 declare exactly this)
USERNAME = re.compile(r"^[a-z0-9_.-]{3,64}$")
USERNAME_RULE = "3 to 64 characters of a-z, 0-9, '_', '.', '-'"


@dataclass(frozen=True)
class Manager:
    id: uuid.UUID
    account_id: str
    first_name: str | None
    last_name: str | None
    username: str | None


@dataclass(frozen=True)
class Task:
    id: uuid.UUID
    creator_id: uuid.UUID
    title: str  # without the area
    knowledge_area: str | None

    @property
    def old_title(self) -> str:
        """The v0 form, "[Area] Title" (seed 004, US-160 step 3)."""
        return f"[{self.knowledge_area}] {self.title}" if self.knowledge_area else self.title

    @classmethod
    def stored(cls, id: uuid.UUID, creator_id: uuid.UUID, title: str, knowledge_area: str | None) -> Task:
        """A task as stored: split (title + knowledge_area), or one "[Area] Title" (rows from before US-160,
        or written while titles are combined): US-160 step 3's rule, the area column when it has a value,
        else the area parsed from the title."""
        if knowledge_area:
            return cls(id, creator_id, title, knowledge_area)
        area, bare = split_area_title(title)
        return cls(id, creator_id, bare, area)


def check_username(username: str) -> str:
    if not USERNAME.fullmatch(username):
        raise InvalidInput("username", f"{username[:80]!r} is not a username: {USERNAME_RULE}", "value_error.username")
    return username


def default_username(first_name: str, last_name: str) -> str:
    base = _USERNAME_CHARS.sub("", f"{first_name}.{last_name}".lower().replace(" ", "_"))
    if not any(c.isalnum() for c in base):
        base = "manager"
    return base[:64].ljust(3, "_")


def manager_created(manager: Manager, version: int) -> dict[str, Any]:
    """The payload of ManagerCreated v`version` (v0 names; v1 names + username; v2 username)."""
    payload: dict[str, Any] = {"manager_id": str(manager.id), "account_id": manager.account_id}
    if version in (0, 1):
        payload |= {"first_name": manager.first_name, "last_name": manager.last_name}
    if version in (1, 2):
        payload["username"] = manager.username
    return payload


def task_created(task: Task, version: int) -> dict[str, Any]:
    payload: dict[str, Any] = {"task_id": str(task.id), "creator_id": str(task.creator_id)}
    if version == 0:
        payload["title"] = task.old_title
    else:
        payload["title"] = task.title
        if task.knowledge_area:
            payload["knowledge_area"] = task.knowledge_area
    return payload
