"""Database access: the schema, migrations and the connections every process uses."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any, TypeVar

import orjson
import psycopg
from psycopg.types.json import set_json_dumps, set_json_loads
from psycopg_pool import AsyncConnectionPool

from puente_api.settings import Settings

# Any one client may hold a transaction open this long; past it PostgreSQL ends the session and
# releases the idempotency key's lock. It bounds what a hung (not dead) API process can block.
IDLE_IN_TRANSACTION_TIMEOUT = "30s"
# A write waiting longer than this for a row lock is a bug or an outage: fail it (503) instead.
LOCK_TIMEOUT = "5s"
# Seconds a request waits for a pooled connection before answering 503.
POOL_TIMEOUT = 5.0
# Serialises concurrent `migrate` runs (any constant unique to this purpose).
_MIGRATE_LOCK = 7_251_001

# JSONB parameters (addresses, parcels, stored headers) serialised, and JSONB columns parsed, by orjson
# rather than the json module.
set_json_dumps(orjson.dumps)
set_json_loads(orjson.loads)

# Milliseconds between checks that the client of a running statement is still there: a statement of
# an API process that died (kill -9, node lost) is cancelled -- and rolled back -- within a second
# instead of running on to COMMIT.
CLIENT_CONNECTION_CHECK_INTERVAL = 1000

# The server's TCP keepalive and user timeout on the API's sessions: a client that vanished without a FIN
# (node lost, network gone) is found by the server within about idle + interval x count seconds (4 s of
# unacknowledged data at most), so its transaction is rolled back and an idempotency key it held is free
# for the retry. It matters where the server's TCP peer is the API itself (the cloud's NLB passes the
# connection through); on-prem the peer is HAProxy, which ends a vanished client's sessions the same way
# (roles/haproxy: haproxy_postgresql_client_keepalive).
TCP_KEEPALIVE = {
    "tcp_keepalives_idle": 1,
    "tcp_keepalives_interval": 1,
    "tcp_keepalives_count": 2,
    "tcp_user_timeout": 4000,
}

# Session settings of every connection the API and its processes open (bench/ runs pgbench with them).
OPTIONS = (
    f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_TIMEOUT} -c lock_timeout={LOCK_TIMEOUT}"
    f" -c client_connection_check_interval={CLIENT_CONNECTION_CHECK_INTERVAL}"
    + "".join(f" -c {name}={value}" for name, value in TCP_KEEPALIVE.items())
)


def connect(settings: Settings, autocommit: bool = True) -> psycopg.Connection:
    """A plain connection for the background processes (relay, worker, reaper, migrate)."""
    return psycopg.connect(settings.conninfo, autocommit=autocommit, options=OPTIONS)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def migrations(directory: Traversable | None = None) -> list[Migration]:
    """The numbered migrations (``NNNN_name.sql``) in order; a gap or a duplicate number is an error."""
    directory = directory or resources.files("puente_api.db").joinpath("migrations")
    found = []
    for entry in directory.iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(
            f"migrations must be numbered 0001, 0002, ... without gaps: {[m.version for m in found]}"
        )
    return found


def migrate(settings: Settings, directory: Traversable | None = None) -> list[str]:
    """Apply the migrations not applied yet, in order, each in its own transaction and recorded with its
    checksum in ``schema_migrations``; safe to run again and concurrently (an advisory lock). A migration
    applied earlier whose file changed since is refused: ship a new one instead. Returns the applied
    ones (``0002_name``), empty when the database is up to date."""
    applied: list[str] = []
    with connect(settings, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATE_LOCK,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            done: dict[int, str] = dict(
                conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
            )
            for m in migrations(directory):
                if m.version in done:
                    if done[m.version] != m.checksum:
                        raise RuntimeError(
                            f"migration {m.version:04d}_{m.name} was changed after it was applied; "
                            "never edit an applied migration, add the next one"
                        )
                    continue
                with conn.transaction():
                    conn.execute(m.sql)  # type: ignore[arg-type]  # trusted file shipped in the package
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (m.version, m.name, m.checksum),
                    )
                applied.append(f"{m.version:04d}_{m.name}")
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATE_LOCK,))
    return applied


def _on_standby(conn: psycopg.AsyncConnection) -> bool:  # type: ignore[type-arg]
    return conn.info.parameter_status("in_hot_standby") == "on"


class Connection(psycopg.AsyncConnection[Any]):
    """The API's pooled connections. Each keeps one plain cursor for the hot statements (the key
    lookup, the create): a new cursor per statement costs about as much client CPU as a short
    statement's own work. A pooled connection serves one request at a time, so one cursor suffices."""

    _shared: psycopg.AsyncCursor[Any] | None = None

    def shared_cursor(self) -> psycopg.AsyncCursor[Any]:
        if self._shared is None:
            self._shared = self.cursor()
        return self._shared


