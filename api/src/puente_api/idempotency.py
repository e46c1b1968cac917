"""The idempotency core: Idempotency-Key semantics of the IETF httpapi draft, Stripe's behaviour.

Rules (api/README.md publishes them, as the draft asks):

* a POST without ``Idempotency-Key`` is a 400; a key that is neither an RFC 8941 sf-string (a quoted
  string, printable ASCII) nor the same key bare (``abc`` is ``"abc"``), of 8..255 characters, is a 400;
* keys are scoped per client (the client id of the caller's API key: auth.py); the same key from two
  clients are two keys;
* same key, same fingerprint, finished: the stored status, headers and body again, byte for byte,
  with ``Idempotent-Replayed: true`` -- stored 4xx outcomes included;
* same key while the first request still runs: 409; same key, different request: 422;
* requests that fail validation, or that find the database down (503), store nothing (Stripe: "results
  are only saved if an API endpoint started executing") and may be retried with the same key;
* keys expire ``PUENTE_IDEMPOTENCY_TTL_SECONDS`` after creation; the reaper deletes them, and an
  expired key that is still there is treated as absent.

How (brandur's atomic phases, collapsed to one): the key row, the business rows and the outbox row
are written in ONE transaction, so they commit together or not at all, and a key row only ever holds a
finished response. "In flight" is ``pg_try_advisory_xact_lock`` on (client, key) taken at the start of
that transaction: PostgreSQL releases it when the transaction ends in any way -- including the API
process dying mid-request (kill -9), when the server sees the socket close and rolls back. So a crash
between any two steps leaves either nothing (retry runs afresh) or the finished key (retry replays):
no duplicate effect and no key left locked.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import AsyncClientCursor, AsyncConnection
from psycopg.types.json import Jsonb

from puente_api import db, metrics
from puente_api.problems import Problem

REPLAY_HEADER = "Idempotent-Replayed"
KEY_MIN_LENGTH = 8
KEY_MAX_LENGTH = 255
# Printable ASCII inside the quotes; backslash escapes only '"' and '\' (RFC 8941, section 3.3.3).
_SF_STRING = re.compile(r'^"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"$')
# The bare form Stripe-style clients send (Idempotency-Key: 8e03978e-...): visible ASCII without DQUOTE,
# backslash, comma or semicolon (a list or a parameter would be ambiguous). The same key as its quoted
# form: abc-12345 and "abc-12345" name one key.
_BARE_KEY = re.compile(r"^([\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]+)$")
# OpenAPI description of the header (documents the grammar above for clients and schemathesis).
KEY_PATTERN = r'^("[\x20\x21\x23-\x5b\x5d-\x7e]{8,255}"|[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]{8,255})$'


@dataclass(frozen=True)
class Scope:
    """Who asks (client), with which key, for what (method, path, body fingerprint)."""

    client_id: str
    key: str
    method: str
    path: str
    fingerprint: str


@dataclass(frozen=True)
class StoredResponse:
    """What an endpoint decided; stored on the key and replayed verbatim."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = "application/json"


@dataclass(frozen=True)
class GatedWrite:
    """A write whose statements and response are known before the database answers (the create):
    ``ctes`` are data-modifying CTEs (``name AS (INSERT ... SELECT ... FROM go ...)``) that read the
    one-row relation ``go``, so they write only when the key was free; ``params`` fill them."""

    ctes: str
    params: dict[str, Any]
    response: StoredResponse


@dataclass(frozen=True)
class Outcome:
    response: StoredResponse
    replayed: bool


def parse_key(raw: str | None) -> str:
    if raw is None or not raw.strip():
        raise Problem(
            400,
            "idempotency-key-missing",
            'This operation requires an Idempotency-Key header, e.g. Idempotency-Key: "<a UUID>".',
            title="Idempotency-Key is missing",
        )
    match = _SF_STRING.match(raw.strip(" ")) or _BARE_KEY.match(raw.strip(" "))
    if not match:
        raise Problem(
            400,
            "idempotency-key-malformed",
            "Idempotency-Key must be a single structured-field string (printable ASCII in double quotes) "
            "or the same key bare (visible ASCII without quotes, backslashes, commas or semicolons).",
            title="Idempotency-Key is malformed",
        )
    key = match.group(1)
    if "\\" in key:
        key = re.sub(r"\\([\"\\])", r"\1", key)
    if not KEY_MIN_LENGTH <= len(key) <= KEY_MAX_LENGTH:
        raise Problem(
            400,
            "idempotency-key-malformed",
            f"Idempotency-Key must be {KEY_MIN_LENGTH} to {KEY_MAX_LENGTH} characters long.",
            title="Idempotency-Key is malformed",
        )
    return key


def fingerprint(method: str, path: str, body: Any) -> str:
    """sha256 of the request's identity: the method, the path and the body's JSON as sent, in a canonical
    form (keys sorted, no insignificant whitespace), so equal JSON documents give equal fingerprints,
    whatever the key order or spacing, and a release that changes the models changes none."""
    digest = hashlib.sha256()
    digest.update(f"{method} {path}\n".encode())
    digest.update(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())
    return digest.hexdigest()


