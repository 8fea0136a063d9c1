"""Management, hiring and bonus against their own OpenAPI documents, fuzzed in-process (ASGI, real database).

Schemathesis generates requests from each service's document, valid and invalid ones, in two stages of seed 004
each: the "before" state (the first revision, default switches) and the final one (every head, the switches
where the five playbooks end, `services.flags.FINAL`). Every answer is checked against the document: a
documented status, content type, headers (Retry-After on 503) and body schema; invalid data refused. Beyond
schemathesis's own checks:

- never a 500; a 503 only where the stage makes one on purpose (hiring before COMM-040: bonus, which hiring
  credits over HTTP, is not there) and always with Retry-After; /health is 503 (no broker: documented);
- a request the document calls valid is never refused by request validation (the document is not stricter or
  looser than the request models; domain rules, which the document describes in words, may still refuse).

Half of the valid requests name the stage's seeded managers and tasks, so the handlers run past their lookups.
Links point at a closed port (the schema client reads schemas/ from disk, bonus and management are "down").
Budgets are small for the normal run; SERVICE_FUZZ_EXAMPLES raises them (and unpins the seed).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.python import asgi as schemathesis_asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.requests import Request
from starlette.responses import Response

from services.bonus.api import create_app as bonus_app
from services.bonus.settings import BonusSettings
from services.flags import FINAL
from services.hiring.api import create_app as hiring_app
from services.hiring.settings import HiringSettings
from services.management.api import create_app as management_app
from services.management.settings import ManagementSettings
from tests.integration.conftest import SCHEMAS
from tests.integration.stages import fetch, set_flags

pytestmark = pytest.mark.integration
NOWHERE = "http://127.0.0.1:9"
EXAMPLES = int(os.environ.get("SERVICE_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=EXAMPLES or 25, deadline=None, derandomize=not EXAMPLES, database=None,
                suppress_health_check=list(HealthCheck))
TRACE = bool(os.environ.get("SERVICE_FUZZ_TRACE"))
REFUSED_BY = "x-test-refused-by"


@dataclass
class Stage:
    service: str
    revisions: tuple[str, ...]
    flags: dict[str, Any]
    #: operations ("POST /path") that answer 503 on purpose in this stage
    unavailable: frozenset[str] = frozenset()
    #: seeded ids, by the parameter or body field that names them
    known: dict[str, list[str]] = field(default_factory=dict)


def final(service: str) -> dict[str, Any]:
    return {name: value for name, value in FINAL.items() if name.startswith(f"{service}.")}


STAGES = {
    "management-before": Stage("management", ("0001_before",), {}),
    "management-final": Stage("management", (), final("management")),
    "hiring-before": Stage("hiring", ("0001_before",), {}, frozenset(
        {"POST /tasks/{task_id}/complete", "POST /tasks/{task_id}/fail"})),
    "hiring-final": Stage("hiring", (), final("hiring")),
    "bonus-before": Stage("bonus", ("0001_before",), {}),
    "bonus-final": Stage("bonus", (), final("bonus")),
}


def build(stage: Stage, url: str) -> FastAPI:
    common: dict[str, Any] = {"database_url": url, f"{stage.service}_database_url": url, "schemas_dir": SCHEMAS,
                              "kafka_bootstrap_servers": "127.0.0.1:9", "registry_url": NOWHERE,
                              "management_url": NOWHERE, "hiring_url": NOWHERE, "bonus_url": NOWHERE,
                              "link_timeout": 0.5, "link_breaker_reset": 0.5}
    if stage.service == "management":
        return management_app(ManagementSettings(**common))
    if stage.service == "hiring":
        return hiring_app(HiringSettings(**common))
    return bonus_app(BonusSettings(**common))


async def seed(stage: Stage, url: str) -> dict[str, list[str]]:
    """A few rows the handlers can find: managers and tasks (open and finished), ledger entries, ratings."""
    managers, tasks = [uuid.uuid4() for _ in range(2)], [uuid.uuid4() for _ in range(8)]
    before = bool(stage.revisions)
    if stage.service == "management":
        for i, manager in enumerate(managers):
            if before:
                await fetch(url, "INSERT INTO managers (id, first_name, last_name, account_id) VALUES ($1, 'Ada', "
                                 "'Lovelace', $2)", manager, f"a-{i}")
            else:
                await fetch(url, "INSERT INTO managers (id, username, account_id) VALUES ($1, $2, $3)", manager,
                            f"ada.{i}", f"a-{i}")
        for task in tasks:
            await fetch(url, "INSERT INTO tasks (id, creator_id, title) VALUES ($1, $2, '[Go] Build it')", task,
                        managers[0])
    elif stage.service == "hiring":
        for i, task in enumerate(tasks):
            finished = i == 0
            await fetch(url, "INSERT INTO tasks (id, creator_id, title, status, rating) VALUES ($1, $2, "
                             "'[Go] Build it', $3, $4)", task, managers[0], "completed" if finished else "open",
                        4 if finished else None)
    else:
        if not before:
            for i, manager in enumerate(managers):
                await fetch(url, "INSERT INTO managers (id, account_id, username) VALUES ($1, $2, $3)", manager,
                            f"a-{i}", f"ada.{i}")
        for i, task in enumerate(tasks):
            await fetch(url, "INSERT INTO tasks (id, creator_id, title) VALUES ($1, $2, '[Go] Build it')", task,
                        managers[0])
            if i < 2:
                await fetch(url, "INSERT INTO ledger (manager_id, task_id, outcome, amount, rating, source, "
                                 "event_id) VALUES ($1, $2, 'completed', 12, 4, 'event', $3)", managers[0], task,
                            uuid.uuid4())
            if before and i < 2:
                await fetch(url, "INSERT INTO task_ratings (task_id, rating, event_id) VALUES ($1, 4, $2)", task,
                            uuid.uuid4())
    ids = {"manager_id": managers, "creator_id": managers, "task_id": tasks}
    return {name: [str(i) for i in values] for name, values in ids.items()}


def mark_request_validation(app: FastAPI) -> None:
    """Tag answers made by request validation, so a check can tell them from a domain rule's 422."""
    handler = app.exception_handlers[RequestValidationError]

    async def marked(request: Request, exc: Exception) -> Response:
        response: Response = await handler(request, exc)  # type: ignore[misc]
        response.headers[REFUSED_BY] = "request-validation"
        return response

    app.exception_handlers[RequestValidationError] = marked


