"""Domain errors: what went wrong, in the domain's words. No HTTP here; the edge (`eventbus.webapi`)
maps each class to a status code once, for every service."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of the errors a command or query may raise on purpose."""


class NotFoundError(DomainError, LookupError):
    """An entity the request names does not exist (`field`: the request field that named it)."""

    def __init__(self, entity: str, entity_id: object, field: str | None = None) -> None:
        super().__init__(f"{entity} {entity_id} not found")
        self.entity, self.entity_id, self.field = entity, entity_id, field


class ConflictError(DomainError):
    """The request contradicts the entity's current state (which the context says)."""

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.context = context


class InvalidInput(DomainError, ValueError):
    """A request field breaks a domain rule that the request model cannot express."""

    def __init__(self, field: str, message: str, kind: str = "domain") -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message, self.kind = field, message, kind


class DependencyUnavailable(DomainError):
    """Something the command needs is down (another service, an open breaker): nothing was written.
    `retry_after`: seconds a client should wait before trying again."""

    def __init__(self, dependency: str, detail: str = "", retry_after: float = 1.0) -> None:
        super().__init__(f"{dependency} is unavailable" + (f": {detail}" if detail else ""))
        self.dependency, self.detail, self.retry_after = dependency, detail, retry_after