_LOOKUP = """
SELECT fingerprint, response_code, response_headers, response_body,
       created_at < now() - make_interval(secs => %(ttl)s) AS expired
  FROM idempotency_keys
 WHERE client_id = %(client)s AND idempotency_key = %(key)s
"""
_LOCK = "SELECT pg_try_advisory_xact_lock(hashtextextended(%(client)s || E'\\n' || %(key)s, 0))"
_BEGIN_LOCK_LOOKUP = "BEGIN; " + _LOCK + "; " + _LOOKUP
_DELETE_EXPIRED = """
DELETE FROM idempotency_keys
 WHERE client_id = %(client)s AND idempotency_key = %(key)s
   AND created_at < now() - make_interval(secs => %(ttl)s)
"""
_LOCK_EXPR = "pg_try_advisory_xact_lock(hashtextextended(%(client)s || E'\\n' || %(key)s, 0))"
# The one-statement form (see execute_gated). `gate` takes the key's lock and reads the key row;
# `go` yields one row only when the lock was taken and no row exists: the action's CTEs and the key
# row insert select FROM go, so they write only then. {pause} is empty except under the test hook.
_GATED = (
    """
WITH gate AS (
    SELECT """
    + _LOCK_EXPR
    + """ AS locked, k.*
      FROM (SELECT 1) AS one LEFT JOIN ("""
    + _LOOKUP
    + """) AS k ON true
), go AS (
    SELECT 1 FROM gate WHERE locked AND fingerprint IS NULL{pause}
), {ctes}, stored AS (
    INSERT INTO idempotency_keys (client_id, idempotency_key, request_method, request_path, fingerprint,
                                  response_code, response_headers, response_body)
    SELECT %(client)s, %(key)s, %(method)s, %(path)s, %(fingerprint)s, %(code)s, %(headers)s, %(body)s
      FROM go
)
SELECT fingerprint, response_code, response_headers, response_body, expired, locked FROM gate
"""
)
_PAUSE = " AND pg_sleep(%(pause)s)::text = ''"

_STORE = """
INSERT INTO idempotency_keys (client_id, idempotency_key, request_method, request_path, fingerprint,
                              response_code, response_headers, response_body)
VALUES (%(client)s, %(key)s, %(method)s, %(path)s, %(fingerprint)s, %(code)s, %(headers)s, %(body)s)
"""


def _replay(scope: Scope, row: tuple[Any, ...]) -> Outcome:
    stored_fingerprint, code, headers, body, _expired = row
    if stored_fingerprint != scope.fingerprint:
        metrics.idempotency_outcome("mismatch")
        raise Problem(
            422,
            "idempotency-key-reused",
            "This Idempotency-Key was already used with a different request (method, path or body). "
            "Use a new key for a new request.",
            title="Idempotency-Key is already used",
        )
    metrics.idempotency_outcome("replayed")
    media = "application/problem+json" if code >= 400 else "application/json"
    return Outcome(StoredResponse(code, body.encode(), dict(headers), media), replayed=True)


def _in_flight() -> Problem:
    metrics.idempotency_outcome("conflict")
    return Problem(
        409,
        "idempotency-key-in-flight",
        "A request with this Idempotency-Key is still being processed; retry it later.",
        title="A request is outstanding for this Idempotency-Key",
        headers={"Retry-After": "1"},
    )


async def _fast_path(pool: db.Pool, params: dict[str, Any]) -> tuple[Any, ...] | None:
    """Look the key up outside any transaction: a finished key row never changes until it is reaped.
    A read with no effect, so a connection found broken here (database restarted or failed over since
    it was pooled) is simply retried once on a fresh one instead of failing the request."""
    for attempt in (1, 2):
        try:
            async with db.connection(pool) as conn:
                cursor = conn.shared_cursor()
                await cursor.execute(_LOOKUP, params)
                return await cursor.fetchone()
        except psycopg.OperationalError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


class Tx:
    """The open transaction an action runs in. ``query`` runs a statement now and returns its rows;
    ``defer`` queues a write that needs no answer: deferred writes, the key row and COMMIT then travel
    to the server as one multi-statement query (one round trip). Statements are bound client-side
    (psycopg's quoting) so that several can share one simple-protocol query."""

    def __init__(self, conn: AsyncConnection[Any]) -> None:
        self.cursor = AsyncClientCursor(conn)
        self._deferred: list[bytes] = []

    async def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        await self.cursor.execute(sql, params)
        return await self.cursor.fetchall() if self.cursor.description else []

    def defer(self, sql: str, params: Any = None) -> None:
        self._deferred.append(self.cursor.mogrify(sql, params).encode())

    def defer_gated(self, write: GatedWrite) -> None:
        """A GatedWrite inside this transaction (the key is already ours: `go` is one row)."""
        self.defer(f"WITH go AS (SELECT 1), {write.ctes} SELECT 1", write.params)

    async def commit(self) -> None:
        await self.cursor.execute(b"; ".join([*self._deferred, b"COMMIT"]))  # type: ignore[arg-type]