@pytest.fixture(scope="module", params=list(STAGES))
def staged(request: pytest.FixtureRequest, make_database: Callable[..., str]) -> Iterator[tuple[Stage, FastAPI]]:
    stage = STAGES[request.param]
    url = make_database(stage.service, *stage.revisions)

    async def prepare() -> dict[str, list[str]]:
        await set_flags(url, stage.flags)
        return await seed(stage, url)

    known = asyncio.run(prepare())
    stage = Stage(stage.service, stage.revisions, stage.flags, stage.unavailable, known)
    app = build(stage, url)
    mark_request_validation(app)
    yield stage, app
    schemathesis_asgi.shutdown_lifespans()  # its portal ran the app's lifespan: close the pool and the control loop


def test_schemathesis_finds_nothing(staged: tuple[Stage, FastAPI]) -> None:
    stage, app = staged
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)

    def no_server_error(_ctx: Any, response: Any, case: schemathesis.Case) -> None:
        operation = f"{case.method.upper()} {case.path}"
        if response.status_code == 503 and (operation in stage.unavailable or case.path == "/health"):
            assert case.path == "/health" or response.headers.get("retry-after"), (operation, response.text)
            return
        assert response.status_code < 500, (operation, response.status_code, response.text[:500])

    def document_matches_the_model(_ctx: Any, response: Any, case: schemathesis.Case) -> None:
        positive = case.meta is not None and case.meta.generation.mode.is_positive
        if positive and response.status_code == 422 and response.headers.get(REFUSED_BY):
            raise AssertionError(f"the document allows what the request model refuses: {response.text[:500]}")

    checks = [status_code_conformance, content_type_conformance, response_headers_conformance,
              response_schema_conformance, negative_data_rejection, no_server_error, document_matches_the_model]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 7, [op.label for op in operations]
    for operation in operations:
        takes_input = bool(operation.path_parameters or operation.query or operation.body)
        strategy = operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
        if takes_input:
            strategy |= operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)

        @settings(FUZZ, max_examples=FUZZ.max_examples if takes_input else 2)
        @given(case=strategy, data=st.data())
        def run(case: schemathesis.Case, data: st.DataObject) -> None:
            positive = case.meta is not None and case.meta.generation.mode.is_positive
            if positive and data.draw(st.booleans(), label="name seeded rows"):
                for name in list(case.path_parameters or {}):
                    if name in stage.known:
                        case.path_parameters[name] = data.draw(st.sampled_from(stage.known[name]), label=name)
                if isinstance(case.body, dict):
                    for name in ("creator_id", "task_id"):
                        if name in case.body:
                            case.body[name] = data.draw(st.sampled_from(stage.known[name]), label=name)
            response = case.call_and_validate(checks=checks)
            if TRACE:  # SERVICE_FUZZ_TRACE=1 pytest -s: what was sent and answered
                mode = case.meta.generation.mode.name if case.meta else "?"
                print("FUZZ", stage.service, mode, case.method, case.path, response.status_code, repr(case.body)[:150],
                      response.text[:200])

        run()
