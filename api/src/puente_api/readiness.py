"""GET /readyz: is this site able to take writes? Database reachable AND writable (a standby or a
read-only leaderless cluster is not), broker queue reachable. Always says the site and its role."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from puente_api import db
from puente_api.brokers import Broker, BrokerError
from puente_api.brokers import connect as connect_broker
from puente_api.problems import DATABASE_ERRORS, unavailable
from puente_api.settings import Settings

# Seconds a check may take before it counts as failed: load balancers poll every second or two.
CHECK_TIMEOUT = 2.0
# Seconds a broker check result is reused: opening an AMQP connection per probe would load the broker.
BROKER_CACHE_SECONDS = 5.0


@dataclass
class Readiness:
    settings: Settings
    pool: db.Pool
    read_pool: db.Pool
    _broker: Broker | None = None
    _broker_checked: float = 0.0
    _broker_error: str | None = "not checked yet"
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _probes: dict[int, asyncio.Task[tuple[bool, bool]]] = field(default_factory=dict)

    @staticmethod
    async def _query_database(pool: db.Pool, reads: bool) -> tuple[bool, bool]:
        async def state(conn: db.Connection) -> tuple[bool, bool]:
            cur = await conn.execute(
                "SELECT pg_is_in_recovery(), current_setting('transaction_read_only') = 'on'"
            )
            row = await cur.fetchone()
            assert row is not None
            return bool(row[0]), bool(row[1])

        return await db.read(pool, state, CHECK_TIMEOUT, reads=reads)

    async def _probe_database(self, reads: bool = False) -> tuple[bool, bool]:
        """(in recovery, read-only), or raises. One probe at a time per pool and process, run as its own
        task and waited for at most CHECK_TIMEOUT: cancelling a query makes psycopg send the server a
        cancel request and wait up to 5 s + 5 s for it, and through HAProxy to a blackholed leader that
        is exactly what hangs, so a timed-out probe is left to finish in the background and later
        probes join it instead of piling up. Raises TimeoutError when it does not finish in time."""
        pool = self.read_pool if reads else self.pool
        probe = self._probes.get(id(pool))
        if probe is None or probe.done():
            probe = asyncio.ensure_future(self._query_database(pool, reads))
            probe.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved
            self._probes[id(pool)] = probe
        return await asyncio.wait_for(asyncio.shield(probe), CHECK_TIMEOUT)

    async def database(self) -> str | None:
        try:
            row = await self._probe_database()
        except (*DATABASE_ERRORS, TimeoutError) as exc:  # type: ignore[misc]  # a tuple of classes
            return f"database unreachable: {type(exc).__name__}"
        if row[0]:
            return "database is a standby (in recovery): not writable"
        if row[1]:
            return "database is read-only: not writable"
        return None

    def _ping_broker(self) -> None:
        """Ping over the kept connection; if that one went stale (the broker closed an idle connection,
        or restarted), ping once more over a fresh one before reporting the broker unreachable."""
        fresh = self._broker is None
        while True:
            if self._broker is None:
                self._broker = connect_broker(self.settings.broker)
            try:
                self._broker.ping()
                return
            except BrokerError:
                self._broker.close()
                self._broker = None
                if fresh:
                    raise
                fresh = True

    async def broker(self) -> str | None:
        async with self._lock:
            if time.monotonic() - self._broker_checked >= BROKER_CACHE_SECONDS:
                try:
                    async with asyncio.timeout(CHECK_TIMEOUT + 3):
                        await asyncio.to_thread(self._ping_broker)
                    self._broker_error = None
                except (BrokerError, TimeoutError) as exc:
                    self._broker_error = f"broker unreachable: {str(exc)[:200] or type(exc).__name__}"
                self._broker_checked = time.monotonic()
            return self._broker_error

    async def report(self) -> dict[str, Any]:
        db_error, broker_error = await asyncio.gather(self.database(), self.broker())
        reasons = [r for r in (db_error, broker_error) if r]
        doc: dict[str, Any] = {
            "site": self.settings.site,
            "role": self.settings.site_role,
            "database": "ok" if db_error is None else "failing",
            "broker": "ok" if broker_error is None else "failing",
        }
        if reasons:
            problem = unavailable(
                "This site cannot take writes: " + "; ".join(reasons) + ".",
                slug="not-ready",
                site=self.settings.site,
                role=self.settings.site_role,
                reasons=reasons,
            )
            raise problem
        return {"status": "ready", **doc}

    async def read_report(self) -> dict[str, Any]:
        """``GET /readyz?scope=read``: can this site serve READS? Its read route answers
        (``PUENTE_DATABASE_READ_URL``: the site's own member while it is the leader or the synchronous
        standby, another site's otherwise), writable or a hot standby. While a site's leader is gone and
        its synchronous standby not yet promoted, load balancers and the failover DNS keep sending
        clients here: reads are served, writes get 503 + Retry-After, and the plain /readyz keeps
        saying why writes are refused. A site cut off from the other site's leader does not notice
        here at all: its reads never crossed the cut, so nothing races the promotion."""
        try:
            row = await self._probe_database(reads=True)
        except (*DATABASE_ERRORS, TimeoutError) as exc:  # type: ignore[misc]  # a tuple of classes
            reason = f"database unreachable: {type(exc).__name__}"
            raise unavailable(
                f"This site cannot serve reads: {reason}.",
                slug="not-ready",
                site=self.settings.site,
                role=self.settings.site_role,
                reasons=[reason],
            ) from None
        return {
            "status": "ready",
            "scope": "read",
            "site": self.settings.site,
            "role": self.settings.site_role,
            "database": "standby" if row[0] else "ok",
        }

    def close(self) -> None:
        if self._broker is not None:
            self._broker.close()
