"""The ASGI middleware every request crosses first (plain ASGI: no per-request task overhead):

* X-Request-ID: taken from the request when sane, generated otherwise, echoed on the response and
  put in every log line written while serving it;
* who is calling: every request but the open ones (auth.OPEN_PATHS: health, readiness, metrics, the
  OpenAPI document) needs an API key (``Authorization: Bearer``, auth.Authenticator) -> else 401; the
  caller's identity goes into the ASGI scope for the routes (auth.identity); a database outage during
  the look-up is the 503 every request gets then;
* per-client rate limit (ratelimit.RateLimiter, when enabled): 429 + Retry-After over the limit, and
  the RateLimit header fields on every authenticated answer;
* request bodies: larger than PUENTE_MAX_BODY_BYTES -> 413, writes without a JSON media type -> 415,
  both as problem+json and before any handler runs;
* an unexpected exception -> 500 problem+json (logged with its traceback);
* a client that went away before its answer is counted and logged as 499 (nginx's "client closed
  request"), never as a 500 of ours;
* one structured access-log line and the Prometheus request metrics per request.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from puente_api import logs, metrics
from puente_api.auth import OPEN_PATHS, SCOPE_KEY, Authenticator, Identity, invalid_token
from puente_api.problems import DATABASE_ERRORS, PROBLEM_JSON, Problem, from_database_error
from puente_api.ratelimit import Header, RateLimiter

_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:@/+=-]{1,128}$")
_JSON_MEDIA = re.compile(rb"^application/([a-z0-9.+-]+\+)?json\s*(;.*)?$", re.IGNORECASE)
_WRITES = frozenset({"POST", "PUT", "PATCH"})
CLIENT_CLOSED_REQUEST = 499

access = logging.getLogger("puente_api.access")
log = logging.getLogger("puente_api.problems")  # where the routes' database-error handler logs too


class _BodyTooLarge(Exception):
    pass


async def _send_problem(send: Send, problem: Problem, path: str) -> None:
    body = problem.body(path)
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    headers += [(k.lower().encode(), v.encode()) for k, v in problem.headers.items()]
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Edge:
    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        authenticator: Authenticator,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.auth = authenticator
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        headers: dict[bytes, bytes] = {}
        credentials = 0
        for k, v in scope["headers"]:
            if k == b"authorization":
                credentials += 1
            headers.setdefault(k, v)
        rid = headers.get(b"x-request-id", b"")
        if not _REQUEST_ID.match(rid):
            rid = uuid.uuid4().hex.encode()
        token = logs.request_id.set(rid.decode())
        method: str = scope["method"]
        path: str = scope["path"]
        state: dict[str, Any] = {"status": 500, "started": False}
        # added to the answer's headers, whatever answers: the request id, the RateLimit fields
        extra: list[Header] = [(b"x-request-id", rid)]

        async def send_wrapper(message: Message) -> None:
            if state.get("too_large"):
                # the framework turned our "too large" into its own error response: answer 413 instead
                if message["type"] == "http.response.start" and not state["started"]:
                    await _send_problem(send_wrapper_inner, self._too_large(), path)
                return
            await send_wrapper_inner(message)

        async def send_wrapper_inner(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
                state["status"] = message["status"]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        received = 0

        async def receive_wrapper() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.disconnect":
                state["disconnected"] = True
            elif message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    state["too_large"] = True
                    raise _BodyTooLarge
            return message

        try:
            problem = None
            if path not in OPEN_PATHS:
                problem = await self._admit(scope, headers.get(b"authorization"), credentials, extra)
            if problem is None:
                problem = self._refuse(method, headers)
            if problem is not None:
                await _send_problem(send_wrapper_inner, problem, path)
            else:
                await self.app(scope, receive_wrapper, send_wrapper)
        except _BodyTooLarge:
            if not state["started"]:
                await _send_problem(send_wrapper_inner, self._too_large(), path)
        except Exception:
            if state.get("disconnected"):
                access.info("client went away during %s %s", method, path)
                return
            access.exception("unhandled error on %s %s", method, path)
            if not state["started"]:
                problem = Problem(500, "internal", "An unexpected error occurred.")
                await _send_problem(send_wrapper_inner, problem, path)
        finally:
            if state.get("disconnected") and not state["started"]:
                state["status"] = CLIENT_CLOSED_REQUEST
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            route_path = getattr(route, "path", "unmatched")
            metrics.observe_request(method, route_path, state["status"], elapsed)
            if access.isEnabledFor(logging.INFO):
                caller: Identity | None = scope.get(SCOPE_KEY)
                access.info(
                    "%s %s %s",
                    method,
                    path,
                    state["status"],
                    extra={
                        "method": method,
                        "path": path,
                        "status": state["status"],
                        "duration_ms": round(elapsed * 1000, 2),
                        "client_id": caller.client_id if caller else None,
                        "key_id": caller.key_id if caller else None,
                    },
                )
            logs.request_id.reset(token)

    async def _admit(
        self, scope: Scope, authorization: bytes | None, credentials: int, extra: list[Header]
    ) -> Problem | None:
        """Authenticate (the identity goes into the scope) and count the request against the caller's
        rate limit; the refusal to answer instead, if any."""
        try:
            if credentials > 1:
                raise invalid_token()  # which of them would it be?
            caller = await self.auth.identify(authorization)
        except Problem as problem:
            return problem
        except DATABASE_ERRORS as exc:
            log.warning("database unavailable: %s: %s", type(exc).__name__, exc)
            return from_database_error(exc)
        scope[SCOPE_KEY] = caller
        if self.limiter is None:
            return None
        limiter = self.limiter
        retry_after, field = limiter.take(caller.client_id)
        extra.append(limiter.policy)
        extra.append(field)
        if not retry_after:
            return None
        refusal = Problem(
            429,
            "rate-limited",
            f"This client is over its rate limit on this API node ({limiter.rate:g} requests/s, bursts of"
            f" {limiter.burst:g}); retry in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )
        refusal.extra["violated-policies"] = ["default"]  # the draft's quota-exceeded member
        return refusal

    def _too_large(self) -> Problem:
        return Problem(
            413, "body-too-large", f"The request body exceeds {self.max_body} bytes.", max_bytes=self.max_body
        )

    def _refuse(self, method: str, headers: dict[bytes, bytes]) -> Problem | None:
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                return Problem(400, "bad-content-length", "Content-Length is not a number.")
            if int(length) > self.max_body:
                return self._too_large()
        has_body = (length is not None and length != b"0") or b"transfer-encoding" in headers
        if method in _WRITES and has_body and not _JSON_MEDIA.match(headers.get(b"content-type", b"")):
            return Problem(415, "unsupported-media-type", "Send the request body as application/json.")
        return None