WriteAction = Callable[[Tx], Awaitable[StoredResponse]]


async def execute(
    pool: db.Pool,
    scope: Scope,
    action: WriteAction,
    ttl_seconds: int,
    pause_after_lock: float = 0.0,
    pause_after_commit: float = 0.0,
) -> Outcome:
    """Run ``action`` at most once per (client, key); replay its stored response afterwards.

    A first request costs three round trips: the fast-path lookup; BEGIN + the key's lock + the
    lookup again (one multi-statement query); the action's deferred writes + the key row + COMMIT
    (one more). A retry of a finished request costs one: the fast-path lookup."""
    params = {"client": scope.client_id, "key": scope.key, "ttl": ttl_seconds}
    row = await _fast_path(pool, params)
    if row is not None and not row[4]:
        return _replay(scope, row)
    async with db.connection(pool) as conn:
        tx = Tx(conn)
        try:
            await tx.cursor.execute(_BEGIN_LOCK_LOOKUP, params)
            tx.cursor.nextset()
            locked = await tx.cursor.fetchone()
            tx.cursor.nextset()
            row = await tx.cursor.fetchone()
            if not (locked and locked[0]):
                # without the lock, a finished row (committed since the fast path looked) still replays
                if row is not None and not row[4]:
                    return _replay(scope, row)
                raise _in_flight()
            if row is not None:
                if not row[4]:
                    return _replay(scope, row)
                tx.defer(_DELETE_EXPIRED, params)
            if pause_after_lock:
                await asyncio.sleep(pause_after_lock)  # test hook: kill -9 lands inside the transaction
            response = await action(tx)
            tx.defer(
                _STORE,
                {
                    **params,
                    "method": scope.method,
                    "path": scope.path,
                    "fingerprint": scope.fingerprint,
                    "code": response.status,
                    "headers": Jsonb(response.headers),
                    "body": response.body.decode(),
                },
            )
            await tx.commit()
        finally:
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE and not conn.closed:
                with contextlib.suppress(psycopg.Error):
                    await conn.rollback()
    metrics.idempotency_outcome("executed")
    if pause_after_commit:
        await asyncio.sleep(pause_after_commit)  # test hook: kill -9 after COMMIT, before the reply
    return Outcome(response, replayed=False)


async def execute_gated(
    pool: db.Pool,
    scope: Scope,
    build: Callable[[], GatedWrite],
    ttl_seconds: int,
    pause_after_lock: float = 0.0,
    pause_after_commit: float = 0.0,
) -> Outcome:
    """Like :func:`execute`, with the writes in ONE statement: a retry of a finished request costs one
    round trip (the key row, read outside any transaction), a first request two (that read, then the
    statement). The statement takes the key's lock, reads the key row, and only if the lock was taken
    and no row exists inserts the business rows, the outbox row and the key row -- all in the one
    implicit transaction of the statement. A key row that commits between this statement's snapshot
    and its insert (a race the lock narrows to the instant the holder commits) makes the insert fail
    on the unique key: the statement then changes nothing, and the row it collided with is replayed.
    An expired key (not reaped yet) takes the transactional path, which deletes it first."""
    # Retries are answered from the key row alone: one cheap read, before the statement that writes.
    key_params = {"client": scope.client_id, "key": scope.key, "ttl": ttl_seconds}
    row = await _fast_path(pool, key_params)
    if row is not None and not row[4]:
        return _replay(scope, row)
    write = build()  # ids, timestamps and the response: only for a request that may write
    params = {
        **write.params,
        **key_params,
        "method": scope.method,
        "path": scope.path,
        "fingerprint": scope.fingerprint,
        "code": write.response.status,
        "headers": Jsonb(write.response.headers),
        "body": write.response.body.decode(),
        "pause": pause_after_lock,
    }
    sql = _GATED.format(ctes=write.ctes, pause=_PAUSE if pause_after_lock else "")
    try:
        async with db.connection(pool) as conn:
            cursor = conn.shared_cursor()
            await cursor.execute(sql, params)  # type: ignore[arg-type]
            row = await cursor.fetchone()
    except psycopg.errors.UniqueViolation:
        row = await _fast_path(pool, params)
        if row is None:
            raise _in_flight() from None
        return _replay(scope, row)
    assert row is not None
    fingerprint_, _code, _headers, _body, expired, locked = row
    if fingerprint_ is not None:
        if expired:
            return await execute(
                pool, scope, _deferred(write), ttl_seconds, pause_after_lock, pause_after_commit
            )
        return _replay(scope, row[:5])
    if not locked:
        raise _in_flight()
    metrics.idempotency_outcome("executed")
    if pause_after_commit:
        await asyncio.sleep(pause_after_commit)  # test hook: kill -9 after COMMIT, before the reply
    return Outcome(write.response, replayed=False)


def _deferred(write: GatedWrite) -> WriteAction:
    async def action(tx: Tx) -> StoredResponse:
        tx.defer_gated(write)
        return write.response

    return action
