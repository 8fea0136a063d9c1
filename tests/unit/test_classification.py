"""Which failures dead-letter at once, which block and retry, which get a budget."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from eventbus.consumer.errors import (
    Category,
    DependencyUnavailable,
    PoisonEvent,
    SchemaInvalid,
    UnsupportedEvent,
    classify,
)
from eventbus.envelope import EnvelopeError
from eventbus.resilience import CircuitOpenError
from eventbus.schemas.client import RegistryUnavailableError, UnknownSchemaError


def _http_error(status: int) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "http://hiring/tasks/1/rating")
    return httpx.HTTPStatusError("boom", request=request, response=httpx.Response(status, request=request))


@pytest.mark.parametrize(("exc", "category"), [
    (EnvelopeError("value is not JSON"), Category.NON_RETRIABLE),
    (SchemaInvalid("/payload: task_id is required"), Category.NON_RETRIABLE),
    (UnknownSchemaError("X", 9), Category.NON_RETRIABLE),
    (UnsupportedEvent("v3"), Category.NON_RETRIABLE),
    (PoisonEvent("domain says no"), Category.NON_RETRIABLE),
    (KeyError("task_id"), Category.NON_RETRIABLE),
    (TypeError("bug"), Category.NON_RETRIABLE),
    (asyncpg.DataError("invalid input syntax"), Category.NON_RETRIABLE),
    (asyncpg.UniqueViolationError("dup"), Category.NON_RETRIABLE),
    (_http_error(404), Category.NON_RETRIABLE),
    (ConnectionRefusedError(111, "refused"), Category.RETRIABLE),
    (TimeoutError(), Category.RETRIABLE),
    (asyncpg.CannotConnectNowError("starting up"), Category.RETRIABLE),
    (asyncpg.AdminShutdownError("terminating"), Category.RETRIABLE),
    (asyncpg.SerializationError("could not serialize"), Category.RETRIABLE),
    (asyncpg.DeadlockDetectedError("deadlock"), Category.RETRIABLE),
    (RegistryUnavailableError("down"), Category.RETRIABLE),
    (CircuitOpenError("hiring", 3.0), Category.RETRIABLE),
    (DependencyUnavailable("rating service"), Category.RETRIABLE),
    (_http_error(503), Category.RETRIABLE),
    (_http_error(429), Category.RETRIABLE),
    (httpx.ConnectError("refused"), Category.RETRIABLE),
    (RuntimeError("who knows"), Category.UNKNOWN),
])
def test_category(exc: BaseException, category: Category) -> None:
    assert classify(exc).category is category


def test_bug_classes_are_configurable() -> None:
    assert classify(KeyError("x"), bug_classes=()).category is Category.UNKNOWN
    assert classify(RuntimeError("x"), bug_classes=("RuntimeError",)).category is Category.NON_RETRIABLE


def test_classification_names_the_class_and_keeps_the_stacktrace() -> None:
    try:
        {}["missing"]
    except KeyError as exc:
        failure = classify(exc)
    assert failure.error_class == "builtins.KeyError"
    assert "missing" in failure.message
    assert "Traceback" in failure.stacktrace and "test_classification" in failure.stacktrace
