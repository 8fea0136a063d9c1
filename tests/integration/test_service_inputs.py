"""Hand-made hostile input against management, hiring and bonus, class by class, on real databases: every class
answers 4xx in the documented shape (never a 500), names the field when there is one, writes nothing, and the
service (and a kept-alive connection, over a real HTTP server) answers the next normal request.

Stages: management and bonus in seed 004's before state (bonus still takes POST /credits), hiring with the
final switches (a completion emits its events: no link needed).
"""

from __future__ import annotations

import asyncio
import json
import typing
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from eventbus.webapp import MAX_BODY_BYTES, MAX_BODY_DEPTH
from services.bonus.api import create_app as bonus_app
from services.bonus.settings import BonusSettings
from services.flags import FINAL
from services.hiring.api import create_app as hiring_app
from services.hiring.settings import HiringSettings
from services.management.api import create_app as management_app
from services.management.settings import ManagementSettings
from services.validation import is_text
from tests.integration.api_client import api, served
from tests.integration.conftest import SCHEMAS
from tests.integration.stages import count, fetch, set_flags

pytestmark = pytest.mark.integration
NOWHERE = "http://127.0.0.1:9"
DIGITS = "1" * 5000  # past Python's int() digit limit (4300)
#: what a JSON body may hold where a number goes and Python reads it as a float that JSON cannot write back
NON_FINITE = ("1e999", "-1e999", "NaN", "Infinity", "-Infinity", DIGITS + ".5")
NOT_UUIDS = ("x", "1", "%00", "%ff", "a" * 60_000, f"{uuid.UUID(int=1)}0", "00000000-0000-0000-0000-00000000000g",
             "%27%20OR%201=1%20--", "%F0%9F%92%A9", "-1", "1e999", " ")


@dataclass
class Service:
    name: str
    app: FastAPI
    url: str
    client: httpx.AsyncClient
    #: (method, path, valid body) of every route that takes a body; paths to fresh open tasks etc.
    bodies: Callable[[], Awaitable[list[tuple[str, str, dict[str, Any]]]]]
    #: every route with a path parameter, "{id}" where it goes
    paths: list[tuple[str, str]]
    #: a normal request (method, path, body) that touches the database and must succeed
    normal: Callable[[], Awaitable[tuple[str, str, dict[str, Any]]]]
    #: rows the refused requests must not have added
    written: Callable[[], Awaitable[int]]


def _settings(service: str, url: str) -> dict[str, Any]:
    return {"database_url": url, f"{service}_database_url": url, "schemas_dir": SCHEMAS,
            "kafka_bootstrap_servers": "127.0.0.1:9", "registry_url": NOWHERE, "management_url": NOWHERE,
            "hiring_url": NOWHERE, "bonus_url": NOWHERE, "link_timeout": 0.5}


async def _management(url: str) -> tuple[FastAPI, Any, Any, Any, list[tuple[str, str]]]:
    manager = uuid.uuid4()
    await fetch(url, "INSERT INTO managers (id, first_name, last_name, account_id) VALUES ($1, 'A', 'B', 'a')",
                manager)

    async def bodies() -> list[tuple[str, str, dict[str, Any]]]:
        return [("POST", "/managers", {"first_name": "Ada", "last_name": "Lovelace", "account_id": "a-1",
                                       "username": "ada"}),
                ("POST", "/tasks", {"creator_id": str(manager), "title": "[Go] Build it", "knowledge_area": None})]

    async def normal() -> tuple[str, str, dict[str, Any]]:
        return "POST", "/managers", {"first_name": "Ada", "last_name": "L", "account_id": "a"}

    async def written() -> int:
        return await count(url, "SELECT (SELECT count(*) FROM managers) + (SELECT count(*) FROM tasks) + "
                                "(SELECT count(*) FROM outbox)")

    app = management_app(ManagementSettings(**_settings("management", url)))
    return app, bodies, normal, written, [("GET", "/managers/{id}"), ("GET", "/tasks/{id}")]


