"""RFC 9457 problem details (``application/problem+json``) for every error the API returns.

One exception type, :class:`Problem`, carries status, type and detail; the handlers registered by
:func:`install` turn it, FastAPI's validation errors, Starlette's 404/405 and database outages into
problem documents, so no error leaves the API in another shape.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from puente_api import logs

PROBLEM_JSON = "application/problem+json"
# Where each problem type is documented (api/README.md travels with the package).
TYPE_BASE = "https://puente.dev/problems/"
# Clients and load balancers wait this long before retrying a 503.
RETRY_AFTER_SECONDS = 2

log = logging.getLogger("puente_api.problems")

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Problem(Exception):
    """An error answered as problem+json. ``slug`` names the problem type (its documentation anchor)."""

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.title = title or _TITLES.get(status, "Error")
        self.headers = headers or {}
        self.extra = extra

    def document(self, instance: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": TYPE_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            doc["instance"] = instance
        rid = logs.request_id.get()
        if rid:
            # the id of X-Request-ID, as the gateway's and the load balancer's own problem documents carry it
            doc["request_id"] = rid
        doc.update(self.extra)
        return doc

    def body(self, instance: str | None = None) -> bytes:
        return orjson.dumps(self.document(instance))

    def response(self, instance: str | None = None) -> Response:
        return Response(self.body(instance), self.status, headers=self.headers, media_type=PROBLEM_JSON)


def unavailable(detail: str, slug: str = "unavailable", **extra: Any) -> Problem:
    return Problem(503, slug, detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}, **extra)


def from_database_error(exc: Exception) -> Problem:
    """Map a database failure to 503: the client may retry with the same Idempotency-Key."""
    if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
        return unavailable(
            "The database is read-only (no writable leader); retry shortly.", slug="database-read-only"
        )
    if isinstance(exc, psycopg.errors.LockNotAvailable | psycopg.errors.QueryCanceled):
        return unavailable("The database is too busy to take this write now; retry shortly.")
    return unavailable("The database is unreachable; retry shortly.", slug="database-unavailable")


# Errors that mean "the database cannot serve us now" rather than "this request is wrong".
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    psycopg.OperationalError,
    psycopg.errors.ReadOnlySqlTransaction,
    psycopg.errors.QueryCanceled,
    PoolTimeout,
)


def validation_problem(errors: Sequence[Any], prefix: tuple[str, ...] = ()) -> Problem:
    """pydantic/FastAPI validation errors as one problem: 400 for unparseable JSON, 422 otherwise."""
    out = []
    for err in errors:
        if err.get("type") == "json_invalid":
            return Problem(400, "malformed-json", "The request body is not valid JSON.")
        out.append(
            {
                "location": [*prefix, *(str(p) for p in err.get("loc", ()))],
                "message": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
        )
    return Problem(422, "validation-error", "The request does not match the schema.", errors=out)


def install(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return exc.response(request.url.path)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "Error")
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"No resource at {request.url.path}."
        problem = Problem(exc.status_code, slug, detail, headers=dict(exc.headers or {}))
        return problem.response(request.url.path)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return validation_problem(exc.errors()).response(request.url.path)

    async def on_database(request: Request, exc: Exception) -> Response:
        log.warning("database unavailable: %s: %s", type(exc).__name__, exc)
        return from_database_error(exc).response(request.url.path)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        # Starlette's ServerErrorMiddleware answers with this, then re-raises: edge.Edge logs it once
        return Problem(500, "internal", "An unexpected error occurred.").response(request.url.path)

    app.add_exception_handler(Exception, on_unexpected)
    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    for exc_type in DATABASE_ERRORS:
        app.add_exception_handler(exc_type, on_database)
