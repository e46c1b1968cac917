"""The backlog gauges GET /metrics adds at scrape time, read from the database: what waits between the
outbox, the broker and the worker, and whether the reaper keeps up. One statement on the read route
(the site's synchronous standby or leader), each part an index probe (migrations 0001 and 0003), under
a short timeout: a database that does not answer leaves the gauges out and says so
(``puente_backlog_up 0``) rather than holding the scrape.

The counters of the relay and the worker live in those processes (process_metrics.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from puente_api import db
from puente_api.problems import DATABASE_ERRORS

# Seconds a scrape waits for the database (Prometheus' own scrape timeout is 10 s by default).
TIMEOUT_SECONDS = 2.0
_ERRORS: tuple[type[Exception], ...] = (*DATABASE_ERRORS, TimeoutError)

# (name, help) in the order of the statement's columns. Ages are 0 when nothing waits.
GAUGES = (
    ("puente_outbox_waiting", "Outbox rows not published to the broker yet"),
    ("puente_outbox_oldest_waiting_age_seconds", "Age of the oldest outbox row not published yet"),
    ("puente_labels_pending", "Shipments whose label is not made yet (label_status pending)"),
    ("puente_labels_pending_oldest_age_seconds", "Age of the oldest shipment whose label is pending"),
    ("puente_labels_failed", "Shipments whose label message was dead-lettered (label_status failed)"),
    (
        "puente_idempotency_keys_oldest_age_seconds",
        "Age of the oldest idempotency key: the reaper keeps it under PUENTE_IDEMPOTENCY_TTL_SECONDS "
        "plus its timer's interval",
    ),
)

_AGE = "coalesce(extract(epoch FROM now() - ({}))::float8, 0)"
QUERY = "SELECT " + ", ".join(
    [
        "(SELECT count(*) FROM outbox WHERE published_at IS NULL)",
        _AGE.format("SELECT created_at FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT 1"),
        "(SELECT count(*) FROM shipments WHERE label_status = 'pending')",
        _AGE.format("SELECT min(created_at) FROM shipments WHERE label_status = 'pending'"),
        "(SELECT count(*) FROM shipments WHERE label_status = 'failed')",
        _AGE.format("SELECT min(created_at) FROM idempotency_keys"),
    ]
)


class _Values(Collector):
    def __init__(self, values: tuple[Any, ...] | None) -> None:
        self.values = values

    def collect(self) -> Any:
        up = GaugeMetricFamily(
            "puente_backlog_up", "1 when the backlog gauges could be read from the database"
        )
        up.add_metric([], 0 if self.values is None else 1)
        yield up
        for (name, text), value in zip(GAUGES, self.values or (), strict=False):
            yield GaugeMetricFamily(name, text, value=float(value))


async def _read(conn: db.Connection) -> tuple[Any, ...] | None:
    cur = await conn.execute(QUERY)
    return await cur.fetchone()


async def render(pool: db.Pool) -> bytes:
    """The gauges in Prometheus' text format (appended to the process' own metrics)."""
    try:
        values = await asyncio.wait_for(db.read(pool, _read, timeout=TIMEOUT_SECONDS), TIMEOUT_SECONDS)
    except _ERRORS:
        values = None
    registry = CollectorRegistry()
    registry.register(_Values(values))
    return generate_latest(registry)
