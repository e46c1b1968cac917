"""The idempotent writes have two ways in: ``writes.WriteRoutes`` (plain ASGI, what the server runs) and
the FastAPI routes that declare them in the OpenAPI document. Both must answer alike, byte for byte
once ids and timestamps are set aside: same status, headers and body, errors included."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import httpx
import orjson
from api_helpers import Caller, make_caller, shipment_body
from puente_api import app as app_mod
from puente_api import db
from puente_api.app import create_app
from puente_api.edge import Edge
from puente_api.readiness import Readiness
from puente_api.settings import Settings
from puente_api.state import AppState
from puente_api.writes import WriteRoutes

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)")
# What is left in the client's rate-limit bucket depends on the time between requests, not on the route
_RATELIMIT = re.compile(r";r=\d+;t=\d+")
_EVENT = {"type": "delivered", "occurred_at": "2026-01-02T08:00:00Z"}


def _normal(text: str) -> str:
    return _RATELIMIT.sub(";r=<n>;t=<n>", _TIMESTAMP.sub("<ts>", _UUID.sub("<uuid>", text)))


async def _battery(app: Any, caller: Caller) -> list[tuple[str, int, list[tuple[str, str]], str]]:
    """The same requests, on idempotency keys of their own (the caller, a client with its own API key,
    differs per way in)."""
    answers = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:

        async def post(name: str, path: str, body: object, key: str | None) -> httpx.Response:
            headers = {
                **caller.auth,
                "X-Request-ID": f"req-{name}",
                "Content-Type": "application/json",
            }
            if key:
                headers["Idempotency-Key"] = f'"{key}"'
            content = body if isinstance(body, bytes) else orjson.dumps(body)
            r = await c.post(path, content=content, headers=headers)
            raw = [(k.decode(), _normal(v.decode())) for k, v in r.headers.raw]
            answers.append((name, r.status_code, raw, _normal(r.text)))
            return r

        sid = (await post("create", "/v1/shipments", shipment_body(), "key-one-1")).json()["id"]
        events = f"/v1/shipments/{sid}/events"
        await post("replay", "/v1/shipments", shipment_body(), "key-one-1")
        await post("reused", "/v1/shipments", shipment_body(weight=5), "key-one-1")
        await post("no-key", "/v1/shipments", shipment_body(), None)
        await post("short-key", "/v1/shipments", shipment_body(), "short")
        await post("malformed", "/v1/shipments", b"{nope", "key-two-2")
        await post("invalid", "/v1/shipments", shipment_body(weight=-1), "key-three")
        await post("event-bad-id", "/v1/shipments/nope/events", _EVENT, "key-four")
        await post("event-unknown", f"/v1/shipments/{uuid.UUID(int=1)}/events", _EVENT, "key-five-5")
        await post("event", events, _EVENT, "key-six-6")
        await post("event-replay", events, _EVENT, "key-six-6")
        await post("closed", events, {**_EVENT, "type": "returned"}, "key-seven")
    return answers


def test_write_routes_answer_as_the_fastapi_routes_do(settings: Settings) -> None:
    callers = {way: make_caller(settings) for way in ("asgi", "fastapi")}

    async def both() -> dict[str, list[tuple[str, int, list[tuple[str, str]], str]]]:
        served = create_app(settings, configure_logging=False)
        assert isinstance(served, Edge) and isinstance(served.app, WriteRoutes)
        fastapi_app = served.app.app
        pool = db.make_pool(settings)
        await pool.open(wait=True)
        readiness = Readiness(settings, pool, pool)
        fastapi_app.state.puente = AppState(settings, pool, readiness, pool)  # what the lifespan sets
        try:
            return {
                "asgi": await _battery(served, callers["asgi"]),
                "fastapi": await _battery(
                    app_mod.edge(fastapi_app, fastapi_app, settings), callers["fastapi"]
                ),
            }
        finally:
            readiness.close()
            await pool.close()

    answers = asyncio.run(both())
    assert [a[:2] for a in answers["asgi"]] == [
        ("create", 201),
        ("replay", 201),
        ("reused", 422),
        ("no-key", 400),
        ("short-key", 400),
        ("malformed", 400),
        ("invalid", 422),
        ("event-bad-id", 422),
        ("event-unknown", 404),
        ("event", 201),
        ("event-replay", 201),
        ("closed", 409),
    ]
    assert answers["asgi"] == answers["fastapi"]
