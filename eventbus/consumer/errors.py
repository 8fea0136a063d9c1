"""Error classification for consumers.

- non-retriable: the message can never succeed as it is (not JSON, schema-invalid, unknown or
  unsupported event/version, a domain rejection, known bug classes): dead-letter at once;
- retriable: a dependency is down or busy (database, registry, broker, HTTP 5xx, an open
  breaker): retry in place with backoff, blocking the partition, never dead-letter;
- unknown: anything else: a small retry budget, then dead-letter.
"""

from __future__ import annotations

import enum
import traceback
from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg
import httpx

from eventbus.envelope import EnvelopeError
from eventbus.errors import DependencyUnavailable  # raised by a handler when a dependency is down
from eventbus.failures import DB_UNAVAILABLE
from eventbus.resilience import CircuitOpenError
from eventbus.schemas.client import RegistryUnavailableError, UnknownSchemaError


class Category(enum.StrEnum):
    NON_RETRIABLE = "non-retriable"
    RETRIABLE = "retriable"
    UNKNOWN = "unknown"


class PoisonEvent(Exception):
    """Raised by decoding or a handler: this message can never be applied as it is."""


class SchemaInvalid(PoisonEvent):
    pass


class UnsupportedEvent(PoisonEvent):
    """A valid, registered event this consumer does not (yet) accept: replay it once it does."""


RETRIABLE_TYPES: tuple[type[BaseException], ...] = (
    *DB_UNAVAILABLE,  # one classification of "the database is down" for the relay, the consumers and the APIs
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.LockNotAvailableError,
    asyncpg.QueryCanceledError,
    RegistryUnavailableError,
    CircuitOpenError,
    DependencyUnavailable,
    httpx.TransportError,
)

#: Deterministic failures: retrying the same message cannot help.
NON_RETRIABLE_TYPES: tuple[type[BaseException], ...] = (
    PoisonEvent,
    EnvelopeError,
    UnknownSchemaError,
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.SyntaxOrAccessError,
)

#: Programming errors treated as known bug classes by default (`CONSUMER_BUG_CLASSES` overrides).
DEFAULT_BUG_CLASSES = ("KeyError", "TypeError", "AttributeError", "ValueError", "UnicodeDecodeError")


@dataclass(frozen=True)
class Classification:
    category: Category
    error_class: str
    message: str
    stacktrace: str

    @property
    def retriable(self) -> bool:
        return self.category is Category.RETRIABLE


def _http_status(exc: BaseException) -> int | None:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code
    return None


def classify(exc: BaseException, bug_classes: Iterable[str] = DEFAULT_BUG_CLASSES) -> Classification:
    stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    name = type(exc).__name__
    status = _http_status(exc)
    if status is not None:
        category = Category.RETRIABLE if status >= 500 or status == 429 else Category.NON_RETRIABLE
    elif isinstance(exc, NON_RETRIABLE_TYPES):
        category = Category.NON_RETRIABLE
    elif isinstance(exc, RETRIABLE_TYPES):
        category = Category.RETRIABLE
    elif name in set(bug_classes):
        category = Category.NON_RETRIABLE
    else:
        category = Category.UNKNOWN
    return Classification(category, f"{type(exc).__module__}.{type(exc).__qualname__}", str(exc) or name, stack)
