"""Issue 12, item 5, on real RabbitMQ, PostgreSQL and moto's SQS: the worker consumes with basic.consume
and a prefetch; a failure in the middle of a batch hands the rest back at once; a dead-lettered label
reads `failed` with a reason (marked by the worker, or by its look at the dead-letter queue for what the
broker dead-lettered); `puente-api labels redrive` puts it back and the label gets made."""

from __future__ import annotations

import io
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pika
import psycopg
import pytest
from api_helpers import API_EXE, deliver_all, headers, new_key, shipment_body
from psycopg.types.json import Jsonb
from puente_api import outbox, redrive, worker
from puente_api.brokers import MAX_DELIVERIES, Broker, OutboundMessage
from puente_api.brokers import connect as connect_broker
from puente_api.brokers.rabbitmq import DEAD_LETTER_QUEUE, QUEUE, RabbitMQBroker
from puente_api.settings import Settings, parse_broker_url


def _channel(broker: Broker) -> pika.adapters.blocking_connection.BlockingChannel:
    assert isinstance(broker, RabbitMQBroker)
    return broker._channel()


@pytest.fixture
def clean(db: psycopg.Connection, rabbit_broker: Broker) -> Broker:
    """Empty queues: what earlier tests left is processed, their dead letters dropped."""
    deliver_all(db, rabbit_broker)
    _channel(rabbit_broker).queue_purge(DEAD_LETTER_QUEUE)
    return rabbit_broker


@pytest.fixture
def second_worker(settings: Settings) -> Iterator[Broker]:
    """The broker connection of another worker (another API node's)."""
    broker = connect_broker(settings.broker)
    yield broker
    broker.close()


def insert_shipment(db: psycopg.Connection, client_id: str, parcels: object) -> uuid.UUID:
    """A shipment and its label job as the API writes them (one transaction), with parcels of our choice:
    the API refuses what would break the label, the database does not."""
    sid = uuid.uuid4()
    body = shipment_body()
    with db.transaction():
        db.execute(
            "INSERT INTO shipments (id, client_id, service, sender, recipient, parcels)"
            " VALUES (%s, %s, 'standard', %s, %s, %s)",
            (sid, client_id, Jsonb(body["sender"]), Jsonb(body["recipient"]), Jsonb(parcels)),
        )
        db.execute(
            "INSERT INTO outbox (topic, aggregate_id, payload) VALUES ('shipment.created', %s, %s)",
            (sid, Jsonb({"shipment_id": str(sid)})),
        )
    return sid


def wait_dead_letters(broker: Broker, expected: int) -> None:
    """Dead-lettering is asynchronous inside RabbitMQ: wait until the dead-letter queue holds that many."""
    deadline = time.monotonic() + 5
    while broker.dead_letter_count() != expected:
        assert time.monotonic() < deadline, broker.dead_letter_count()
        time.sleep(0.05)