Pool = AsyncConnectionPool[Connection]
T = TypeVar("T")


class Checkout:
    """``async with db.connection(pool) as conn``: see :func:`connection`."""

    __slots__ = ("conn", "pool", "reads", "timeout")

    def __init__(self, pool: Pool, timeout: float | None, reads: bool) -> None:
        self.pool = pool
        self.timeout = timeout
        self.reads = reads

    async def __aenter__(self) -> Connection:
        self.conn: Connection = await self.pool.getconn(self.timeout)
        return self.conn

    async def __aexit__(self, *exc: object) -> None:
        conn = self.conn
        if conn.broken:
            _check_idle(self.pool)
        elif not self.reads and not conn.closed and conn.info.parameter_status("in_hot_standby") == "on":
            await conn.close()
        await self.pool.putconn(conn)


# Pools whose idle connections are being checked (one check at a time per pool; the task is kept here
# so it is not garbage-collected while it runs).
_checks: dict[int, asyncio.Task[None]] = {}


def _check_idle(pool: Pool) -> None:
    """A pooled session turned out dead: its load balancer cut it (the member behind it was marked
    down, or a preferred one came back and its backups' sessions were shut). The pool's other idle
    sessions went the same way, and the pool would hand them out one per checkout, each failing a
    request or a readiness check in turn (measured: 5 s of failed read checks, one per second, after a
    read route moved). Test them all now, in the background: the dead ones are replaced."""
    running = _checks.get(id(pool))
    if running is None or running.done():
        _checks[id(pool)] = asyncio.ensure_future(pool.check())


def connection(pool: Pool, timeout: float | None = None, *, reads: bool = False) -> Checkout:
    """A pooled connection for one use; every user of the API's pools takes connections through this.

    On the write pool (``reads=False``), a session opened on a hot standby (HAProxy sends sessions to
    the synchronous standby while no leader is up) is closed when it comes back instead of being kept,
    so the next checkout reconnects through the load balancer and reaches the leader as soon as there
    is one (the pool replaces the closed one). A standby that gets promoted reports
    ``in_hot_standby=off`` to its sessions (PostgreSQL 14+), which are then kept. The read pool's
    sessions are meant to be on the synchronous standby and are kept; the load balancer cuts them when
    that member stops qualifying.

    It is ``pool.connection()`` without that context manager's per-use costs: no ``reset`` callback
    (the pool runs one in a background task for every connection returned), no commit on exit (the
    connections are in autocommit; one returned inside a transaction is rolled back by the pool)."""
    return Checkout(pool, timeout, reads)


async def read(
    pool: Pool,
    query: Callable[[Connection], Awaitable[T]],
    timeout: float | None = None,
    *,
    reads: bool = True,
) -> T:
    """Run ``query`` (reads only: it may run more than once) on a pooled connection. A connection that
    turns out dead (its session was cut) is discarded, the pool's other idle ones are checked in the
    background (:func:`_check_idle`) and the query runs again on the next one: every pooled session may
    have been cut at once, so up to the pool's size + 1 tries, each failing at once on a closed socket.
    A moved read route then costs no failed request."""
    for _ in range(pool.max_size):
        checkout = connection(pool, timeout, reads=reads)
        try:
            async with checkout as conn:
                return await query(conn)
        except psycopg.OperationalError:
            dead = getattr(checkout, "conn", None)
            if dead is None or not dead.broken:
                raise
    async with connection(pool, timeout, reads=reads) as conn:
        return await query(conn)


def make_pool(settings: Settings, *, reads: bool = False) -> Pool:
    """The API's write pool (or, ``reads=True``, its read pool: ``PUENTE_DATABASE_READ_URL``); opened
    by the app's lifespan without waiting, so the API starts (and answers 503) while the database is
    down, and heals when it comes back. Take connections with :func:`connection`."""
    return AsyncConnectionPool(
        settings.read_conninfo if reads else settings.conninfo,
        min_size=min(2, settings.db_pool_size),
        max_size=settings.db_pool_size,
        kwargs={"autocommit": True, "options": OPTIONS},
        connection_class=Connection,
        timeout=POOL_TIMEOUT,
        open=False,
        name="puente-api-read" if reads else "puente-api",
    )
