"""The edge middleware and problem handlers in-process: even a bug answers problem+json."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI
from puente_api import problems
from puente_api.edge import Edge


def broken_app() -> Edge:
    app = FastAPI()
    problems.install(app)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    return Edge(app, max_body_bytes=1024)


def get(path: str) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=broken_app(), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            return await c.get(path, headers={"X-Request-ID": "bug-1"})

    return asyncio.run(call())


def test_unexpected_exception_is_a_500_problem_with_the_request_id() -> None:
    r = get("/boom")
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("/internal")
    assert r.headers["x-request-id"] == "bug-1"
    assert "a bug" not in r.text  # no internals leak to the client
