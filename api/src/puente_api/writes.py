"""The two idempotent writes, ``POST /v1/shipments`` and ``POST /v1/shipments/{id}/events``.

:func:`create_shipment` and :func:`add_event` are the endpoints themselves: the Idempotency-Key check
in the order the draft gives it (key before body), the body parsed and validated by pydantic-core
straight from the bytes, and the idempotency core around the shipments SQL, all on behalf of the client
the edge authenticated (its key's client id scopes the idempotency key and the shipment).

:class:`WriteRoutes` serves them as plain ASGI, in front of FastAPI: a write is the request a site
takes most of and the one whose cost the benchmark compares with the database's, and FastAPI's
middleware stack, router and response classes cost more CPU than the endpoint itself. Every other
request goes to FastAPI. The FastAPI routes of the two writes stay declared (app.py, routes.py), call
the same functions, and keep describing them in /openapi.json; the answers are the same either way
(status, headers, body), errors included: a :class:`~puente_api.problems.Problem` or a database
outage becomes the problem+json the FastAPI handlers would have sent, anything else reaches the edge
middleware's 500 handler.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.types import Receive, Scope, Send

from puente_api import auth, idempotency, shipments
from puente_api.idempotency import REPLAY_HEADER, Outcome
from puente_api.models import EventCreate, ShipmentCreate
from puente_api.problems import (
    DATABASE_ERRORS,
    PROBLEM_JSON,
    Problem,
    from_database_error,
    validation_problem,
)
from puente_api.state import AppState


@dataclass
class _TestHooks:
    """Pauses inside a write's transaction / after its COMMIT, so a test can ``kill -9`` the process there.
    No setting, environment variable or request reaches them: only code running in the API's own process
    sets them (tests/api/hooked_api.py, the tests' launcher), so production cannot switch them on."""

    pause_after_lock: float = 0.0
    pause_after_commit: float = 0.0


TEST_HOOKS = _TestHooks()

CREATE_PATH = "/v1/shipments"
EVENTS_PATH = "/v1/shipments/{shipment_id}/events"
_EVENTS = re.compile(r"^/v1/shipments/([^/]+)/events$")
_UUID = TypeAdapter(UUID)
M = TypeVar("M", bound=BaseModel)
# The request body, read when the endpoint needs it (after the headers were found acceptable).
Body = Callable[[], Awaitable[bytes]]

log = logging.getLogger("puente_api.problems")  # where FastAPI's database-error handler logs too


def _one_key(keys: list[str]) -> str:
    if len(keys) > 1:
        raise Problem(
            400,
            "idempotency-key-malformed",
            "Send exactly one Idempotency-Key header.",
            title="Idempotency-Key is malformed",
        )
    return idempotency.parse_key(keys[0] if keys else None)


async def parse_body(model: type[M], body: Body) -> tuple[M, Any]:
    """The validated model and the request as the client sent it (its JSON, parsed): the idempotency
    fingerprint is taken from the latter, so it does not change when a release adds a field with a
    default or normalises a value differently (a retry landing on the other site mid-deploy still
    matches)."""
    raw = await body()
    try:
        model_value = model.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_problem(exc.errors(include_url=False), prefix=("body",)) from None
    return model_value, json.loads(raw)  # valid JSON: the model just parsed it


def parse_shipment_id(raw: str) -> UUID:
    """The path parameter, parsed (and refused) as FastAPI parses a ``UUID`` path parameter."""
    try:
        return _UUID.validate_python(raw)
    except ValidationError as exc:
        raise validation_problem(exc.errors(include_url=False), prefix=("path", "shipment_id")) from None


async def create_shipment(st: AppState, keys: list[str], client: str, body: Body, path: str) -> Outcome:
    key = _one_key(keys)
    shipment, sent = await parse_body(ShipmentCreate, body)
    doc = shipment.model_dump(mode="json")
    scope = idempotency.Scope(client, key, "POST", path, idempotency.fingerprint("POST", path, sent))
    return await idempotency.execute_gated(
        st.pool,
        scope,
        lambda: shipments.create(client, doc),
        st.settings.idempotency_ttl_seconds,
        TEST_HOOKS.pause_after_lock,
        TEST_HOOKS.pause_after_commit,
    )


async def add_event(
    st: AppState, shipment_id: UUID, keys: list[str], client: str, body: Body, path: str
) -> Outcome:
    key = _one_key(keys)
    payload, sent = await parse_body(EventCreate, body)
    scope = idempotency.Scope(client, key, "POST", path, idempotency.fingerprint("POST", path, sent))
    return await idempotency.execute(
        st.pool,
        scope,
        lambda tx: shipments.add_event(tx, client, shipment_id, payload, path),
        st.settings.idempotency_ttl_seconds,
        TEST_HOOKS.pause_after_lock,
        TEST_HOOKS.pause_after_commit,
    )


def response_headers(outcome: Outcome) -> dict[str, str]:
    headers = dict(outcome.response.headers)
    if outcome.replayed:
        headers[REPLAY_HEADER] = "true"
    return headers


class _ClientGone(Exception):
    pass


@dataclass(frozen=True)
class _Route:
    """What edge.Edge reads of ``scope["route"]`` (as Starlette sets it): the path template, the
    route label of the request metrics."""

    path: str


_CREATE_ROUTE = _Route(CREATE_PATH)
_EVENTS_ROUTE = _Route(EVENTS_PATH)


class WriteRoutes:
    """ASGI: the two writes served directly, everything else by ``app`` (the FastAPI application,
    whose lifespan provides ``app.state.puente``)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            if path == CREATE_PATH:
                scope["route"] = _CREATE_ROUTE
                await self._serve(scope, receive, send, None)
                return
            match = _EVENTS.match(path)
            if match:
                scope["route"] = _EVENTS_ROUTE
                await self._serve(scope, receive, send, match.group(1))
                return
        await self.app(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, shipment_id: str | None) -> None:
        path: str = scope["path"]
        keys = [value.decode("latin-1") for name, value in scope["headers"] if name == b"idempotency-key"]
        client = auth.identity(scope).client_id
        st: AppState = self.app.state.puente

        async def body() -> bytes:
            return await _body(receive)

        try:
            if shipment_id is None:
                outcome = await create_shipment(st, keys, client, body, path)
            else:
                sid = parse_shipment_id(shipment_id)
                outcome = await add_event(st, sid, keys, client, body, path)
        except Problem as problem:
            await _send(send, problem.status, problem.headers, problem.body(path), PROBLEM_JSON)
        except DATABASE_ERRORS as exc:
            log.warning("database unavailable: %s: %s", type(exc).__name__, exc)
            outage = from_database_error(exc)
            await _send(send, outage.status, outage.headers, outage.body(path), PROBLEM_JSON)
        except _ClientGone:
            return
        else:
            stored = outcome.response
            await _send(send, stored.status, response_headers(outcome), stored.body, stored.media_type)


async def _body(receive: Receive) -> bytes:
    """The whole request body (edge.Edge's receive refuses one over the size limit)."""
    message = await receive()
    if message["type"] == "http.disconnect":
        raise _ClientGone
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    chunks = [body]
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(send: Send, status: int, headers: dict[str, str], body: bytes, media_type: str) -> None:
    """The response as starlette.responses.Response sends it: the endpoint's headers, then
    content-length and content-type."""
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode("latin-1")))
    raw.append((b"content-type", media_type.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
