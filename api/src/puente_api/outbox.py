"""The outbox relay: publishes outbox rows to the site's broker, then marks them published.

At-least-once: a row is marked only after the broker confirmed it, in the transaction that locked it.
A relay dying between the confirm and the COMMIT publishes the row again on its next run; the worker's
inbox (and SQS's MessageDeduplicationId) make that second copy harmless. ``FOR UPDATE SKIP LOCKED``
lets one relay per API node run side by side without publishing the same row at the same time.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
import psycopg

from puente_api import process_metrics
from puente_api.brokers import Broker, OutboundMessage
from puente_api.loop import run_with_broker
from puente_api.settings import Settings

# Rows per transaction: large enough to amortise the commit, small enough that a batch publishes in
# well under the idle-in-transaction timeout (one confirm per message).
BATCH_SIZE = 100
# Seconds to sleep when the outbox is empty: the label shows "pending" at most this much longer.
IDLE_SLEEP = 0.2

log = logging.getLogger("puente_api.relay")

_CLAIM = """
SELECT id, topic, aggregate_id, payload FROM outbox
 WHERE published_at IS NULL ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
"""


def message_for(row: tuple[Any, ...]) -> OutboundMessage:
    outbox_id, topic, aggregate_id, payload = row
    body = {"message_id": str(outbox_id), "topic": topic, **payload}
    return OutboundMessage(str(outbox_id), str(aggregate_id), orjson.dumps(body))


def run_once(conn: psycopg.Connection, broker: Broker, batch_size: int = BATCH_SIZE) -> int:
    with conn.transaction():
        rows = conn.execute(_CLAIM, (batch_size,)).fetchall()
        if not rows:
            return 0
        broker.publish([message_for(r) for r in rows])
        conn.execute("UPDATE outbox SET published_at = now() WHERE id = ANY(%s)", ([r[0] for r in rows],))
    process_metrics.RELAY_PUBLISHED.inc(len(rows))
    log.info("published %d outbox rows", len(rows), extra={"first_id": rows[0][0], "last_id": rows[-1][0]})
    return len(rows)


def run(settings: Settings, once: bool = False) -> int:
    return run_with_broker("relay", settings, run_once, IDLE_SLEEP, BATCH_SIZE, once=once)
