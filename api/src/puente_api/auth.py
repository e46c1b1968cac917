"""Who is calling: the API key in ``Authorization: Bearer <token>``, resolved by the edge (edge.Edge)
before any routing or business code runs. The identity is the key's client id; a caller's own
``X-Client-Id`` is never read.

The look-up is cheap on purpose: the token's shape is checked first (a malformed one never reaches the
database), then one SHA-256 and a dict probe in a per-process cache. A valid key is remembered
:data:`CACHE_TTL_SECONDS` from the moment its look-up started, so a revoked key is refused by every API
node within that time once the revocation is readable on the node's read route (the site's leader or
its synchronous standby, which applies every commit before it is acknowledged). An unknown token is
remembered :data:`NEGATIVE_CACHE_TTL_SECONDS`, so a key is usable at most that long after it was created.
Concurrent requests with the same uncached token share one database look-up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from puente_api import apikeys, db
from puente_api.problems import Problem

# Served without a key: the probes of load balancers and monitoring, and the API's own description.
# /readyz/details and /metrics are for the monitoring and load-balancer networks only: the on-prem
# gateway and the cloud edge's WAF refuse them to anyone else (INTERNAL_PATHS).
INTERNAL_PATHS = frozenset({"/readyz/details", "/metrics"})
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json"}) | INTERNAL_PATHS
CACHE_TTL_SECONDS = 2.0
NEGATIVE_CACHE_TTL_SECONDS = 1.0
# Past this many cached tokens the expired ones are dropped (and all of them, if that is not enough):
# a flood of made-up tokens cannot grow the process without bound.
MAX_CACHE_ENTRIES = 100_000
REALM = 'Bearer realm="puente"'
# Where the edge puts the caller's Identity in the ASGI scope.
SCOPE_KEY = "puente.identity"


@dataclass(frozen=True, slots=True)
class Identity:
    client_id: str
    key_id: str


Lookup = Callable[[bytes], Awaitable[Identity | None]]


def authentication_required() -> Problem:
    """No credentials (or another scheme than Bearer): RFC 6750 3.1 -- no error code then."""
    return Problem(
        401,
        "authentication-required",
        "This API needs an API key: send Authorization: Bearer <key>.",
        headers={"WWW-Authenticate": REALM},
    )


def invalid_token() -> Problem:
    """A token was sent but is malformed, unknown or revoked (one answer for all three)."""
    return Problem(
        401,
        "invalid-api-key",
        "The API key is malformed, unknown or revoked.",
        headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
    )


def bearer_token(authorization: bytes | None) -> bytes:
    """The token of an ``Authorization: Bearer <token>`` header value, or a 401 Problem."""
    if authorization is None:
        raise authentication_required()
    scheme, _, token = authorization.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        raise authentication_required()
    token = token.strip()
    if not apikeys.TOKEN.match(token):
        raise invalid_token()
    return token


def identity(scope: Any) -> Identity:
    """The caller the edge authenticated. A route reached without one is a bug: KeyError, a 500."""
    found: Identity = scope[SCOPE_KEY]
    return found


def database_lookup(read_pool: Callable[[], db.Pool]) -> Lookup:
    """Look a token's hash up in ``api_keys`` over the API's read pool (the same route as every read:
    it keeps answering while a site's leader is gone). A database outage raises, as a read does (503)."""

    async def lookup(token_sha256: bytes) -> Identity | None:
        row = await db.read(read_pool(), lambda conn: apikeys.find(conn, token_sha256))
        return None if row is None else Identity(*row)

    return lookup


class Authenticator:
    def __init__(
        self,
        lookup: Lookup,
        clock: Callable[[], float] = time.monotonic,
        ttl: float = CACHE_TTL_SECONDS,
        negative_ttl: float = NEGATIVE_CACHE_TTL_SECONDS,
        max_entries: int = MAX_CACHE_ENTRIES,
    ) -> None:
        self._lookup = lookup
        self._clock = clock
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._max_entries = max_entries
        # token hash -> (valid until, identity or None for "no such valid key")
        self._cache: dict[bytes, tuple[float, Identity | None]] = {}
        self._pending: dict[bytes, asyncio.Future[Identity | None]] = {}

    async def identify(self, authorization: bytes | None) -> Identity:
        """The caller, or a 401 Problem; a database outage raises its error (the edge answers 503)."""
        token_sha256 = apikeys.digest(bearer_token(authorization))
        entry = self._cache.get(token_sha256)
        if entry is not None and entry[0] > self._clock():
            found = entry[1]
        else:
            found = await self._fetch(token_sha256)
        if found is None:
            raise invalid_token()
        return found

    async def _fetch(self, token_sha256: bytes) -> Identity | None:
        pending = self._pending.get(token_sha256)
        if pending is None:
            pending = asyncio.ensure_future(self._load(token_sha256))
            pending.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved
            self._pending[token_sha256] = pending
        # shielded: a caller that goes away does not cancel the look-up the others wait for
        return await asyncio.shield(pending)

    async def _load(self, token_sha256: bytes) -> Identity | None:
        started = self._clock()
        try:
            found = await self._lookup(token_sha256)
        finally:
            del self._pending[token_sha256]
        if len(self._cache) >= self._max_entries:
            self._evict(started)
        self._cache[token_sha256] = (started + (self._ttl if found else self._negative_ttl), found)
        return found

    def _evict(self, now: float) -> None:
        for key in [k for k, (until, _) in self._cache.items() if until <= now]:
            del self._cache[key]
        if len(self._cache) >= self._max_entries:
            self._cache.clear()