async def _hiring(url: str) -> tuple[FastAPI, Any, Any, Any, list[tuple[str, str]]]:
    async def open_task() -> str:
        task = uuid.uuid4()
        await fetch(url, "INSERT INTO tasks (id, creator_id, title) VALUES ($1, $2, '[Go] x')", task, uuid.uuid4())
        return str(task)

    async def bodies() -> list[tuple[str, str, dict[str, Any]]]:
        return [("POST", f"/tasks/{await open_task()}/complete", {"candidate_id": str(uuid.uuid4()), "rating": 4}),
                ("POST", f"/tasks/{await open_task()}/fail", {"candidate_id": str(uuid.uuid4()), "rating": None})]

    async def normal() -> tuple[str, str, dict[str, Any]]:
        return "POST", f"/tasks/{await open_task()}/complete", {"candidate_id": str(uuid.uuid4())}

    async def written() -> int:
        return await count(url, "SELECT (SELECT count(*) FROM tasks WHERE status <> 'open') + "
                                "(SELECT count(*) FROM outbox)")

    app = hiring_app(HiringSettings(**_settings("hiring", url)))
    return app, bodies, normal, written, [("POST", "/tasks/{id}/complete"), ("POST", "/tasks/{id}/fail"),
                                          ("GET", "/tasks/{id}"), ("GET", "/tasks/{id}/rating")]


async def _bonus(url: str) -> tuple[FastAPI, Any, Any, Any, list[tuple[str, str]]]:
    def credit() -> dict[str, Any]:
        return {"task_id": str(uuid.uuid4()), "creator_id": str(uuid.uuid4()), "candidate_id": str(uuid.uuid4()),
                "outcome": "completed", "rating": 4}

    async def bodies() -> list[tuple[str, str, dict[str, Any]]]:
        return [("POST", "/credits", credit())]

    async def normal() -> tuple[str, str, dict[str, Any]]:
        return "POST", "/credits", credit()

    async def written() -> int:
        return await count(url, "SELECT count(*) FROM ledger")

    app = bonus_app(BonusSettings(**_settings("bonus", url)))
    return app, bodies, normal, written, [("GET", "/managers/{id}/balance"), ("GET", "/managers/{id}/ledger"),
                                          ("GET", "/tasks/{id}")]


STAGES: dict[str, tuple[tuple[str, ...], dict[str, Any], Any]] = {
    "management": (("0001_before",), {}, _management),
    "hiring": ((), {k: v for k, v in FINAL.items() if k.startswith("hiring.")}, _hiring),
    "bonus": (("0001_before",), {}, _bonus),
}


@pytest.fixture(scope="module", params=list(STAGES))
async def service(request: pytest.FixtureRequest, make_database: Callable[..., str]) -> AsyncIterator[Service]:
    revisions, flags, make = STAGES[request.param]
    url = await asyncio.to_thread(make_database, request.param, *revisions)
    await set_flags(url, flags)
    app, bodies, normal, written, paths = await make(url)
    async with api(app) as client:
        yield Service(request.param, app, url, client, bodies, paths, normal, written)


async def still_fine(service: Service, before: int) -> None:
    """Nothing was written by what was refused, and the next normal request succeeds."""
    assert await service.written() == before, "a refused request wrote something"
    method, path, body = await service.normal()
    response = await service.client.request(method, path, json=body)
    assert response.status_code in (200, 201), response.text