def label_state(db: psycopg.Connection, sid: uuid.UUID) -> tuple[str, str | None]:
    row = db.execute(
        "SELECT label_status, label_failure_reason FROM shipments WHERE id = %s", (sid,)
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_the_worker_consumes_what_the_broker_pushes(clean: Broker, settings: Settings) -> None:
    """basic.consume: the worker is a consumer of the queue, and a message published while it waits is
    handed over as soon as it arrives."""
    publisher = connect_broker(settings.broker)
    message_id = f"pushed-{uuid.uuid4().hex[:8]}"
    timer = threading.Timer(0.5, publisher.publish, [[OutboundMessage(message_id, "g", b"{}")]])
    started = time.monotonic()
    timer.start()
    try:
        got = clean.receive(worker.BATCH_SIZE, 5)
        waited = time.monotonic() - started
    finally:
        timer.join()
        publisher.close()
    assert [d.message_id for d in got] == [message_id]
    assert 0.4 < waited < 2.0, waited
    assert _channel(clean).queue_declare(QUEUE, passive=True).method.consumer_count >= 1
    clean.ack(got[0])


def test_a_failure_mid_batch_requeues_the_rest_at_once(
    clean: Broker,
    second_worker: Broker,
    db: psycopg.Connection,
    client_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sids = [insert_shipment(db, client_id, shipment_body()["parcels"]) for _ in range(4)]
    assert outbox.run_once(db, clean) == 4
    real_apply, calls = worker.apply, []

    def apply_failing_second(conn: psycopg.Connection, message_id: str, shipment_id: uuid.UUID) -> bool:
        calls.append(shipment_id)
        if len(calls) == 2:
            raise psycopg.OperationalError("the database went away")  # what an outage raises
        return real_apply(conn, message_id, shipment_id)

    monkeypatch.setattr(worker, "apply", apply_failing_second)
    with pytest.raises(psycopg.OperationalError):
        worker.run_once(db, clean)
    monkeypatch.setattr(worker, "apply", real_apply)
    # the first worker's channel is still open: the other worker gets messages 2-4 now, not when it closes
    got = second_worker.receive(worker.BATCH_SIZE, 2)
    while len(got) < 3 and (more := second_worker.receive(worker.BATCH_SIZE, 1)):
        got += more
    assert sorted(worker.parse(d)[1] for d in got) == sorted(sids[1:])
    assert all(d.delivery_count == 2 for d in got), [d.delivery_count for d in got]
    assert [worker.handle(db, second_worker, d) for d in got] == ["applied"] * 3
    assert [label_state(db, s)[0] for s in sids] == ["ready"] * 4


def test_a_label_that_cannot_be_made_reads_failed_and_redrive_makes_it(
    clean: Broker, client: httpx.Client, db: psycopg.Connection, client_id: str
) -> None:
    sid = insert_shipment(db, client_id, [{"weight_grams": "heavy"}])
    assert deliver_all(db, clean) == ["dead-lettered"]
    wait_dead_letters(clean, 1)
    doc = client.get(f"/v1/shipments/{sid}").json()
    assert doc["label_status"] == "failed", doc
    assert "cannot be rendered" in doc["label_failure_reason"] and "heavy" in doc["label_failure_reason"]
    assert doc["label"] is None
    # the cause is fixed, then the label is redriven
    db.execute("UPDATE shipments SET parcels = %s WHERE id = %s", (Jsonb(shipment_body()["parcels"]), sid))
    out = io.StringIO()
    result = redrive.redrive(db, clean, out)
    assert len(result.redriven) == 1 and not result.skipped, out.getvalue()
    assert label_state(db, sid) == ("pending", None)
    assert deliver_all(db, clean) == ["applied"]
    doc = client.get(f"/v1/shipments/{sid}").json()
    assert (doc["label_status"], doc["label_failure_reason"]) == ("ready", None)
    assert doc["tracking_number"] in doc["label"]["content"]
    assert clean.dead_letter_count() == 0


def test_what_the_broker_dead_letters_is_marked_failed_and_the_command_redrives_it(
    clean: Broker, client: httpx.Client, token: str, db: psycopg.Connection, api_env: dict[str, str]
) -> None:
    r = client.post("/v1/shipments", json=shipment_body(), headers=headers(token, new_key()))
    sid = uuid.UUID(r.json()["id"])
    outbox.run_once(db, clean)
    for _ in range(MAX_DELIVERIES + 1):  # a worker that fails every time (the database, say)
        (delivery,) = clean.receive(1, 2)
        clean.reject(delivery, requeue=True)
    wait_dead_letters(clean, 1)
    assert label_state(db, sid)[0] == "pending"
    assert worker.scan_dead_letters(db, clean) == 1
    status, reason = label_state(db, sid)
    assert status == "failed" and reason is not None and f"after {MAX_DELIVERIES} deliveries" in reason
    assert client.get("/v1/shipments", params={"limit": 1}).json()["items"][0]["label_status"] == "failed"
    assert worker.scan_dead_letters(db, clean) == 0  # marked once; the message stays for the redrive
    wait_dead_letters(clean, 1)

    done = subprocess.run(
        [API_EXE, "labels", "redrive"], env={**os.environ, **api_env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "redriven 1, skipped 0", done.stdout
    assert deliver_all(db, clean) == ["applied"]
    assert label_state(db, sid) == ("ready", None)


def test_redrive_leaves_what_names_no_shipment_unless_told_to_discard_it(
    clean: Broker, db: psycopg.Connection
) -> None:
    clean.publish([OutboundMessage(f"junk-{uuid.uuid4().hex[:8]}", "g", b"not json")])
    assert deliver_all(db, clean) == ["dead-lettered"]
    wait_dead_letters(clean, 1)
    out = io.StringIO()
    result = redrive.redrive(db, clean, out)
    assert (len(result.redriven), len(result.skipped)) == (0, 1), out.getvalue()
    wait_dead_letters(clean, 1)  # handed back to the dead-letter queue
    result = redrive.redrive(db, clean, out, discard_unreadable=True)
    assert (len(result.redriven), len(result.skipped), len(result.discarded)) == (0, 0, 1), out.getvalue()
    assert "not json" in out.getvalue().splitlines()[-2]
    time.sleep(0.5)
    assert clean.dead_letter_count() == 0


def test_sqs_dead_letter_is_redriven_within_the_deduplication_window(
    sqs_endpoint: str, db: psycopg.Connection, client_id: str
) -> None:
    """SQS drops a second message with the same deduplication id for 5 minutes: the redrive sends the
    dead letter under a fresh one (the worker still sees the outbox id as the message id)."""
    broker = connect_broker(
        parse_broker_url(
            f"sqs://dl-{uuid.uuid4().hex[:8]}.fifo?region=eu-central-1&endpoint_url={sqs_endpoint}"
        )
    )
    broker.declare()
    try:
        sid = insert_shipment(db, client_id, shipment_body()["parcels"])
        row = db.execute(
            "UPDATE outbox SET published_at = now() WHERE aggregate_id = %s"
            " RETURNING id, topic, aggregate_id, payload",
            (sid,),
        ).fetchone()
        broker.publish([outbox.message_for(row)])  # what the cloud site's relay does
        (delivery,) = broker.receive(10, 1)
        broker.reject(delivery, requeue=False)  # as the worker does with what it cannot process
        mine = delivery.message_id
        assert broker.dead_letter_count() == 1
        assert worker.scan_dead_letters(db, broker) == 1
        assert label_state(db, sid)[0] == "failed"
        result = redrive.redrive(db, broker, io.StringIO())
        assert result.redriven == [mine]
        (again,) = broker.receive(10, 2)
        assert again.message_id == mine
        assert worker.handle(db, broker, again) == "applied"
        assert label_state(db, sid) == ("ready", None)
        assert broker.dead_letter_count() == 0
    finally:
        broker.close()
