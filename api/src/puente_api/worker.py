"""The label worker: consumes ``shipment.created`` messages and makes each shipment's label.

Exactly-once effect over at-least-once delivery: the message id goes into the ``inbox`` table in the
same transaction as the label and the shipment's ``label_status = 'ready'``; a second delivery of the
same message finds its inbox row and is only acknowledged. The broker message is acknowledged after
COMMIT, so a worker dying in between gets the message delivered again (and the inbox absorbs it).
A message that can never be processed (not JSON, unknown shipment) is dead-lettered at once;
transient failures (database down) are requeued and dead-lettered after MAX_DELIVERIES.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson
import psycopg

from puente_api.brokers import Broker, Delivery
from puente_api.labels import render_zpl
from puente_api.loop import run_with_broker
from puente_api.settings import Settings

# Messages fetched per receive call (SQS caps it at 10).
BATCH_SIZE = 10
# Seconds one receive call waits for a first message (long polling on SQS).
WAIT_SECONDS = 1.0
# Seconds to pause when the queue was empty (receive already waited WAIT_SECONDS).
IDLE_SLEEP = 0.0

log = logging.getLogger("puente_api.worker")


class PoisonMessage(ValueError):
    """A message no retry can fix: it goes to the dead-letter queue."""


def parse(delivery: Delivery) -> tuple[str, uuid.UUID]:
    try:
        body: dict[str, Any] = orjson.loads(delivery.body)
        message_id = str(body["message_id"])
        shipment_id = uuid.UUID(str(body["shipment_id"]))
    except (orjson.JSONDecodeError, KeyError, ValueError, TypeError) as exc:
        raise PoisonMessage(f"unreadable message: {exc!r}") from exc
    if delivery.message_id and delivery.message_id != message_id:
        raise PoisonMessage(f"message id mismatch {delivery.message_id!r} != {message_id!r}")
    return message_id, shipment_id


def apply(conn: psycopg.Connection, message_id: str, shipment_id: uuid.UUID) -> bool:
    """Make the label once; False when this message was already applied (a duplicate delivery)."""
    with conn.transaction():
        cur = conn.execute("INSERT INTO inbox (message_id) VALUES (%s) ON CONFLICT DO NOTHING", (message_id,))
        if cur.rowcount == 0:
            return False
        row = conn.execute(
            "SELECT id, sender, recipient, parcels, service FROM shipments WHERE id = %s FOR UPDATE",
            (shipment_id,),
        ).fetchone()
        if row is None:
            raise PoisonMessage(f"no shipment {shipment_id}")
        tracking = conn.execute(
            "SELECT 'PU' || lpad(nextval('tracking_number_seq')::text, 12, '0')"
        ).fetchone()[0]  # type: ignore[index]
        conn.execute(
            "INSERT INTO labels (id, shipment_id, format, content) VALUES (%s, %s, 'zpl', %s) "
            "ON CONFLICT (shipment_id) DO NOTHING",
            (uuid.uuid4(), shipment_id, render_zpl(tracking, row[1], row[2], row[3], row[4])),
        )
        conn.execute(
            "UPDATE shipments SET label_status = 'ready', tracking_number = %s, updated_at = now() "
            "WHERE id = %s AND label_status = 'pending'",
            (tracking, shipment_id),
        )
    return True


def handle(conn: psycopg.Connection, broker: Broker, delivery: Delivery) -> str:
    """Process one delivery and settle it with the broker; returns what happened."""
    try:
        message_id, shipment_id = parse(delivery)
        applied = apply(conn, message_id, shipment_id)
    except PoisonMessage as exc:
        log.error("dead-lettering message %s: %s", delivery.message_id, exc)
        broker.reject(delivery, requeue=False)
        return "dead-lettered"
    except psycopg.Error:
        broker.reject(delivery, requeue=True)
        raise
    broker.ack(delivery)
    return "applied" if applied else "duplicate"


def run_once(conn: psycopg.Connection, broker: Broker, wait_seconds: float = WAIT_SECONDS) -> int:
    deliveries = broker.receive(BATCH_SIZE, wait_seconds)
    for d in deliveries:
        outcome = handle(conn, broker, d)
        log.info("message %s %s", d.message_id, outcome, extra={"deliveries": d.delivery_count})
    return len(deliveries)


def run(settings: Settings, once: bool = False) -> int:
    return run_with_broker("worker", settings, run_once, IDLE_SLEEP, BATCH_SIZE, once=once)