def refused(response: httpx.Response, status: int, loc: list[Any] | None = None, *words: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"] == "application/json", response.headers
    assert len(response.content) < 4000, "the answer echoes too much of the input"
    body: dict[str, Any] = response.json()
    if status == 422:
        assert loc is None or loc in [d["loc"] for d in body["detail"]], body
        text = json.dumps(body)
        for word in words:
            assert word in text, (word, body)
    return body


def raw(body: dict[str, Any], **replaced: str) -> bytes:
    """`body` as JSON text, with the fields in `replaced` written as the given raw JSON."""
    parts = [f"{json.dumps(k)}: {replaced.pop(k) if k in replaced else json.dumps(v)}" for k, v in body.items()]
    parts += [f"{json.dumps(k)}: {v}" for k, v in replaced.items()]
    return ("{" + ", ".join(parts) + "}").encode()


async def send(service: Service, method: str, path: str, content: bytes) -> httpx.Response:
    return await service.client.request(method, path, content=content, headers={"content-type": "application/json"})


# -- the request models --------------------------------------------------------------------------------------------
def _strings(annotation: Any) -> bool:
    """Does `annotation` let a free-form str through (not a Literal, enum, UUID or number)?"""
    if annotation is str:
        return True
    if typing.get_origin(annotation) is typing.Literal:
        return False
    return any(_strings(a) for a in typing.get_args(annotation) if not isinstance(a, str | int))


def api_routes(routes: list[Any]) -> list[APIRoute]:
    """Every APIRoute, included routers' too (FastAPI 0.165 keeps them behind the router that included them)."""
    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            found += api_routes(route.original_router.routes)
    return found


def test_every_string_field_of_every_request_model_is_text() -> None:
    apps = [management_app(ManagementSettings(database_url=NOWHERE)),
            hiring_app(HiringSettings(database_url=NOWHERE)), bonus_app(BonusSettings(database_url=NOWHERE))]
    checked = []
    for app in apps:
        for route in api_routes(app.routes):
            for param in [*route.dependant.path_params, *route.dependant.query_params]:
                assert not _strings(param.field_info.annotation) or is_text(param.field_info.annotation), \
                    (route.path, param.name)
            if route.body_field is None:
                continue
            model = route.body_field.field_info.annotation
            for name, field in model.model_fields.items():
                if _strings(field.annotation):
                    annotated = field.rebuild_annotation()  # with the metadata pydantic took off `Text`
                    assert is_text(annotated), (app.title, route.path, name, annotated)
                    checked.append(name)
    assert sorted(checked) == ["account_id", "first_name", "knowledge_area", "last_name", "title", "username"]


# -- text a column cannot hold ------------------------------------------------------------------------------------
async def test_nul_and_a_lone_surrogate_in_every_string_field(service: Service) -> None:
    before = await service.written()
    hits = 0
    for method, path, body in await service.bodies():
        for field, value in body.items():
            if not isinstance(value, str) or (field.endswith("_id") and field != "account_id"):
                continue
            for bad in (json.dumps(value[:1] + "\x00" + value[1:]), '"a\\ud800b"', '"\\udc00"'):
                response = await send(service, method, path, raw(body, **{field: bad}))
                [issue] = refused(response, 422, ["body", field])["detail"]
                # NUL: Text's rule; a lone surrogate: pydantic refuses it before Text's rule; outcome: a Literal
                assert ("NUL" in issue["msg"] or "surrogate" in issue["msg"]
                        or issue["type"] in ("string_unicode", "literal_error")), issue
                hits += 1
    assert hits or service.name == "hiring"  # hiring takes ids and a rating only
    await still_fine(service, before)


async def test_nul_and_a_lone_surrogate_in_paths_and_ids(service: Service) -> None:
    before = await service.written()
    for method, template in service.paths:
        for bad in ("%00", "ab%00cd", f"{uuid.uuid4()}%00"):
            response = await service.client.request(method, template.replace("{id}", bad), json={})
            refused(response, 422, ["path", "task_id" if "/tasks/" in template else "manager_id"])
        status, answer = await raw_asgi(service.app, method, template.replace("{id}", "bad\ud800id"))
        assert status == 422 and answer["detail"][0]["loc"][0] == "path", answer
    for method, path, body in await service.bodies():
        for field in [f for f in body if f.endswith("_id") and f != "account_id"]:
            for bad in ('"\\u0000"', '"\\ud800"', json.dumps(str(uuid.uuid4()) + "\x00")):
                refused(await send(service, method, path, raw(body, **{field: bad})), 422, ["body", field])
    await still_fine(service, before)


async def raw_asgi(app: FastAPI, method: str, path: str) -> tuple[int, Any]:
    """A request whose path holds a lone surrogate (no HTTP client can send one; an ASGI server might)."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send_(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode("utf-8", "surrogatepass"), "root_path": "", "query_string": b"",
             "headers": [(b"host", b"test"), (b"content-type", b"application/json")], "client": ("127.0.0.1", 1),
             "server": ("test", 80), "state": {}}
    await app(scope, receive, send_)
    return sent[0]["status"], json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


# -- integers ------------------------------------------------------------------------------------------------------
async def test_integers_a_column_cannot_hold(service: Service) -> None:
    """Ratings are SMALLINT columns; bonus's ledger `limit` goes to SQL's LIMIT (a BIGINT)."""
    before = await service.written()
    for method, path, body in await service.bodies():
        if "rating" not in body:
            continue
        for bad in (2**15, 2**31, 2**63, 2**64, -(2**63) - 1, 6, 0, -1, True):
            if path.endswith("/fail") and bad is True:
                continue
            refused(await send(service, method, path, raw(body, rating=json.dumps(bad))), 422, ["body", "rating"])
    if service.name == "bonus":
        for bad in (str(2**31), str(2**63), str(2**64), DIGITS, "0", "-1", "1001", "1.5", "１", "1e3", "0x10"):
            response = await service.client.get(f"/managers/{uuid.uuid4()}/ledger?limit={bad}")
            refused(response, 422, ["query", "limit"])
    await still_fine(service, before)


async def test_integers_of_thousands_of_digits_in_every_json_body(service: Service) -> None:
    before = await service.written()
    for method, path, body in await service.bodies():
        for where in (*body, "extra"):
            for number in (DIGITS, "-" + DIGITS, f"[{DIGITS}]", f'{{"a": {DIGITS}}}'):
                response = await send(service, method, path, raw(body, **{where: number}))
                refused(response, 422, ["body"], "more than 4300 digits")
    await still_fine(service, before)


async def test_numbers_json_cannot_write_back(service: Service) -> None:
    """1e999 reads as inf and NaN as nan: a 422 that echoed them could not be written (it was a 500)."""
    before = await service.written()
    for method, path, body in await service.bodies():
        for field in body:
            if field == "username":  # management's before state: the username is optional and not stored
                continue
            for number in NON_FINITE:
                response = await send(service, method, path, raw(body, **{field: number}))
                answer = refused(response, 422, ["body", field])
                assert any(d.get("input") in ("inf", "-inf", "nan") for d in answer["detail"]), answer
    await still_fine(service, before)


# -- bodies that are not JSON, nested too deeply, or too large -------------------------------------------------
async def test_bodies_that_are_not_json_or_not_utf8(service: Service) -> None:
    before = await service.written()
    for method, path, _ in await service.bodies():
        for content in (b"\xff\xfe\x00", b'{"a": "\xff"}', b"", b"{", b"nul\x00", b"[]", b'"text"', b"null", b"1",
                        b'{"a": 1}' * 3, b"\xef\xbb\xbf{}", b'{"a": "\\ud800"}'):
            refused(await send(service, method, path, content), 422, None)
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                             "application/json; charset=latin-1", "application/vnd.x+json"):
            response = await service.client.request(method, path, content=b"{}", headers={"content-type": content_type})
            refused(response, 422, None)
        refused(await service.client.request(method, path), 422, ["body"])
    await still_fine(service, before)


def deep(depth: int, kind: str) -> str:
    return "[" * depth + "]" * depth if kind == "array" else '{"a": ' * depth + "1" + "}" * depth


async def test_json_nested_thousands_of_levels_in_every_body(service: Service) -> None:
    before = await service.written()
    for method, path, body in await service.bodies():
        for depth in (MAX_BODY_DEPTH + 1, 5000, 100_000):
            for kind in ("array", "object"):
                for content in (deep(depth, kind).encode(), raw(body, extra=deep(depth, kind))):
                    answer = refused(await send(service, method, path, content), 422, ["body"])
                    assert answer["detail"][0]["type"] == "value_error.json_depth", answer
    await still_fine(service, before)
    for method, path, body in await service.bodies():  # brackets in strings are text: they reach the model
        text = raw(body, extra=json.dumps("[" * 5000 + "{" * 5000))
        assert (await send(service, method, path, text)).status_code in (200, 201), path


async def test_a_body_over_one_mb_is_413(service: Service) -> None:
    before = await service.written()
    for method, path, body in await service.bodies():
        padding = MAX_BODY_BYTES + 1 - len(raw(body, extra='""'))
        over = raw(body, extra=json.dumps("x" * padding))
        assert len(over) == MAX_BODY_BYTES + 1
        answer = refused(await send(service, method, path, over), 413)
        assert str(MAX_BODY_BYTES) in answer["detail"]

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the guard counts what arrives
            for _ in range(40):
                yield b" " * 65536

        response = await service.client.request(method, path, content=chunks(),
                                                headers={"content-type": "application/json"})
        refused(response, 413)
    await still_fine(service, before)
    for method, path, body in await service.bodies():  # exactly the limit: read
        exactly = raw(body, extra=json.dumps("x" * (MAX_BODY_BYTES - len(raw(body, extra='""')))))
        assert len(exactly) == MAX_BODY_BYTES
        assert (await send(service, method, path, exactly)).status_code in (200, 201), path


# -- path parameters -----------------------------------------------------------------------------------------------
async def test_path_parameters_that_are_not_uuids_or_are_huge(service: Service) -> None:
    before = await service.written()
    bodies = {method_path[0]: method_path[2] for method_path in await service.bodies()}
    for method, template in service.paths:
        name = "task_id" if "/tasks/" in template else "manager_id"
        for bad in NOT_UUIDS:
            response = await service.client.request(method, template.replace("{id}", bad),
                                                    json=bodies.get(method) if method == "POST" else None)
            refused(response, 422, ["path", name])
        for unknown in (uuid.uuid4().hex, str(uuid.uuid4()).upper(), "{" + str(uuid.uuid4()) + "}"):
            response = await service.client.request(method, template.replace("{id}", unknown),
                                                    json=bodies.get(method) if method == "POST" else None)
            # pydantic reads these forms of a UUID too: unknown (404), or a stub while management is down
            assert response.status_code in (200, 404), (template, unknown, response.text[:300])
    await still_fine(service, before)


# -- the same connection, over a real HTTP server --------------------------------------------------------------
async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str, path: str,
                    body: bytes) -> tuple[int, bytes]:
    head = (f"{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    writer.write(head + body)
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    assert status_line, "the server closed the connection"
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
        assert not (name.lower() == "connection" and "close" in value.lower()), "the server closes the connection"
    return int(status_line.split()[1]), await reader.readexactly(length)


async def test_one_kept_alive_connection_survives_every_class(service: Service) -> None:
    async with served(service.app) as url:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            method, path, body = (await service.bodies())[0]
            field = next(f for f, v in body.items() if isinstance(v, str))
            hostile = [
                (method, path, raw(body, extra=json.dumps("x" * 2 * MAX_BODY_BYTES)), 413),
                (method, path, deep(5000, "array").encode(), 422),
                (method, path, raw(body, extra=deep(100_000, "object")), 422),
                (method, path, raw(body, extra=DIGITS), 422),
                (method, path, raw(body, extra="1e999", **{field: "1e999"}), 422),
                (method, path, b'{"a": "\xff"}', 422),
                (method, path, raw(body, **{field: '"\\u0000"'}), 422),
                (method, path, raw(body, **{field: '"\\ud800"'}), 422),
                ("GET", service.paths[-1][1].replace("{id}", "a" * 50_000), b"", 422),
            ]
            for hostile_method, hostile_path, content, status in hostile:
                got, answer = await _exchange(reader, writer, hostile_method, hostile_path, content)
                assert got == status, (hostile_path[:80], content[:80], got, answer[:300])
                normal_method, normal_path, normal_body = await service.normal()
                got, answer = await _exchange(reader, writer, normal_method, normal_path,
                                              json.dumps(normal_body).encode())
                assert got in (200, 201), answer[:300]
        finally:
            writer.close()


# -- a dependency's answer is input too ---------------------------------------------------------------------------
async def test_bonus_reads_a_rating_from_a_garbled_answer_as_its_fallback(make_database: Callable[..., str]) -> None:
    """COMM-060 after: bonus asks hiring for a task's rating. An answer that is not a rating (a proxy's page, another
    shape, a rating out of range) is the fallback (null, stale), as when hiring is down, not a 500."""
    url = await asyncio.to_thread(make_database, "bonus")
    await set_flags(url, {k: v for k, v in FINAL.items() if k.startswith("bonus.")})
    task = uuid.uuid4()
    await fetch(url, "INSERT INTO tasks (id, creator_id, title, knowledge_area) VALUES ($1, $2, 'x', 'Go')", task,
                uuid.uuid4())
    answers: list[Response] = [Response(b"<html>bad gateway</html>", 200, media_type="text/html"),
                               Response(b"\xff\xfe", 200, media_type="application/json"),
                               JSONResponse([1, 2]), JSONResponse({"rating": "five"}), JSONResponse({"rating": 99999}),
                               JSONResponse({"rating": True}), JSONResponse({"rating": 4})]
    fake = FastAPI()

    @fake.get("/tasks/{task_id}/rating")
    async def rating(_request: Request) -> Response:
        return answers.pop(0)

    async with served(fake) as hiring_url:
        settings = {**_settings("bonus", url), "hiring_url": hiring_url, "link_breaker_threshold": 100}
        async with api(bonus_app(BonusSettings(**settings))) as client:
            shown = [(await client.get(f"/tasks/{task}")) for _ in range(7)]
    assert [r.status_code for r in shown] == [200] * 7, [r.text for r in shown]
    assert [(r.json()["rating"], r.json()["rating_source"], r.json()["stale"]) for r in shown] == [
        (None, "fallback", True)] * 6 + [(4, "hiring", False)]
