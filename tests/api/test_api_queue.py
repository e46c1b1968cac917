"""The queue path: outbox -> relay -> broker -> worker (inbox) -> label ready, on real RabbitMQ and
on moto's SQS FIFO, through the same Broker interface the processes use."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from api_helpers import API_EXE, count, deliver_all, headers, make_env, new_key, shipment_body
from api_servers import free_port
from puente_api import outbox, worker
from puente_api.brokers import MAX_DELIVERIES, Broker, BrokerError, OutboundMessage
from puente_api.brokers import connect as connect_broker
from puente_api.settings import parse_broker_url


def create(client: httpx.Client, token: str) -> str:
    r = client.post("/v1/shipments", json=shipment_body(), headers=headers(token, new_key()))
    assert r.status_code == 201
    return str(r.json()["id"])


def drain(db: psycopg.Connection, broker: Broker) -> None:
    """Start from an empty queue: process what earlier tests left behind."""
    deliver_all(db, broker)


def test_label_goes_from_pending_to_ready(
    client: httpx.Client, token: str, db: psycopg.Connection, rabbit_broker: Broker
) -> None:
    drain(db, rabbit_broker)
    sid = create(client, token)
    assert client.get(f"/v1/shipments/{sid}").json()["label_status"] == "pending"
    outcomes = deliver_all(db, rabbit_broker)
    assert outcomes == ["applied"]
    doc = client.get(f"/v1/shipments/{sid}").json()
    assert doc["label_status"] == "ready"
    assert doc["tracking_number"].startswith("PU")
    assert doc["label"]["format"] == "zpl" and doc["tracking_number"] in doc["label"]["content"]
    assert count(db, "SELECT count(*) FROM outbox WHERE aggregate_id = %s AND published_at IS NULL", sid) == 0


def test_duplicate_delivery_has_one_effect(
    client: httpx.Client, token: str, db: psycopg.Connection, rabbit_broker: Broker
) -> None:
    drain(db, rabbit_broker)
    sid = create(client, token)
    row = db.execute(
        "SELECT id, topic, aggregate_id, payload FROM outbox WHERE aggregate_id = %s", (sid,)
    ).fetchone()
    assert row is not None
    message = outbox.message_for(row)
    # the relay died after the broker confirmed but before its COMMIT: the row goes out twice
    rabbit_broker.publish([message])
    outcomes = deliver_all(db, rabbit_broker)
    assert sorted(outcomes) == ["applied", "duplicate"]
    assert count(db, "SELECT count(*) FROM labels WHERE shipment_id = %s", sid) == 1
    assert count(db, "SELECT count(*) FROM inbox WHERE message_id = %s", str(row[0])) == 1
    tracking = db.execute("SELECT tracking_number FROM shipments WHERE id = %s", (sid,)).fetchone()
    assert tracking is not None and tracking[0]


def test_relay_keeps_rows_when_the_broker_is_down(
    client: httpx.Client, token: str, db: psycopg.Connection
) -> None:
    sid = create(client, token)
    down = connect_broker(parse_broker_url("amqp://guest@127.0.0.1:1/%2F", "guest"))
    with pytest.raises(BrokerError):
        outbox.run_once(db, down)
    assert count(db, "SELECT count(*) FROM outbox WHERE aggregate_id = %s AND published_at IS NULL", sid) == 1


def test_rabbitmq_poison_message_goes_to_the_dead_letter_exchange(
    db: psycopg.Connection, rabbit_broker: Broker
) -> None:
    drain(db, rabbit_broker)
    poison_id = f"poison-{uuid.uuid4().hex[:8]}"
    rabbit_broker.publish([OutboundMessage(poison_id, "g", b"not json")])
    (delivery,) = rabbit_broker.receive(10, 2)
    assert worker.handle(db, rabbit_broker, delivery) == "dead-lettered"
    assert poison_id in [d.message_id for d in rabbit_broker.dead_letters(50)]
    assert rabbit_broker.receive(10, 0.3) == []


def test_rabbitmq_dead_letters_after_the_delivery_limit(
    db: psycopg.Connection, rabbit_broker: Broker
) -> None:
    drain(db, rabbit_broker)
    msg_id = f"flaky-{uuid.uuid4().hex[:8]}"
    rabbit_broker.publish([OutboundMessage(msg_id, "g", b"{}")])
    attempts = 0
    while deliveries := rabbit_broker.receive(1, 1):
        attempts += 1
        rabbit_broker.reject(deliveries[0], requeue=True)  # a transient failure, again and again
        assert attempts <= MAX_DELIVERIES + 2
    assert attempts == MAX_DELIVERIES + 1  # quorum queue x-delivery-limit: redelivered MAX times
    assert msg_id in [d.message_id for d in rabbit_broker.dead_letters(50)]


@pytest.fixture
def sqs(sqs_endpoint: str) -> Iterator[Broker]:
    """A FIFO queue and its DLQ of its own per test."""
    url = parse_broker_url(
        f"sqs://labels-{uuid.uuid4().hex[:10]}.fifo?region=eu-central-1&endpoint_url={sqs_endpoint}"
    )
    broker = connect_broker(url)
    broker.declare()
    broker.declare()  # declaring again is a no-op (the cloud stack declares them too)
    yield broker
    broker.close()


def test_sqs_fifo_drops_a_republished_outbox_row(sqs: Broker) -> None:
    message = OutboundMessage("1001", str(uuid.uuid4()), b'{"message_id": "1001"}')
    sqs.publish([message])
    sqs.publish([message])  # same MessageDeduplicationId (the outbox id) within 5 minutes
    received = sqs.receive(10, 1)
    assert [d.message_id for d in received] == ["1001"]
    sqs.ack(received[0])
    assert sqs.receive(10, 0) == []


def test_sqs_redrives_to_the_dlq_after_max_receives(sqs: Broker) -> None:
    sqs.publish([OutboundMessage("2002", "group-a", b"{}")])
    receives = 0
    while deliveries := sqs.receive(1, 0):
        receives += 1
        sqs.reject(deliveries[0], requeue=True)
        assert receives <= MAX_DELIVERIES + 1
    assert receives == MAX_DELIVERIES
    assert [d.message_id for d in sqs.dead_letters()] == ["2002"]


def test_sqs_poison_message_is_dead_lettered_at_once(sqs: Broker, db: psycopg.Connection) -> None:
    sqs.publish([OutboundMessage("3003", "group-b", b"not json")])
    (delivery,) = sqs.receive(1, 1)
    assert worker.handle(db, sqs, delivery) == "dead-lettered"
    assert sqs.receive(1, 0) == []
    assert [d.message_id for d in sqs.dead_letters()] == ["3003"]


def test_sqs_end_to_end_with_the_console_scripts(pg: object, sqs_endpoint: str) -> None:
    """`puente-api relay --once` and `worker --once` against a database of their own and SQS."""
    dburl = pg.create_database("puente_sqs")  # type: ignore[attr-defined]
    env = make_env(
        dburl, f"sqs://e2e-{uuid.uuid4().hex[:8]}.fifo?region=eu-central-1&endpoint_url={sqs_endpoint}"
    )
    env |= {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "PATH": "/usr/bin:/bin"}
    subprocess.run([API_EXE, "migrate"], env=env, check=True)
    with psycopg.connect(dburl, autocommit=True) as conn:
        sid = uuid.uuid4()
        conn.execute(
            "INSERT INTO shipments (id, client_id, service, sender, recipient, parcels) "
            "VALUES (%s, 'c', 'standard', %s, %s, %s)",
            (sid, *(orjson_json(shipment_body()[k]) for k in ("sender", "recipient", "parcels"))),
        )
        conn.execute(
            "INSERT INTO outbox (topic, aggregate_id, payload) VALUES ('shipment.created', %s, %s)",
            (sid, orjson_json({"shipment_id": str(sid)})),
        )
        subprocess.run([API_EXE, "relay", "--once"], env=env, check=True)
        subprocess.run([API_EXE, "worker", "--once"], env=env, check=True)
        row = conn.execute("SELECT label_status FROM shipments WHERE id = %s", (sid,)).fetchone()
        assert row == ("ready",)
        assert count(conn, "SELECT count(*) FROM labels WHERE shipment_id = %s", sid) == 1


def orjson_json(value: object) -> psycopg.types.json.Jsonb:
    from psycopg.types.json import Jsonb

    return Jsonb(value)


@pytest.mark.parametrize("command", ["relay", "worker"])
def test_background_process_rides_out_a_broker_outage_and_stops_on_sigterm(
    api_env: dict[str, str], command: str
) -> None:
    env = {**os.environ, **api_env, "PUENTE_BROKER_URL": f"amqp://guest@127.0.0.1:{free_port()}/%2F"}
    proc = subprocess.Popen([API_EXE, command], env=env, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3)
        assert proc.poll() is None, f"{command} died during the outage"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert f"{command} batch failed" in stderr and "RabbitMQ unreachable" in stderr
    assert f"{command} stopped" in stderr
