"""The ASGI application: ``create_app()`` is what ``puente-api serve`` hands to uvicorn."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from pydantic.json_schema import models_json_schema
from starlette.types import ASGIApp

import puente_api
from puente_api import auth, db, logs, problems
from puente_api import settings as settings_mod
from puente_api.edge import Edge
from puente_api.idempotency import REPLAY_HEADER
from puente_api.models import ProblemDocument
from puente_api.ratelimit import RateLimiter
from puente_api.readiness import Readiness
from puente_api.routes import WRITE_BODIES, router
from puente_api.settings import Settings
from puente_api.state import AppState
from puente_api.writes import WriteRoutes

log = logging.getLogger("puente_api.app")


def _without_defaults(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_defaults(v) for k, v in node.items() if k != "default"}
    if isinstance(node, list):
        return [_without_defaults(v) for v in node]
    return node


_SECURITY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "pk_<key id>_<secret>",
    "description": "An API key made by `puente-api keys create CLIENT`: `Authorization: Bearer pk_...`. "
    "The key's client is the caller: its shipments and idempotency keys are the only ones it sees.",
}
_STRING = {"schema": {"type": "string"}}
_RATELIMIT_HEADERS = {
    "RateLimit": {
        "description": 'draft-ietf-httpapi-ratelimit-headers: `"default";r=<requests left>;t=<seconds>`',
        **_STRING,
    },
    "RateLimit-Policy": {
        "description": 'draft-ietf-httpapi-ratelimit-headers: `"default";q=<quota>;w=<window seconds>`',
        **_STRING,
    },
}
_UNAUTHORIZED = {
    "description": "No API key, or a malformed, unknown or revoked one",
    "headers": {"WWW-Authenticate": {"required": True, **_STRING}},
}
_TOO_MANY = {
    "description": "Over the client's rate limit on this API node; retry after Retry-After seconds",
    "headers": {
        "Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}},
        **_RATELIMIT_HEADERS,
    },
}


def _secure(schema: dict[str, Any]) -> None:
    """Every operation needs an API key except the open ones (auth.OPEN_PATHS); say what a caller
    without one, or over its rate limit, gets."""
    schema["components"]["securitySchemes"] = {"apiKey": _SECURITY_SCHEME}
    schema["security"] = [{"apiKey": []}]
    for path, path_item in schema.get("paths", {}).items():
        for operation in path_item.values():
            if path in auth.OPEN_PATHS:
                operation["security"] = []
                continue
            responses = operation.setdefault("responses", {})
            responses["401"] = dict(_UNAUTHORIZED)
            responses["429"] = dict(_TOO_MANY)
            for code, response in responses.items():
                if code.startswith("2"):
                    response.setdefault("headers", {}).update(_RATELIMIT_HEADERS)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, made to say what the API really does: every error is problem+json, the
    write bodies are documented (the routes parse them themselves), replays carry Idempotent-Replayed,
    every operation but the open ones needs an API key."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = ProblemDocument.model_json_schema(ref_template="#/components/schemas/{model}")
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    _, defs = models_json_schema(
        [(model, "validation") for model in WRITE_BODIES.values()],
        ref_template="#/components/schemas/{model}",
    )
    for name, definition in defs.get("$defs", {}).items():
        # the write bodies share Address/Parcel with the responses: one schema must fit both
        # (the response variant only leaves out the documented defaults)
        if _without_defaults(components.setdefault(name, definition)) != _without_defaults(definition):
            raise RuntimeError(f"OpenAPI component {name} differs between requests and responses")
    _secure(schema)
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            for code, response in operation.get("responses", {}).items():
                if code.startswith(("4", "5")):
                    response["content"] = problem
                if code.startswith("2") and operation.get("requestBody"):
                    response.setdefault("headers", {})[REPLAY_HEADER] = {
                        "description": "true when this is the stored response of an earlier request",
                        "schema": {"type": "string", "enum": ["true"]},
                    }
    app.openapi_schema = schema
    return schema


def create_app(settings: Settings | None = None, configure_logging: bool = True) -> ASGIApp:
    settings = settings or settings_mod.load()
    if configure_logging:
        logs.setup(settings.log_level, settings.site)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = db.make_pool(settings)
        separate = settings.read_conninfo != settings.conninfo
        read_pool = db.make_pool(settings, reads=True) if separate else pool
        for p in {pool, read_pool}:
            await p.open(wait=False)  # start even with the database down: requests answer 503
        readiness = Readiness(settings, pool, read_pool)
        app.state.puente = AppState(settings, pool, readiness, read_pool)
        log.info("serving", extra={"role": settings.site_role, "broker": settings.broker.scheme})
        try:
            yield
        finally:
            readiness.close()
            for p in {pool, read_pool}:
                await p.close()

    app = FastAPI(
        title="Puente shipments API",
        version=puente_api.__version__,
        description="Puente's reference API. Idempotency semantics: see api/README.md.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    problems.install(app)
    app.include_router(router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return edge(WriteRoutes(app), app, settings)


def edge(inner: ASGIApp, app: FastAPI, settings: Settings) -> Edge:
    """The outermost layer around ``inner``: authentication (API keys looked up over ``app``'s read
    pool, once its lifespan made it), the per-client rate limit, body limits, request ids, logs."""
    authenticator = auth.Authenticator(auth.database_lookup(lambda: app.state.puente.read_pool))
    limiter = None
    if settings.rate_limit_per_second:
        limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
    return Edge(inner, settings.max_body_bytes, authenticator, limiter)


def openapi_document(settings: Settings) -> dict[str, Any]:
    """The OpenAPI document without serving anything (for tests and docs)."""
    edge = create_app(settings, configure_logging=False)
    assert isinstance(edge, Edge) and isinstance(edge.app, WriteRoutes)
    fastapi_app = edge.app.app
    assert isinstance(fastapi_app, FastAPI)
    return fastapi_app.openapi()
