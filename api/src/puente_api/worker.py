"""The label worker: consumes ``shipment.created`` messages and makes each shipment's label.

Exactly-once effect over at-least-once delivery: the message id goes into the ``inbox`` table in the
same transaction as the label and the shipment's ``label_status = 'ready'``; a second delivery of the
same message finds its inbox row and is only acknowledged. The broker message is acknowledged after
COMMIT, so a worker dying in between gets the message delivered again (and the inbox absorbs it).

A message that can never be processed (not JSON, unknown shipment, a label that cannot be rendered) is
dead-lettered at once; any other failure (database down, a bug) requeues it, and the rest of its batch
with it (``Broker.release``), and the broker dead-letters it after MAX_DELIVERIES. A shipment whose label
message was dead-lettered reads ``label_status = 'failed'`` with a reason: set here when the worker
dead-letters it itself, and by :func:`scan_dead_letters` for what the broker dead-lettered.
``puente-api labels redrive`` (redrive.py) puts dead letters back on the queue.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import orjson
import psycopg

from puente_api import process_metrics
from puente_api.brokers import MAX_DELIVERIES, Broker, Delivery
from puente_api.labels import render_zpl
from puente_api.loop import run_with_broker
from puente_api.settings import Settings

# Messages handled per batch (SQS caps a receive at 10). On RabbitMQ the consumer's prefetch
# (brokers.rabbitmq.PREFETCH) has the next batch waiting already.
BATCH_SIZE = 10
# Seconds one receive call waits for a first message (RabbitMQ: woken by the push; SQS: long polling).
WAIT_SECONDS = 1.0
# Seconds to pause when the queue was empty (receive already waited WAIT_SECONDS).
IDLE_SLEEP = 0.0
# Seconds between looks at the dead-letter queue (its depth; the shipments of new dead letters are
# marked failed): the longest a dead-lettered label still reads "pending".
DEAD_LETTER_SCAN_SECONDS = 10.0
# Dead letters read per look; a longer queue is an incident already (its depth is the alert).
DEAD_LETTER_SCAN_MAX = 200
# label_failure_reason's limit (migration 0003).
REASON_MAX = 500

log = logging.getLogger("puente_api.worker")


class PoisonMessage(ValueError):
    """A message no retry can fix: it goes to the dead-letter queue (and its shipment, when known, is
    marked failed with this message as the reason)."""

    def __init__(self, reason: str, shipment_id: uuid.UUID | None = None) -> None:
        super().__init__(reason)
        self.shipment_id = shipment_id


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
        try:
            content = render_zpl(tracking, row[1], row[2], row[3], row[4])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # the same data fails every time
            raise PoisonMessage(f"the label cannot be rendered: {exc!r}", shipment_id) from exc
        conn.execute(
            "INSERT INTO labels (id, shipment_id, format, content) VALUES (%s, %s, 'zpl', %s) "
            "ON CONFLICT (shipment_id) DO NOTHING",
            (uuid.uuid4(), shipment_id, content),
        )
        # 'failed' too: a redriven label may be made before the redrive's own update is seen
        conn.execute(
            "UPDATE shipments SET label_status = 'ready', tracking_number = %s, label_failure_reason = NULL,"
            " updated_at = now() WHERE id = %s AND label_status <> 'ready'",
            (tracking, shipment_id),
        )
    return True


def mark_failed(conn: psycopg.Connection, shipment_ids: list[uuid.UUID], reason: str) -> int:
    """label_status 'pending' -> 'failed' with ``reason``; a label made or failed already stays."""
    if not shipment_ids:
        return 0
    cur = conn.execute(
        "UPDATE shipments SET label_status = 'failed', label_failure_reason = %s, updated_at = now()"
        " WHERE id = ANY(%s) AND label_status = 'pending'",
        (reason[:REASON_MAX], shipment_ids),
    )
    if cur.rowcount:
        process_metrics.LABELS_MARKED_FAILED.inc(cur.rowcount)
        log.warning("label failed", extra={"shipments": [str(s) for s in shipment_ids], "reason": reason})
    return cur.rowcount


def handle(conn: psycopg.Connection, broker: Broker, delivery: Delivery) -> str:
    """Process one delivery and settle it with the broker; returns what happened. Any other failure
    (database down, a bug) raises and leaves the delivery unsettled: the caller releases it with the
    rest of its batch (:func:`run_once`), so it is delivered again (the broker dead-letters it after
    MAX_DELIVERIES)."""
    try:
        message_id, shipment_id = parse(delivery)
        applied = apply(conn, message_id, shipment_id)
    except PoisonMessage as exc:
        log.error("dead-lettering message %s: %s", delivery.message_id, exc)
        if exc.shipment_id is not None:
            mark_failed(conn, [exc.shipment_id], f"dead-lettered by the worker: {exc}")
        broker.reject(delivery, requeue=False)
        return "dead-lettered"
    broker.ack(delivery)
    return "applied" if applied else "duplicate"


def death_reason(delivery: Delivery) -> str:
    """Why the broker dead-lettered a message, in words for the shipment's label_failure_reason."""
    if delivery.death_reason == "delivery_limit" or not delivery.death_reason:
        # SQS records no reason: its redrive policy moved it after MAX_DELIVERIES receives
        return (
            f"dead-lettered by the broker after {MAX_DELIVERIES} deliveries that failed"
            " (the worker's log has each error)"
        )
    if delivery.death_reason == "rejected":
        return "rejected by the worker as unprocessable (the worker's log says why)"
    return f"dead-lettered by the broker ({delivery.death_reason})"


def scan_dead_letters(conn: psycopg.Connection, broker: Broker) -> int:
    """Record the dead-letter queue's depth and mark the shipments of the dead letters failed; the
    messages stay there for ``labels redrive``. Returns how many shipments it marked."""
    waiting = broker.dead_letter_count()
    process_metrics.DEAD_LETTERS.set(waiting)
    if not waiting:
        return 0
    by_reason: dict[str, list[uuid.UUID]] = {}
    for d in broker.dead_letters(DEAD_LETTER_SCAN_MAX):
        try:
            _, shipment_id = parse(d)
        except PoisonMessage:
            continue  # no shipment to mark
        by_reason.setdefault(death_reason(d), []).append(shipment_id)
    return sum(mark_failed(conn, ids, reason) for reason, ids in by_reason.items())


class _Schedule:
    next_scan = 0.0


def run_once(conn: psycopg.Connection, broker: Broker, wait_seconds: float = WAIT_SECONDS) -> int:
    if time.monotonic() >= _Schedule.next_scan:
        scan_dead_letters(conn, broker)
        _Schedule.next_scan = time.monotonic() + DEAD_LETTER_SCAN_SECONDS
    deliveries = broker.receive(BATCH_SIZE, wait_seconds)
    for i, d in enumerate(deliveries):
        try:
            outcome = handle(conn, broker, d)
        except Exception:
            process_metrics.WORKER_MESSAGES.labels("failed").inc()
            # this one and the rest of the batch go back now, not when the channel closes
            rest = deliveries[i:]
            broker.release(rest)
            process_metrics.WORKER_RELEASED.inc(len(rest) - 1)
            raise
        process_metrics.WORKER_MESSAGES.labels(outcome.replace("-", "_")).inc()
        log.info("message %s %s", d.message_id, outcome, extra={"deliveries": d.delivery_count})
    return len(deliveries)


def run(settings: Settings, once: bool = False) -> int:
    return run_with_broker("worker", settings, run_once, IDLE_SLEEP, BATCH_SIZE, once=once)
