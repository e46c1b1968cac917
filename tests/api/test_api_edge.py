"""The edge middleware and problem handlers in-process: even a bug answers problem+json, and the
authentication and rate limit in front of everything, with a clock the test moves (no waiting)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI, Request
from puente_api import apikeys, auth, problems
from puente_api.auth import Authenticator, Identity
from puente_api.edge import Edge
from puente_api.ratelimit import RateLimiter

TOKEN = "pk_Key00001_" + "s" * 43
ALICE = Identity("alice", "Key00001")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Keys:
    """A stand-in for the api_keys table: token hash -> identity, and how often it was asked."""

    def __init__(self) -> None:
        self.valid = {apikeys.digest(TOKEN.encode()): ALICE}
        self.lookups = 0

    async def __call__(self, token_sha256: bytes) -> Identity | None:
        self.lookups += 1
        await asyncio.sleep(0)  # a real look-up yields to other requests
        return self.valid.get(token_sha256)


def broken_app() -> FastAPI:
    app = FastAPI()
    problems.install(app)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    @app.get("/whoami")
    async def whoami(request: Request) -> dict[str, str]:
        return {"client_id": auth.identity(request.scope).client_id}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    return app


def edge(keys: Keys | None = None, clock: Clock | None = None, limiter: RateLimiter | None = None) -> Edge:
    clock = clock or Clock()
    return Edge(broken_app(), 1024, Authenticator(keys or Keys(), clock=clock), limiter)


def call(app: Edge, requests: list[tuple[str, dict[str, str]]], between: Callable[[], None] | None = None):  # type: ignore[no-untyped-def]
    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        out = []
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            for path, headers in requests:
                out.append(await c.get(path, headers={"X-Request-ID": "bug-1", **headers}))
                if between:
                    between()
        return out

    return asyncio.run(run())


BEARER = {"Authorization": f"Bearer {TOKEN}"}


def test_unexpected_exception_is_a_500_problem_with_the_request_id() -> None:
    (r,) = call(edge(), [("/boom", BEARER)])
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("/internal")
    assert r.headers["x-request-id"] == "bug-1"
    assert "a bug" not in r.text  # no internals leak to the client


@pytest.mark.parametrize(
    ("headers", "slug", "challenge"),
    [
        ({}, "authentication-required", 'Bearer realm="puente"'),
        ({"Authorization": "Basic YWxpY2U6c2VjcmV0"}, "authentication-required", 'Bearer realm="puente"'),
        ({"Authorization": "Bearer"}, "invalid-api-key", 'Bearer realm="puente", error="invalid_token"'),
        (
            {"Authorization": "Bearer not-a-key"},
            "invalid-api-key",
            'Bearer realm="puente", error="invalid_token"',
        ),
        (
            {"Authorization": "Bearer pk_Key00001_" + "x" * 43},  # well-formed, unknown
            "invalid-api-key",
            'Bearer realm="puente", error="invalid_token"',
        ),
    ],
)
def test_no_or_a_bad_key_is_401_before_any_route(headers: dict[str, str], slug: str, challenge: str) -> None:
    (r,) = call(edge(), [("/boom", headers)])  # the route would answer 500: it is never reached
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"] == challenge
    assert r.headers["x-request-id"] == "bug-1"
    assert r.json()["type"].endswith(f"/{slug}") and r.json()["status"] == 401


def test_the_scheme_is_case_insensitive_and_the_identity_is_the_keys() -> None:
    (r,) = call(edge(), [("/whoami", {"Authorization": f"bEaReR {TOKEN}", "X-Client-Id": "mallory"})])
    assert r.status_code == 200 and r.json() == {"client_id": "alice"}


def test_two_authorization_headers_are_refused() -> None:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=edge())
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            return await c.get("/whoami", headers=[("Authorization", f"Bearer {TOKEN}")] * 2)

    r = asyncio.run(run())
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]


def test_open_paths_need_no_key() -> None:
    (r,) = call(edge(), [("/healthz", {})])
    assert r.status_code == 200 and "ratelimit" not in r.headers


def test_a_key_is_looked_up_once_per_ttl_and_a_revoked_one_is_refused_after_it() -> None:
    keys, clock = Keys(), Clock()
    app = edge(keys, clock)
    assert [r.status_code for r in call(app, [("/whoami", BEARER)] * 5)] == [200] * 5
    assert keys.lookups == 1  # the cache answered the other four
    keys.valid.clear()  # revoked in the database
    clock.now += auth.CACHE_TTL_SECONDS - 0.01
    assert call(app, [("/whoami", BEARER)])[0].status_code == 200  # still cached: at most the TTL
    clock.now += 0.02
    assert call(app, [("/whoami", BEARER)])[0].status_code == 401  # past the TTL: asked again, refused
    assert keys.lookups == 2


def test_an_unknown_key_is_remembered_shortly() -> None:
    keys, clock = Keys(), Clock()
    app = edge(keys, clock)
    new = "pk_Key00002_" + "n" * 43
    assert call(app, [("/whoami", {"Authorization": f"Bearer {new}"})] * 3)[-1].status_code == 401
    assert keys.lookups == 1
    keys.valid[apikeys.digest(new.encode())] = Identity("bob", "Key00002")  # created just now
    clock.now += auth.NEGATIVE_CACHE_TTL_SECONDS + 0.01
    (r,) = call(app, [("/whoami", {"Authorization": f"Bearer {new}"})])
    assert r.status_code == 200 and r.json() == {"client_id": "bob"}


def test_concurrent_requests_share_one_lookup() -> None:
    keys = Keys()
    app = edge(keys)

    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            answers = await asyncio.gather(*(c.get("/whoami", headers=BEARER) for _ in range(20)))
        return [r.status_code for r in answers]

    assert asyncio.run(run()) == [200] * 20
    assert keys.lookups == 1


def test_the_rate_limit_is_a_token_bucket_per_client_with_ratelimit_headers() -> None:
    clock = Clock()
    app = edge(clock=clock, limiter=RateLimiter(per_second=2, burst=3, clock=clock))
    first = call(app, [("/whoami", BEARER)] * 4)
    assert [r.status_code for r in first] == [200, 200, 200, 429]
    assert first[0].headers["ratelimit-policy"] == '"default";q=4;w=2'
    assert [r.headers["ratelimit"] for r in first] == [
        '"default";r=2;t=1',
        '"default";r=1;t=1',
        '"default";r=0;t=2',
        '"default";r=0;t=1',
    ]
    refused = first[-1]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["type"].endswith("/rate-limited") and refused.json()["violated-policies"] == [
        "default"
    ]
    clock.now += 0.5  # one more request's worth refilled
    assert [r.status_code for r in call(app, [("/whoami", BEARER)] * 2)] == [200, 429]


def test_rate_limits_are_per_client() -> None:
    clock, keys = Clock(), Keys()
    bob = "pk_Key00002_" + "b" * 43
    keys.valid[apikeys.digest(bob.encode())] = Identity("bob", "Key00002")
    app = edge(keys, clock, RateLimiter(per_second=1, burst=1, clock=clock))
    answers = call(
        app, [("/whoami", BEARER), ("/whoami", BEARER), ("/whoami", {"Authorization": f"Bearer {bob}"})]
    )
    assert [r.status_code for r in answers] == [200, 429, 200]
